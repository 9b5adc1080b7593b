"""CLI commands of the 2025-2027 consent rules: the opt-out confirmation text, reviews."""

from __future__ import annotations

from datetime import datetime

import click

from dnd_ledger import commands as cmd
from dnd_ledger.cli.common import (
    Ctx,
    ledger_errors,
    pass_ctx,
    recording,
    report,
)
from dnd_ledger.cli.output import emit_json, table
from dnd_ledger.csv_safe import write_csv
from dnd_ledger.domain.values import Channel
from dnd_ledger.services.reviews import review_items


@click.group()
def confirmation() -> None:
    """The one confirmation text allowed after an opt-out."""


@confirmation.command("record")
@click.argument("location")
@click.option("--channel", type=click.Choice(["sms", "whatsapp"]), required=True)
@click.option("--to", "to_address", required=True, help="Recipient phone number (E.164).")
@click.option("--message-sid", required=True, help="Provider message id (idempotency key).")
@recording
def confirmation_record(
    c: Ctx, location: str, channel: str, to_address: str, message_sid: str,
    at: datetime | None, as_json: bool,
) -> None:  # fmt: skip
    """Record that the opt-out confirmation text went out (a second one is refused).

    Example: dnd-ledger confirmation record loc-1 --channel sms --to +14155550100 --message-sid SM2
    """
    command = cmd.RecordConfirmation(location, Channel(channel), to_address, message_sid, at)
    report(c.ledger.execute(command), as_json)


@click.group()
def review() -> None:
    """Review items: messages that suggest a revocation, with their deadlines."""


_REVIEW_COLUMNS = ("item", "location_id", "contacts", "channel", "received_at", "deadline",
                   "overdue")  # fmt: skip


@review.command("list")
@click.argument("location", required=False)
@click.option("--overdue", is_flag=True, help="Only items past their deadline.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@pass_ctx
@ledger_errors
def review_list(c: Ctx, location: str | None, overdue: bool, fmt: str) -> None:
    """Open review items, oldest first, with their deadlines.

    Example: dnd-ledger review list loc-1 --overdue --format csv
    """
    ledger = c.ledger
    now = ledger.clock()
    docs = [i.to_json(now) for i in review_items(ledger, location, overdue=overdue)]
    if fmt == "json":
        emit_json(docs)
        return
    rows = [[_cell(d[k]) for k in _REVIEW_COLUMNS] for d in docs]
    if fmt == "csv":
        click.echo(write_csv(_REVIEW_COLUMNS, rows), nl=False)
    else:
        click.echo(table(list(_REVIEW_COLUMNS), rows))


def _cell(value: object) -> object:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return ";".join(value) if isinstance(value, list) else value


@review.command("resolve")
@click.argument("location")
@click.argument("item")
@click.option("--as", "resolution", type=click.Choice(["revocation", "not-revocation"]),
              required=True)  # fmt: skip
@click.option("--actor", required=True, help="Who reviewed it.")
@click.option("--note", required=True, help="Why (kept as a reference, like message bodies).")
@recording
def review_resolve(
    c: Ctx, location: str, item: str, resolution: str, actor: str, note: str,
    at: datetime | None, as_json: bool,
) -> None:  # fmt: skip
    """Resolve a review item: a revocation (permanent DND) or not (lifts the review DND).

    Example: dnd-ledger review resolve loc-1 SM003 --as revocation --actor rita --note "called back"
    """
    command = cmd.ResolveReview(location, item, resolution, actor, note, at)
    report(c.ledger.execute(command), as_json)
