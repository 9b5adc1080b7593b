"""``pii erase|reveal``: a contact's personal data, for the operator at the console."""

from __future__ import annotations

import sys

import click

from dnd_ledger.cli.common import Ctx, json_option, ledger_errors, pass_ctx
from dnd_ledger.cli.format import dumps
from dnd_ledger.services import contact_admin


@click.group()
def pii() -> None:
    """Personal data: erase a contact's, turn a reference back into its value."""


@pii.command("erase")
@click.argument("location")
@click.argument("contact_id")
@click.option("--actor", required=True, help="Who erases it.")
@click.option("--reason", required=True, help="Why (e.g. the request's ticket); no personal data.")
@json_option
@pass_ctx
@ledger_errors
def pii_erase(
    c: Ctx, location: str, contact_id: str, actor: str, reason: str, as_json: bool
) -> None:
    """Erase a contact's personal data (GDPR Art. 17); its DND and audit trail stay.

    Records PersonalDataErased (references only), then deletes every phone
    number, email address, message body and evidence text only this contact
    refers to. Values another contact still holds are kept, and listed.

    Example: dnd-ledger pii erase loc-1 c-42 --actor dpo --reason "erasure request T-77"
    """
    result = contact_admin.erase(c.ledger, location, contact_id, actor, reason)
    if as_json:
        click.echo(dumps(result.to_json()))
        return
    click.echo(
        f"erased {result.erased} value(s) of {contact_id} (references: {len(result.erased_refs)})"
    )
    for k in result.kept:
        click.echo(f"kept {k.kind} {k.ref}: still held by {', '.join(k.for_contacts)}")


@pii.command("reveal")
@click.argument("ref")
@json_option
@pass_ctx
@ledger_errors
def pii_reveal(c: Ctx, ref: str, as_json: bool) -> None:
    """Print the value behind a reference (ph_..., em_..., tx_...), if not erased.

    Exits 1 when the value was erased (or the reference is unknown).

    Example: dnd-ledger pii reveal ph_0123456789abcdef0123456789abcdef
    """
    value = contact_admin.reveal(c.ledger, ref)
    if as_json:
        click.echo(dumps({"ref": ref, "value": value, "erased": value is None}))
    elif value is not None:
        click.echo(value)
    if value is None:
        click.echo(f"Error: no value for {ref}: erased, or never recorded", err=True)
        sys.exit(1)
