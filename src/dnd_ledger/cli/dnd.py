"""``dnd-ledger dnd set|clear``: DND from the contact record."""

from __future__ import annotations

from datetime import datetime

import click

from dnd_ledger import commands as cmd
from dnd_ledger.cli.common import (
    Ctx,
    channels_options,
    pick_channels,
    recording,
    report,
)


@click.group()
def dnd() -> None:
    """Set or clear DND from the contact record."""


@dnd.command("set")
@click.argument("location")
@click.argument("contact_id")
@channels_options
@click.option("--actor", required=True, help="The user making the change.")
@click.option("--reason", help="Why.")
@click.option("--request-id", help="Idempotency key for retries.")
@recording
def dnd_set(
    c: Ctx, location: str, contact_id: str, channels: tuple[str, ...], all_channels: bool,
    actor: str, reason: str | None, request_id: str | None, at: datetime | None, as_json: bool,
) -> None:  # fmt: skip
    """Set temporary DND on channels.

    Example: dnd-ledger dnd set loc-1 c-42 --channel sms --channel call --actor alice
    """
    chosen = pick_channels(channels, all_channels)
    command = cmd.SetDnd(location, contact_id, chosen, actor, reason, at, request_id)
    report(c.ledger.execute(command), as_json)


@dnd.command("clear")
@click.argument("location")
@click.argument("contact_id")
@channels_options
@click.option("--actor", required=True, help="The user making the change.")
@click.option("--reason", help="Why.")
@click.option(
    "--suppression-removed",
    is_flag=True,
    help="Attest the email left the provider's suppression list and was re-validated.",
)
@click.option("--request-id", help="Idempotency key for retries.")
@recording
def dnd_clear(
    c: Ctx, location: str, contact_id: str, channels: tuple[str, ...], all_channels: bool,
    actor: str, reason: str | None, suppression_removed: bool, request_id: str | None,
    at: datetime | None, as_json: bool,
) -> None:  # fmt: skip
    """Clear temporary DND (permanent DND is refused).

    Example: dnd-ledger dnd clear loc-1 c-42 --channel email --actor alice --suppression-removed
    """
    chosen = pick_channels(channels, all_channels)
    command = cmd.ClearDnd(
        location, contact_id, chosen, actor, reason, suppression_removed, at, request_id
    )
    report(c.ledger.execute(command), as_json)
