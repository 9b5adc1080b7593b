"""Reads from the views: the hot path never replays an aggregate."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from dnd_ledger.domain.state import INACTIVE, ChannelState, Effect, Entry
from dnd_ledger.domain.values import ALL_CHANNELS, Channel, DndKind, Overall
from dnd_ledger.persistence import Sql, row_values

AUDIT_FIELDS = (
    "position", "location_id", "contact_id", "occurred_at", "recorded_at", "event", "source",
    "actor", "channels", "effect", "reason", "before", "after", "idempotency_key", "policy_version",
    "evidence",
)  # fmt: skip


def _state(row: tuple[Any, ...]) -> ChannelState:
    status, since, code, message, event, event_id = row
    if status == "inactive":
        return INACTIVE
    return ChannelState(
        status=DndKind(status),
        since=datetime.fromisoformat(since) if since else None,
        code=code,
        message=message,
        event=event,
        event_id=event_id,
    )


def _reason(effect: dict[str, Any]) -> str | None:
    code, message = effect.get("code"), effect.get("message")
    if code and message:
        return f"{code}: {message}"
    return message or code or None


class ViewReader:
    def __init__(self, sql: Sql) -> None:
        self.sql = sql
        self._one = sql.q(
            "SELECT status, since, code, message, cause_event, cause_event_id, overall"
            " FROM dnd_status_channels WHERE location_id = ? AND contact_id = ? AND channel = ?"
        )
        self._all = sql.q(
            "SELECT channel, status, since, code, message, cause_event, cause_event_id"
            " FROM dnd_status_channels WHERE location_id = ? AND contact_id = ?"
        )

    def channel(
        self, location_id: str, contact_id: str, channel: Channel
    ) -> tuple[ChannelState, Overall] | None:
        with self.sql.transaction(commit=False) as c:
            c.execute(self._one, (location_id, contact_id, channel.value))
            row = c.fetchone()
        if row is None:
            return None
        row = row_values(row)
        return _state(row[:6]), Overall(row[6])

    def channels(self, location_id: str, contact_id: str) -> dict[Channel, ChannelState] | None:
        with self.sql.transaction(commit=False) as c:
            c.execute(self._all, (location_id, contact_id))
            rows = [row_values(r) for r in c.fetchall()]
        if not rows:
            return None
        found = {Channel(r[0]): _state(r[1:]) for r in rows}
        return {ch: found.get(ch, INACTIVE) for ch in ALL_CHANNELS}

    def entries(
        self, location_id: str, contact_id: str, as_of: datetime | None, known_at: datetime | None
    ) -> list[Entry]:
        """The contact's effects from the audit view, filtered on both timelines."""
        from dnd_ledger.projections.projector import iso

        sql = (
            "SELECT occurred_at, recorded_at, version, event, aggregate_id, effect_data"
            " FROM dnd_audit WHERE location_id = ? AND contact_id = ? AND effect_data != '{}'"
        )
        params: list[Any] = [location_id, contact_id]
        if as_of is not None:
            sql += " AND occurred_at <= ?"
            params.append(iso(as_of))
        if known_at is not None:
            sql += " AND recorded_at <= ?"
            params.append(iso(known_at))
        rows = self.sql.fetchall(sql, params)
        return [
            Entry(
                occurred_at=datetime.fromisoformat(r[0]),
                recorded_at=datetime.fromisoformat(r[1]),
                seq=int(r[2]),
                event=str(r[3]),
                event_id=f"{r[4]}:{r[2]}",
                effect=Effect.from_dict(json.loads(r[5])),
            )
            for r in rows
        ]

    def audit(
        self,
        location_id: str | None = None,
        contact_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        from dnd_ledger.projections.projector import iso

        columns = ", ".join("effect_data" if f == "reason" else f for f in AUDIT_FIELDS)
        sql = f"SELECT {columns} FROM dnd_audit"
        where, params = [], []
        if location_id is not None:
            where.append("location_id = ?")
            params.append(location_id)
        if contact_id is not None:
            where.append("contact_id = ?")
            params.append(contact_id)
        if since is not None:
            where.append("occurred_at >= ?")
            params.append(iso(since))
        if until is not None:
            where.append("occurred_at <= ?")
            params.append(iso(until))
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY position"
        out = []
        for r in self.sql.fetchall(sql, params):
            row = dict(zip(AUDIT_FIELDS, r, strict=True))
            row["position"] = int(row["position"])
            row["reason"] = _reason(json.loads(row["reason"]))
            row["before"] = json.loads(row["before"])
            row["after"] = json.loads(row["after"])
            out.append(row)
        return out

    def stats(self, location_id: str | None = None) -> dict[str, dict[str, dict[str, int]]]:
        sql = "SELECT location_id, dimension, value, count FROM dnd_stats"
        params: list[Any] = []
        if location_id is not None:
            sql += " WHERE location_id = ?"
            params.append(location_id)
        out: dict[str, dict[str, dict[str, int]]] = {}
        for loc, dim, value, count in self.sql.fetchall(sql + " ORDER BY 1, 2, 3", params):
            if int(count):
                out.setdefault(loc, {}).setdefault(dim, {})[value] = int(count)
        return out
