"""``dnd-ledger import-legacy``: the legacy single-flag DND list."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from dnd_ledger import commands as cmd
from dnd_ledger.cli.common import Ctx, json_option, ledger_errors, pass_ctx
from dnd_ledger.cli.output import emit_json
from dnd_ledger.domain.text import NotText, decode_text

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@click.command("import-legacy")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@json_option
@pass_ctx
@ledger_errors
def import_legacy(c: Ctx, file: str, as_json: bool) -> None:
    """Import the legacy single-flag DND list (idempotent).

    CSV columns: location_id,contact_id,phone,email,dnd (dnd: true/false, 1/0,
    yes/no, on/off). Several phones or emails in one cell are separated by ';'.

    Example: dnd-ledger import-legacy legacy-contacts.csv
    """
    rows = list(_read_legacy(file))
    summary: dict[str, Any] = {"appended": 0, "duplicates": 0, "rejected": 0, "errors": []}
    batch: list[tuple[int, cmd.ImportLegacy]] = []

    def flush() -> None:
        outcomes = c.ledger.execute_many([b for _, b in batch])
        for (line, _), o in zip(batch, outcomes, strict=True):
            _tally(summary, line, o)
        batch.clear()

    show = sys.stderr.isatty() and not as_json
    out: Any = sys.stderr if show else _Null()
    with click.progressbar(rows, label="importing", file=out) as bar:
        for line, row in bar:
            if isinstance(row, str):
                summary["rejected"] += 1
                summary["errors"].append({"line": line, "error": row})
                continue
            batch.append((line, row))
            if len(batch) >= 500:
                flush()
        if batch:
            flush()
    if as_json:
        emit_json(summary)
    else:
        click.echo(
            f"imported: {summary['appended']} appended, {summary['duplicates']} duplicates, "
            f"{summary['rejected']} rejected"
        )
        for err in summary["errors"]:
            click.echo(f"  line {err['line']}: {err['error']}")
    if summary["rejected"]:
        sys.exit(1)  # like ingest: the good rows are in, the bad ones need attention


class _Null:
    def write(self, _: str) -> int:
        return 0

    def flush(self) -> None:
        pass


def _tally(summary: dict[str, Any], line: int, o: cmd.Outcome) -> None:
    if o.result == "appended":
        summary["appended"] += 1
    elif o.result == "duplicate":
        summary["duplicates"] += 1
    else:
        summary["rejected"] += 1
        summary["errors"].append({"line": line, "error": o.detail.get("error", o.result)})


def _read_legacy(file: str) -> Iterator[tuple[int, cmd.ImportLegacy | str]]:
    raw = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    try:
        text = decode_text(raw, "standard input" if file == "-" else file)
    except NotText as e:
        raise click.ClickException(str(e)) from None
    with io.StringIO(text, newline="") as f:
        reader = csv.DictReader(f)
        need = {"location_id", "contact_id", "phone", "email", "dnd"}
        missing = need - set(reader.fieldnames or ())
        if missing:
            raise click.ClickException(f"CSV is missing columns: {', '.join(sorted(missing))}")
        for row in reader:
            line = reader.line_num
            flag = (row.get("dnd") or "").strip().lower()
            if flag not in _TRUE and flag not in _FALSE:
                yield line, f"dnd value {row.get('dnd')!r} is not true/false, 1/0, yes/no or on/off"
                continue
            yield (
                line,
                cmd.ImportLegacy(
                    location_id=(row.get("location_id") or "").strip(),
                    contact_id=(row.get("contact_id") or "").strip(),
                    dnd=flag in _TRUE,
                    phones=_split(row.get("phone")),
                    emails=_split(row.get("email")),
                ),
            )


def _split(cell: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (cell or "").split(";") if p.strip())
