"""``dnd-ledger inbound`` (one inbound message) and ``ingest`` (backfill archived Twilio
and Mailgun payloads)."""

from __future__ import annotations

import io
import sys
import time
import tomllib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import click

from dnd_ledger import commands as cmd
from dnd_ledger.cli.common import (
    Ctx,
    json_option,
    ledger_errors,
    pass_ctx,
    recording,
    report,
)
from dnd_ledger.cli.output import emit_json
from dnd_ledger.commands import Command
from dnd_ledger.domain.text import NotText, decode_text
from dnd_ledger.domain.values import Channel
from dnd_ledger.providers.backfill import FORMATS, BackfillItem, iter_backfill
from dnd_ledger.providers.outcomes import Ignored, ParseError

BATCH = 500


@click.command()
@click.argument("location")
@click.option("--channel", type=click.Choice(["sms", "whatsapp"]), required=True)
@click.option("--from", "from_address", required=True, help="Sender phone number (E.164).")
@click.option("--body", required=True, help="Message text.")
@click.option("--message-sid", required=True, help="Provider message id (idempotency key).")
@recording
def inbound(
    c: Ctx, location: str, channel: str, from_address: str, body: str, message_sid: str,
    at: datetime | None, as_json: bool,
) -> None:  # fmt: skip
    """Record an inbound message from an address (keywords are processed).

    Example: dnd-ledger inbound loc-1 --channel sms --from +14155550100 --body STOP --message-sid SM1
    """
    command = cmd.ReceiveInbound(location, Channel(channel), from_address, body, message_sid, at)
    report(c.ledger.execute(command), as_json)


def mailgun_keys(config: str | None, location: str) -> list[str]:
    """The location's Mailgun signing key(s) from the service configuration file."""
    if config is None:
        raise click.UsageError("--verify-signatures needs --config (or DND_LEDGER_CONFIG)")
    try:
        data = tomllib.loads(decode_text(Path(config).read_bytes(), config))
    except (OSError, NotText, tomllib.TOMLDecodeError) as e:
        raise click.ClickException(f"cannot read config {config}: {e}") from e
    loc = data.get("locations", {}).get(location, {})
    keys = [
        k
        for k in (loc.get("mailgun_signing_key"), *loc.get("mailgun_previous_signing_keys", []))
        if k
    ]
    if not keys:
        raise click.ClickException(
            f"config {config} has no mailgun_signing_key for location {location!r}"
        )
    return keys


def _line_key(line: str | int) -> tuple[int, int]:
    text = str(line)
    head, _, index = text.partition("[")
    return int(head), int(index.rstrip("]") or -1)


def _lines(stream: BinaryIO) -> Iterator[bytes]:
    yield from stream


@click.command()
@click.argument("file", type=click.File("rb"))
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True)
@click.option("--location", required=True, help="The location the payloads belong to.")
@click.option("--list", "list_name", type=click.Choice(["bounces", "complaints", "unsubscribes"]),
              help="Which suppression list (mailgun-suppressions only).")  # fmt: skip
@click.option(
    "--verify-signatures", is_flag=True, help="Check Mailgun signatures with the keys in --config."
)
@click.option("--config", envvar="DND_LEDGER_CONFIG", type=click.Path(dir_okay=False),
              help="Service configuration (TOML) holding the signing keys.")  # fmt: skip
@json_option
@pass_ctx
@ledger_errors
def ingest(
    c: Ctx, file: BinaryIO, fmt: str, location: str, list_name: str | None,
    verify_signatures: bool, config: str | None, as_json: bool,
) -> None:  # fmt: skip
    """Backfill provider payloads from FILE (or - for stdin); idempotent.

    \b
    twilio-inbound, twilio-status, mailgun: JSON lines, one webhook body per line
    mailgun-events: Events API pages ({"items": [...]}), one per line or one document
    mailgun-suppressions: suppression CSV export (address,code,error,created_at) with --list

    A bad line never stops the good ones. The summary counts appended, duplicates,
    ignored (no effect under the policy) and rejected lines; exit status 1 if any
    line was rejected.

    Example: dnd-ledger ingest twilio-status.jsonl --format twilio-status --location loc-1
    """
    if fmt == "mailgun-suppressions" and list_name is None:
        raise click.UsageError("--format mailgun-suppressions needs --list")
    if fmt != "mailgun-suppressions" and list_name is not None:
        raise click.UsageError("--list goes with --format mailgun-suppressions only")
    keys = mailgun_keys(config, location) if verify_signatures else []
    if verify_signatures and fmt != "mailgun":
        raise click.UsageError("--verify-signatures applies to --format mailgun (signed webhooks)")
    ledger = c.ledger
    summary: dict[str, Any] = {
        "appended": 0,
        "duplicates": 0,
        "ignored": 0,
        "rejected": 0,
        "errors": [],
    }
    pending: list[tuple[BackfillItem, Command]] = []

    def where(item: BackfillItem) -> str | int:
        return item.line if item.index is None else f"{item.line}[{item.index}]"

    def flush() -> None:
        outcomes = ledger.execute_many([cmd for _, cmd in pending])
        for (item, _), o in zip(pending, outcomes, strict=True):
            if o.result == "appended":
                summary["appended"] += 1
            elif o.result == "duplicate":
                summary["duplicates"] += 1
            elif o.result == "ignored":
                summary["ignored"] += 1
            else:
                summary["rejected"] += 1
                summary["errors"].append(
                    {"line": where(item), "error": o.detail.get("error", o.result)}
                )
        pending.clear()

    started = time.perf_counter()
    show = sys.stderr.isatty() and not as_json
    out: Any = sys.stderr if show else io.StringIO()
    items = iter_backfill(_lines(file), fmt, location, list_name,
                          verify_signatures=verify_signatures, signing_keys=keys)  # fmt: skip
    with click.progressbar(items, label="ingesting", file=out, show_pos=True) as bar:
        for item in bar:
            result = item.result
            if isinstance(result, ParseError):
                summary["rejected"] += 1
                summary["errors"].append({"line": where(item), "error": result.message})
            elif isinstance(result, Ignored):
                summary["ignored"] += 1
            else:
                pending.append((item, result))
                if len(pending) >= BATCH:
                    flush()
        if pending:
            flush()
    took = time.perf_counter() - started
    summary["errors"].sort(key=lambda e: _line_key(e["line"]))
    if as_json:
        emit_json(summary)
    else:
        click.echo(
            f"ingested in {took:.2f}s: {summary['appended']} appended, {summary['duplicates']} "
            f"duplicates, {summary['ignored']} ignored, {summary['rejected']} rejected"
        )
        for err in summary["errors"][:50]:
            click.echo(f"  line {err['line']}: {err['error']}")
    if summary["rejected"]:
        sys.exit(1)
