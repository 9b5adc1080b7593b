"""``dnd-ledger support approve-opt-in``: support staff lift DND with opt-in evidence."""

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
def support() -> None:
    """Support staff actions."""


@support.command("approve-opt-in")
@click.argument("location")
@click.argument("contact_id")
@channels_options
@click.option("--approver", required=True, help="The support user approving.")
@click.option("--ticket", required=True, help="Support ticket id.")
@click.option("--evidence", required=True, help="The contact's opt-in evidence.")
@click.option("--request-id", help="Idempotency key for retries.")
@recording
def approve_opt_in(
    c: Ctx, location: str, contact_id: str, channels: tuple[str, ...], all_channels: bool,
    approver: str, ticket: str, evidence: str, request_id: str | None, at: datetime | None,
    as_json: bool,
) -> None:  # fmt: skip
    """Lift DND (permanent too) with the contact's opt-in evidence.

    \b
    Example:
      dnd-ledger support approve-opt-in loc-1 c-42 --channel sms --approver sam \\
        --ticket SUP-981 --evidence "signed web form 2026-11-02, IP 203.0.113.9"
    """
    chosen = pick_channels(channels, all_channels)
    command = cmd.ApproveOptIn(
        location, contact_id, chosen, approver, ticket, evidence, at, request_id
    )
    report(c.ledger.execute(command), as_json)
