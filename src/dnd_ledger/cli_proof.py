"""CLI commands for Merkle proofs and auditor bundles."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from dnd_ledger import consent_record
from dnd_ledger.cli import TIME, Ctx, audit, cli, json_option, ledger_errors, pass_ctx
from dnd_ledger.cli_output import emit_json
from dnd_ledger.cli_witness import witness_key_option, witness_keys_of
from dnd_ledger.domain.errors import InvalidInput
from dnd_ledger.notary.bundle import export_bundle
from dnd_ledger.notary.offline import (
    BundleError,
    load_public_key,
    report,
    report_text,
    verify_bundle,
)

# -- proofs -----------------------------------------------------------------------------------


@cli.group()
def proof() -> None:
    """Merkle proofs (RFC 6962) against the notary's checkpoints, as JSON."""


@proof.command("inclusion")
@click.argument("position", type=click.IntRange(min=0))
@click.option("--leaf-index", is_flag=True, help="POSITION is a leaf index, not a log position.")
@click.option("--size", type=click.IntRange(min=1),
              help="Tree size to prove against [default: the latest checkpoint].")  # fmt: skip
@pass_ctx
@ledger_errors
def proof_inclusion(c: Ctx, position: int, leaf_index: bool, size: int | None) -> None:
    """Prove that the event at a log POSITION (as `audit` shows it) is in the tree.

    Example: dnd-ledger proof inclusion 7
    """
    n = c.ledger.notary
    target = _tree_size(c, size)
    if leaf_index:
        index = position
    else:
        row = c.ledger.sql.fetchone(
            "SELECT leaf_index FROM dnd_notary_leaves WHERE notification_id = ?", (position,)
        )
        if row is None:
            raise InvalidInput(f"no event at position {position} is notarised")
        index = int(row[0])
    if index >= target:
        raise InvalidInput(
            f"leaf {index} is not under the tree of size {target}: run `dnd-ledger checkpoint`"
        )
    levels = n.levels(target)
    leaf = next(leaf for i, leaf in n.leaves(stop=index + 1) if i == index)
    emit_json(
        {
            "type": "inclusion",
            "leaf_index": index,
            "position": leaf.notification_id,
            "leaf": leaf.to_json(),
            "leaf_data": leaf.encode().decode("ascii"),
            "leaf_hash": levels.leaf(index).hex(),
            "tree_size": target,
            "root": levels.root().hex(),
            "checkpoint": _note(c, target),
            "proof": [h.hex() for h in levels.inclusion_proof(index, target)],
        }
    )


@proof.command("consistency")
@click.argument("old_size", type=click.IntRange(min=1))
@click.argument("new_size", type=click.IntRange(min=1))
@pass_ctx
@ledger_errors
def proof_consistency(c: Ctx, old_size: int, new_size: int) -> None:
    """Prove that the tree of NEW_SIZE leaves extends the tree of OLD_SIZE.

    Example: dnd-ledger proof consistency 1000 2000
    """
    if old_size > new_size:
        raise InvalidInput(f"old size {old_size} is larger than new size {new_size}")
    target = _tree_size(c, new_size)
    levels = c.ledger.notary.levels(target)
    emit_json(
        {
            "type": "consistency",
            "old_size": old_size,
            "new_size": new_size,
            "old_root": levels.root(old_size).hex(),
            "new_root": levels.root(new_size).hex(),
            "old_checkpoint": _note(c, old_size),
            "new_checkpoint": _note(c, new_size),
            "proof": [h.hex() for h in levels.consistency_proof(old_size, new_size)],
        }
    )


def _tree_size(c: Ctx, size: int | None) -> int:
    n = c.ledger.notary
    if size is None:
        latest = n.latest_checkpoint()
        if latest is None:
            raise InvalidInput("no checkpoint yet: run `dnd-ledger checkpoint`")
        return latest.size
    have = n.state().size
    if size > have:
        raise InvalidInput(f"the tree has {have} leaves, fewer than {size}")
    return size


def _note(c: Ctx, size: int) -> str | None:
    row = c.ledger.sql.fetchone("SELECT note FROM dnd_notary_checkpoints WHERE size = ?", (size,))
    return None if row is None else str(row[0])


# -- auditor bundles --------------------------------------------------------------------------


@audit.command("export")
@click.argument("location")
@click.argument("contact_id", required=False)
@click.option("--bundle", "bundle_path", type=click.Path(dir_okay=False),
              help="The bundle file to write (--format bundle).")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["bundle", "consent-record"]),
              default="bundle", show_default=True,
              help="consent-record: the contact's consent history in DPV JSON-LD, on stdout.")  # fmt: skip
@pass_ctx
@ledger_errors
def audit_export(
    c: Ctx, location: str, contact_id: str | None, bundle_path: str | None, fmt: str
) -> None:
    """Write an auditor bundle for a contact (or every contact of a location).

    It carries a freshly signed checkpoint, the PII-free metadata of every
    event under it, the contacts' stored events and their inclusion proofs.
    Check it with `audit verify-bundle` or `python -m dnd_ledger.notary.offline`.
    With --format consent-record it prints the contact's consent history as
    ISO/IEC TS 27560-style records in W3C DPV JSON-LD instead.

    \b
    Examples:
      dnd-ledger audit export loc-1 c-42 --bundle c-42.bundle.json
      dnd-ledger audit export loc-1 c-42 --format consent-record > c-42.jsonld
    """
    if fmt == "consent-record":
        if contact_id is None or bundle_path is not None:
            raise click.UsageError("--format consent-record takes a CONTACT_ID and no --bundle")
        click.echo(consent_record.export(c.ledger, location, contact_id))
        return
    if bundle_path is None:
        raise click.UsageError("--bundle FILE is required (or --format consent-record)")
    data = export_bundle(c.ledger, location, contact_id)
    Path(bundle_path).write_bytes(data)
    record = c.ledger.notary.latest_checkpoint()
    size = record.size if record else 0
    click.echo(f"wrote {bundle_path} ({len(data)} bytes): checkpoint at size {size}")


@audit.command("verify-bundle")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--public-key", "public_key", required=True,
              help="The ledger's verifier key, or a file holding it.")  # fmt: skip
@click.option("--as-of", type=TIME, help="Effective time [default: the checkpoint's time].")
@click.option("--known-at", type=TIME, help="Knowledge time [default: the checkpoint's time].")
@click.option("--require-witnesses", type=click.IntRange(min=0), default=0, metavar="N",
              help="Fail unless the checkpoint carries N cosignatures of the --witness-key "
              "witnesses.")  # fmt: skip
@witness_key_option
@json_option
def audit_verify_bundle(
    file: str,
    public_key: str,
    as_of: datetime | None,
    known_at: datetime | None,
    require_witnesses: int,
    witness_keys: tuple[str, ...],
    as_json: bool,
) -> None:
    """Verify a bundle offline (no database needed), then replay its contacts' DND state.

    \b
    Example:
      dnd-ledger audit verify-bundle c-42.bundle.json --public-key ledger.pub \\
        --as-of 2026-11-02T12:00:00Z
    """
    witnesses = witness_keys_of(witness_keys)
    try:
        key = load_public_key(public_key)
        verified = verify_bundle(Path(file).read_bytes(), key, witnesses=witnesses,
                                 require_witnesses=require_witnesses)  # fmt: skip
        result = report(verified, as_of, known_at)
    except BundleError as e:
        raise click.ClickException(f"bundle rejected: {e}") from e
    if as_json:
        emit_json(result)
    else:
        click.echo(report_text(result))
