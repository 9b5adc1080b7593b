"""The audit trail's text formats, shared by the CLI and the HTTP service.

``json`` is an array, ``jsonl`` one object per line, ``csv`` has a header row,
``table`` is for people. Before/after maps read ``sms=inactive; email=active``
in CSV and table cells.
"""

from __future__ import annotations

import json
from typing import Any

from dnd_ledger.cli.output import table
from dnd_ledger.csv_safe import write_csv
from dnd_ledger.projections.queries import AUDIT_FIELDS
from dnd_ledger.textcheck import json_safe


def _pairs(d: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in d.items())


def audit_csv(rows: list[dict[str, Any]]) -> str:
    """The audit trail as CSV; cells that a spreadsheet would run are neutralised."""
    return write_csv(
        AUDIT_FIELDS,
        ([_pairs(r[f]) if f in ("before", "after") else r[f] for f in AUDIT_FIELDS]
         for r in rows),
    )  # fmt: skip


def render_audit(rows: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "json":
        return json_safe(json.dumps(rows, ensure_ascii=False))
    if fmt == "jsonl":
        return "\n".join(json_safe(json.dumps(r, ensure_ascii=False)) for r in rows)
    if fmt == "csv":
        return audit_csv(rows).rstrip("\n")
    body = [
        (r["position"], r["occurred_at"][:19] + "Z", r["recorded_at"][:19] + "Z",
         r["contact_id"] or "(address)", r["event"], r["source"], r["actor"], r["effect"],
         f"{_pairs(r['before'])} -> {_pairs(r['after'])}" if r["after"] else "-")
        for r in rows
    ]  # fmt: skip
    headers = [
        "#",
        "occurred",
        "recorded",
        "contact",
        "event",
        "source",
        "actor",
        "effect",
        "change",
    ]
    return table(headers, body)
