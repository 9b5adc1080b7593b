"""``dnd-ledger audit``: the compliance audit trail (the default subcommand), auditor
bundles and consent records."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from dnd_ledger import consent_record
from dnd_ledger.audit_format import render_audit
from dnd_ledger.cli.common import TIME, Ctx, json_option, ledger_errors, pass_ctx
from dnd_ledger.cli.format import format_option
from dnd_ledger.cli.output import emit_json
from dnd_ledger.cli.witness import witness_key_option, witness_keys_of
from dnd_ledger.notary.bundle import export_bundle
from dnd_ledger.notary.offline import (
    BundleError,
    load_public_key,
    report,
    report_text,
    verify_bundle,
)


class DefaultGroup(click.Group):
    """A group that runs its default command when the first word names no subcommand."""

    default_command = "trail"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_options(ctx, formatter)
        default = self.commands[self.default_command]
        rows = [r for p in default.get_params(ctx) if isinstance(p, click.Option)
                and "--help" not in p.opts and (r := p.get_help_record(ctx))]  # fmt: skip
        with formatter.section(f"Options of `{ctx.command_path} {self.default_command}`"):
            formatter.write_dl(rows)


@click.group(cls=DefaultGroup)
def audit() -> None:
    """The compliance audit trail (and, with subcommands, its export).

    \b
    Examples:
      dnd-ledger audit loc-1 c-42 --format csv
      dnd-ledger audit loc-1 --since 2026-11-01T00:00:00Z --format jsonl
    """


@audit.command("trail")
@click.argument("location", required=False)
@click.argument("contact_id", required=False)
@click.option("--since", type=TIME, help="Events that occurred at or after this time.")
@click.option("--until", type=TIME, help="Events that occurred at or before this time.")
@format_option
@pass_ctx
@ledger_errors
def audit_trail(
    c: Ctx, location: str | None, contact_id: str | None, since: datetime | None,
    until: datetime | None, fmt: str,
) -> None:  # fmt: skip
    """Print the audit trail: one row per event, in log order.

    Example: dnd-ledger audit loc-1 c-42 --format csv
    """
    ledger = c.ledger
    ledger.ensure_current()
    rows = ledger.views.audit(location, contact_id, since, until)
    out = render_audit(rows, fmt)
    if out:
        click.echo(out)


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
