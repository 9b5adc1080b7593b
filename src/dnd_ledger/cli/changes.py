"""CLI commands over the change feed: ``changes``, ``deliver``, ``subscribers``, ``publish``."""

from __future__ import annotations

import json

import click

from dnd_ledger.cli.common import Ctx, ledger_errors, pass_ctx
from dnd_ledger.cli.output import emit_json, table
from dnd_ledger.projections.changes import MAX_PAGE, MAX_WAIT, Change, feed_of
from dnd_ledger.textcheck import json_safe

_HEADERS = ("id", "position", "contact", "channel", "before", "after", "cause", "occurred_at")


def _row(ch: Change) -> tuple[object, ...]:
    return (
        ch.id, ch.position, ch.contact_id, ch.channel, ch.before, ch.after, ch.cause_event,
        ch.occurred_at,
    )  # fmt: skip


@click.command("changes")
@click.argument("location")
@click.option(
    "--after", type=click.IntRange(0, 2**63 - 1), default=0, help="The last change id seen."
)
@click.option("--limit", type=click.IntRange(1, MAX_PAGE), default=100, help="At most this many.")
@click.option("--follow", is_flag=True, help="Keep printing new changes as they commit.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "jsonl"]), default="table")
@pass_ctx
@ledger_errors
def changes(c: Ctx, location: str, after: int, limit: int, follow: bool, fmt: str) -> None:
    """Changes of contacts' per-channel DND state in LOCATION, oldest first.

    Each change has an id; pass the last one seen as --after to read on from it.
    With --follow it waits for new changes (printed as JSON lines, or table rows).

    Example: dnd-ledger changes loc-1 --after 0 --format jsonl
    """
    feed = feed_of(c.ledger)
    if fmt == "json" and follow:
        raise click.UsageError("--follow prints lines: use --format jsonl or table")
    found = feed.wait_page(location, after, limit)
    if fmt == "json":
        emit_json(
            {"changes": [ch.to_json() for ch in found], "next": found[-1].id if found else after}
        )
        return
    if fmt == "table" and not follow:
        click.echo(table(_HEADERS, [_row(ch) for ch in found]))
        return
    while True:
        for ch in found:
            if fmt == "jsonl":
                click.echo(json_safe(json.dumps(ch.to_json(), ensure_ascii=False)))
            else:
                click.echo("  ".join(str(v) for v in _row(ch)))
            after = ch.id
        if not follow:
            return
        found = feed.wait_page(location, after, limit, MAX_WAIT)
