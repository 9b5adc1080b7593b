"""What the notary reads: the log as stored, its own tree row, leaves and checkpoints."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dnd_ledger.notary.leaf import Leaf
from dnd_ledger.notary.locations import location_of, location_tag
from dnd_ledger.notary.merkle import CompactRange
from dnd_ledger.notary.records import (
    CHECKPOINT_COLUMNS,
    CheckpointRecord,
    StoredEvent,
    TreeState,
    checkpoint_record,
)
from dnd_ledger.notary.tree import TreeLevels
from dnd_ledger.storage.persistence import row_values

if TYPE_CHECKING:
    from dnd_ledger.storage.persistence import Sql
    from dnd_ledger.storage.ports import EventLog

TRACKING_NAME = "dnd_ledger.notary"


class NotaryReader:
    """The reading half of :class:`~dnd_ledger.notary.notary.Notary`."""

    app: EventLog
    sql: Sql
    tracking: Any
    _select_events: str

    # -- reading -----------------------------------------------------------------------
    def position(self) -> int:
        return int(self.tracking.max_tracking_id(TRACKING_NAME) or 0)

    def head(self) -> int:
        return int(self.app.recorder.max_notification_id() or 0)

    def stored_events(self, after: int, limit: int) -> list[StoredEvent]:
        """Events after a position, in log order, as stored.

        The rows ``recorder.select_notifications`` reads, with the same bytes, in
        one plain statement: building its Notification objects (a UUID parsed per
        row) costs more than everything else the notary does with an event.
        """
        return [_stored(r) for r in self._rows(after, limit)]

    def _rows(self, after: int, limit: int) -> Sequence[Sequence[Any]]:
        with self.sql.transaction(commit=False) as c:
            c.execute(self._select_events, (after, limit))
            rows: list[Any] = c.fetchall()
        if self.sql.dialect == "postgres":  # dict rows
            return [tuple(r.values()) for r in rows]
        return rows  # sqlite3.Row: already a sequence

    def state(self) -> TreeState:
        row = self.sql.fetchone(
            "SELECT t.size, t.hashes, t.checkpoint_size, t.pending_since, l.size AS loc_size,"
            " l.hashes AS loc_hashes, l.first_leaf FROM dnd_notary_tree t LEFT JOIN dnd_notary_location_tree l"
            " ON l.id = 1 WHERE t.id = 1"
        )
        if row is None:
            raise RuntimeError("the notary's tree row is missing")
        size, hashes = int(row[0]), [bytes.fromhex(h) for h in json.loads(row[1])]
        locations = None
        if row[6] is not None and int(row[6]) == 0:
            loc_hashes = [bytes.fromhex(h) for h in json.loads(row[5])]
            locations = CompactRange.from_state(int(row[4]), loc_hashes)
        return TreeState(
            size=size,
            range=CompactRange.from_state(size, hashes),
            checkpoint_size=int(row[2]),
            pending_since=datetime.fromisoformat(row[3]) if row[3] else None,
            locations=locations,
        )

    def location_entries(self, leaves: Sequence[Leaf]) -> list[tuple[int, str, str]] | None:
        """``(leaf index, originator, location tag)`` of the location index over ``leaves``.

        Rebuilt from the stored first event of every aggregate (the notary keeps only the
        index's compact range); None when the index does not start at leaf 0 (a ledger
        notarised before it existed).
        """
        row = self.sql.fetchone("SELECT first_leaf FROM dnd_notary_location_tree WHERE id = 1")
        if row is None or int(row[0]) != 0:
            return None
        firsts = {leaf.notification_id: i for i, leaf in enumerate(leaves) if leaf.version == 1}
        tags: dict[int, str] = {}
        after = 0
        while True:
            batch = self._first_events(after)
            for position, state in batch:
                if position in firsts:
                    tags[firsts[position]] = location_tag(location_of(_as_bytes(state)))
            if len(batch) < 5000:
                break
            after = int(batch[-1][0])
        return [(i, leaves[i].originator_id, tags.get(i, "")) for i in sorted(firsts.values())]

    def _first_events(self, after: int) -> list[tuple[int, Any]]:
        recorder: Any = self.app.recorder
        table = str(recorder.events_table_name)
        if self.sql.dialect == "sqlite":
            statement = (f"SELECT rowid, state FROM {table} WHERE originator_version = 1"
                         " AND rowid > ? ORDER BY rowid LIMIT 5000")  # fmt: skip
        else:
            schema = str(getattr(recorder.datastore, "schema", "") or "public")
            statement = (f'SELECT notification_id, state FROM "{schema}"."{table}"'
                         " WHERE originator_version = 1 AND notification_id > %s"
                         " ORDER BY notification_id LIMIT 5000")  # fmt: skip
        with self.sql.transaction(commit=False) as c:
            c.execute(statement, (after,))
            rows: list[Any] = c.fetchall()
        return [(int(v[0]), v[1]) for v in map(row_values, rows)]

    def checkpoints(self) -> list[CheckpointRecord]:
        """Every checkpoint, key hand-overs included, in log order (size, then time)."""
        rows = self.sql.fetchall(
            f"SELECT {CHECKPOINT_COLUMNS} FROM dnd_notary_checkpoints ORDER BY size"
        )
        records = [checkpoint_record(r) for r in rows] + self.handovers()
        return sorted(records, key=lambda r: (r.size, r.created_at))

    def handovers(self) -> list[CheckpointRecord]:
        rows = self.sql.fetchall(
            f"SELECT {CHECKPOINT_COLUMNS} FROM dnd_notary_handovers ORDER BY seq"
        )
        return [checkpoint_record(r, handover=True) for r in rows]

    def latest_checkpoint(self) -> CheckpointRecord | None:
        row = self.sql.fetchone(
            f"SELECT {CHECKPOINT_COLUMNS} FROM dnd_notary_checkpoints ORDER BY size DESC LIMIT 1"
        )
        latest = None if row is None else checkpoint_record(row)
        handovers = self.handovers()
        if handovers and (
            latest is None
            or (handovers[-1].size, handovers[-1].created_at) > (latest.size, latest.created_at)
        ):
            return handovers[-1]
        return latest

    def leaves(self, stop: int | None = None, batch: int = 10000) -> Iterator[tuple[int, Leaf]]:
        """``(leaf index, leaf)`` in index order, up to (not including) ``stop``."""
        after = -1
        while True:
            rows = self.sql.fetchall(
                "SELECT leaf_index, notification_id, originator_id, version, topic, state_sha256"
                " FROM dnd_notary_leaves WHERE leaf_index > ? AND leaf_index < ?"
                " ORDER BY leaf_index LIMIT ?",
                (after, 2**62 if stop is None else stop, batch),
            )
            for r in rows:
                yield (
                    int(r[0]),
                    Leaf(int(r[1]), str(r[2]), int(r[3]), str(r[4]), bytes.fromhex(r[5])),
                )
            if len(rows) < batch:
                return
            after = int(rows[-1][0])

    def levels(self, size: int) -> TreeLevels:
        """The tree of the first ``size`` leaves, from the stored leaf hashes."""
        levels = TreeLevels()
        after = -1
        while levels.size < size:
            rows = self.sql.fetchall(
                "SELECT leaf_index, leaf_hash FROM dnd_notary_leaves"
                " WHERE leaf_index > ? AND leaf_index < ? ORDER BY leaf_index LIMIT 10000",
                (after, size),
            )
            if not rows:
                break
            for index, h in rows:
                if int(index) != levels.size:
                    raise RuntimeError(f"the notary's leaves skip index {levels.size}")
                levels.append(bytes.fromhex(h))
            after = int(rows[-1][0])
        if levels.size != size:
            raise RuntimeError(f"the notary holds {levels.size} leaves, not {size}")
        return levels


def _stored(row: Sequence[Any]) -> StoredEvent:
    state = row[4]
    return StoredEvent(row[0], row[1], row[2], row[3], _as_bytes(state))


def _as_bytes(state: Any) -> bytes:
    if type(state) is bytes:
        return state
    # Text written into the BLOB column by hand, or a memoryview.
    return state.encode("utf-8") if isinstance(state, str) else bytes(state)


def _select_events_statement(app: EventLog) -> str:
    recorder: Any = app.recorder
    table = str(recorder.events_table_name)
    if app.sql.dialect == "sqlite":
        return (
            f"SELECT rowid, originator_id, originator_version, topic, state FROM {table}"
            " WHERE rowid > ? ORDER BY rowid LIMIT ?"
        )
    schema = str(getattr(recorder.datastore, "schema", "") or "public")
    return (
        "SELECT notification_id, originator_id, originator_version, topic, state"
        f' FROM "{schema}"."{table}" WHERE notification_id > %s ORDER BY notification_id'
        " LIMIT %s"
    )
