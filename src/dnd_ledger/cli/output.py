"""Output helpers for the CLI: JSON for machines, aligned tables for people."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import click

from dnd_ledger.commands import Outcome
from dnd_ledger.domain.decide import Decision
from dnd_ledger.domain.values import ALL_CHANNELS
from dnd_ledger.services.queries import StatusView
from dnd_ledger.textcheck import escape, json_safe


def emit_json(obj: Any) -> None:
    click.echo(json_safe(json.dumps(obj, ensure_ascii=False, default=str)))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, datetime):
        return v.isoformat(timespec="seconds")
    return escape(str(v))  # stored control characters never reach the terminal raw


def outcome_json(o: Outcome) -> dict[str, Any]:
    return {"result": o.result, "events": list(o.events), "contacts": list(o.contacts), **o.detail}


def outcome_text(o: Outcome) -> str:
    if o.result == "appended":
        who = f" for {', '.join(o.contacts)}" if o.contacts else ""
        extra = f" ({o.detail['address']})" if "address" in o.detail else ""
        return f"appended {', '.join(o.events)}{who}{extra}"
    if o.result == "duplicate":
        return "duplicate: already recorded, nothing appended"
    reason = o.detail.get("reason") or o.detail.get("classification") or ""
    return f"{o.result}: nothing appended" + (f" ({reason})" if reason else "")


def status_text(v: StatusView) -> str:
    head = (
        f"{v.location_id}/{v.contact_id}: DND {v.dnd.value.upper()}"
        f"  (as of {_cell(v.as_of)}, as known at {_cell(v.known_at)})"
    )
    rows = [
        (c.value, s.status.value, s.since, s.code, s.message)
        for c, s in ((c, v.channels[c]) for c in ALL_CHANNELS)
    ]
    return head + "\n" + table(["channel", "status", "since", "code", "why"], rows)


def decision_text(d: Decision) -> str:
    verdict = "ALLOWED" if d.allowed else "BLOCKED"
    return escape(
        f"{verdict}: {d.direction.value} {d.mode.value} {d.channel.value}: {d.reason} [{d.rule}]"
    )
