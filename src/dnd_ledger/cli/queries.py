"""``dnd-ledger status``, ``can-send`` and ``history``: what the ledger says about a contact."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

import click

from dnd_ledger.cli.common import CHANNEL, TIME, Ctx, ledger_errors, pass_ctx
from dnd_ledger.cli.format import dumps, format_option, render_rows
from dnd_ledger.cli.output import decision_text, status_text, table
from dnd_ledger.domain.values import Channel, Direction, Mode, Purpose


@click.command()
@click.argument("location")
@click.argument("contact_id")
@click.option("--as-of", type=TIME, help="Effective time (default: now).")
@click.option("--known-at", type=TIME, help="Knowledge time (default: now).")
@format_option
@pass_ctx
@ledger_errors
def status(
    c: Ctx, location: str, contact_id: str, as_of: datetime | None, known_at: datetime | None,
    fmt: str,
) -> None:  # fmt: skip
    """Per-channel DND state of a contact.

    Example: dnd-ledger status loc-1 c-41 --as-of 2026-11-01T00:00:00Z
    """
    view = c.ledger.status(location, contact_id, as_of=as_of, known_at=known_at)
    if fmt == "table":
        click.echo(status_text(view))
    elif fmt == "csv":
        data = view.to_json()
        rows = [{"channel": ch, **s} for ch, s in data["channels"].items()]
        click.echo(render_rows(rows, fmt, ["channel", "status", "since", "code", "message"]))
    else:
        click.echo(dumps(view.to_json()))


@click.command("can-send")
@click.argument("location")
@click.argument("contact_id")
@click.option("--channel", type=CHANNEL, required=True)
@click.option("--manual", "mode", flag_value="manual", help="A message a person sends.")
@click.option("--automated", "mode", flag_value="automated", default=True, help="[default]")
@click.option("--inbound", is_flag=True, help="Ask about an inbound message or call instead.")
@click.option("--as-of", type=TIME, help="Effective time (default: now).")
@click.option("--known-at", type=TIME, help="Knowledge time (default: now).")
@click.option("--purpose", type=click.Choice([p.value for p in Purpose]), help="Why it goes out.")
@click.option("--at", "at", type=TIME, help="When it would go out (default: now).")
@click.option("--exit-code", is_flag=True, help="Exit 1 when not allowed.")
@format_option
@pass_ctx
@ledger_errors
def can_send(
    c: Ctx, location: str, contact_id: str, channel: str, mode: str, inbound: bool,
    as_of: datetime | None, known_at: datetime | None, purpose: str | None, at: datetime | None,
    exit_code: bool, fmt: str,
) -> None:  # fmt: skip
    """May we message this contact on this channel now, and why (not)?

    Example: dnd-ledger can-send loc-1 c-42 --channel sms --manual --exit-code
    """
    decision = c.ledger.rules.can_send(
        location, contact_id, Channel(channel), purpose=Purpose(purpose) if purpose else None,
        at=at, direction=Direction.INBOUND if inbound else Direction.OUTBOUND,
        mode=Mode(mode), as_of=as_of, known_at=known_at,
    )  # fmt: skip
    if fmt == "table":
        click.echo(decision_text(decision))
    elif fmt == "csv":
        data = decision.to_json()
        click.echo(render_rows([data], fmt, list(data)))
    else:
        click.echo(dumps(decision.to_json()))
    if exit_code and not decision.allowed:
        sys.exit(1)


@click.command()
@click.argument("location")
@click.argument("contact_id")
@format_option
@pass_ctx
@ledger_errors
def history(c: Ctx, location: str, contact_id: str, fmt: str) -> None:
    """The contact's events in recording order.

    Example: dnd-ledger history loc-1 c-42 --json
    """
    items = c.ledger.history(location, contact_id)
    if fmt != "table":
        data = [i.to_json() for i in items]
        click.echo(render_rows(data, fmt, list(data[0]) if data else []))
        return
    rows = [
        (i.version, i.event, i.occurred_at, i.recorded_at, i.source, i.actor,
         ",".join(i.effect.get("channels", [])) or "-", _effect_word(i.effect))
        for i in items
    ]  # fmt: skip
    click.echo(
        table(["#", "event", "occurred", "recorded", "source", "actor", "channels", "effect"], rows)
    )


def _effect_word(effect: dict[str, Any]) -> str:
    op = effect.get("op")
    if op == "block":
        return "permanent DND" if effect.get("level") == "permanent" else "temporary DND"
    return {
        "clear-temporary": "clear temporary",
        "opt-in": "opt-in (clears)",
        "clear-all": "clear all",
        "clear-review": "clear review",
    }.get(str(op), "-")
