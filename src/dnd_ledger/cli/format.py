"""One output option for read commands: ``--format table|json|jsonl|csv`` (``--json``
is shorthand for ``--format json``), and the renderer of rows in each format."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from dnd_ledger.cli.output import table
from dnd_ledger.csv_safe import write_csv
from dnd_ledger.textcheck import json_safe

F = TypeVar("F", bound=Callable[..., Any])
FORMATS = ("table", "json", "jsonl", "csv")


def format_option(f: F) -> F:
    """Adds ``--format`` and ``--json``; the command receives ``fmt``."""

    @functools.wraps(f)
    def wrapper(*args: Any, as_json: bool, fmt: str | None, **kwargs: Any) -> Any:
        if as_json and fmt not in (None, "json"):
            raise click.UsageError("--json is --format json: give one of them")
        return f(*args, fmt="json" if as_json else (fmt or "table"), **kwargs)

    wrapper = click.option("--json", "as_json", is_flag=True, help="Same as --format json.")(
        wrapper
    )
    return click.option(  # type: ignore[return-value]
        "--format", "fmt", type=click.Choice(FORMATS), default=None,
        help="Output format (default: table).",
    )(wrapper)  # fmt: skip


def dumps(obj: Any) -> str:
    return json_safe(json.dumps(obj, ensure_ascii=False, default=str))


def _flat(value: Any) -> Any:
    if isinstance(value, dict):
        return "; ".join(f"{k}={_flat(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(str(_flat(v)) for v in value)
    return value


def render_rows(rows: Sequence[dict[str, Any]], fmt: str, columns: Sequence[str]) -> str:
    """Rows (dicts) in ``fmt``; table and CSV show ``columns``, nested values flattened."""
    if fmt == "json":
        return dumps(list(rows))
    if fmt == "jsonl":
        return "\n".join(dumps(r) for r in rows)
    cells = [[_flat(r.get(c)) for c in columns] for r in rows]
    if fmt == "csv":
        return write_csv(columns, cells).rstrip("\n")
    return table(list(columns), cells)
