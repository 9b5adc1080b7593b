"""CLI commands of the 2025-2027 consent rules: the opt-out confirmation text."""

from __future__ import annotations

from datetime import datetime

import click

from dnd_ledger import commands as cmd
from dnd_ledger.cli import Ctx, _report, at_option, cli, json_option, ledger_errors, pass_ctx
from dnd_ledger.domain.values import Channel


@cli.group()
def confirmation() -> None:
    """The one confirmation text allowed after an opt-out."""


@confirmation.command("record")
@click.argument("location")
@click.option("--channel", type=click.Choice(["sms", "whatsapp"]), required=True)
@click.option("--to", "to_address", required=True, help="Recipient phone number (E.164).")
@click.option("--message-sid", required=True, help="Provider message id (idempotency key).")
@at_option
@json_option
@pass_ctx
@ledger_errors
def confirmation_record(
    c: Ctx, location: str, channel: str, to_address: str, message_sid: str,
    at: datetime | None, as_json: bool,
) -> None:  # fmt: skip
    """Record that the opt-out confirmation text went out (a second one is refused).

    Example: dnd-ledger confirmation record loc-1 --channel sms --to +14155550100 --message-sid SM2
    """
    command = cmd.RecordConfirmation(location, Channel(channel), to_address, message_sid, at)
    _report(c.ledger.execute(command), as_json)
