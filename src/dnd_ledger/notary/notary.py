"""The notary: a tracked projection keeping an RFC 6962 Merkle tree over the event log.

It follows the notification log like the views do, but never decodes an
event: each stored event becomes one :class:`~dnd_ledger.notary.leaf.Leaf`
over its stored bytes, appended to the tree at the next dense index. Each
batch writes, in ONE transaction, the new leaves, the tree's compact range,
the checkpoint it completes (if any) and the eventsourcing tracking position,
so a crash leaves either all of a batch or none of it. The tree row is updated
only if it still holds the state the batch started from, so two processes
catching up at once cannot both extend it: the loser rolls back and retries.

A checkpoint is made once ``every`` leaves have accumulated since the last
one, or when leaves have waited ``interval`` seconds for one, and on demand;
always when the notary has reached the head of the log, never in the middle
of a backlog. So each checkpoint claims more than its root: every event
stored before it was made is in it (up to the clock skew ``verify``
allows), which is what lets a backdated insertion be caught. It is a C2SP tlog checkpoint
(origin, size, root, and a ``time`` extension line) signed as a C2SP note
with the Ed25519 key from the key file, when one is configured; without a
key the same text is stored unsigned and ``verify`` says so.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg
from eventsourcing.persistence import IntegrityError

from dnd_ledger.notary.leaf import stored_leaf
from dnd_ledger.notary.locations import entry_hash, location_of, location_tag, locations_line
from dnd_ledger.notary.merkle import CompactRange, leaf_hash
from dnd_ledger.notary.reading import (
    TRACKING_NAME,
    NotaryReader,
    _as_bytes,
    _select_events_statement,
)
from dnd_ledger.notary.records import (
    TABLES,
    TIME_PREFIX,
    CheckpointRecord,
    StoredEvent,
    TreeState,
    checkpoint_time,
    format_time,
)
from dnd_ledger.notary.signed_note import (
    Checkpoint,
    SigningKey,
    fingerprint,
    format_checkpoint_body,
    format_vkey,
    sign_checkpoint,
)
from dnd_ledger.storage.eventstore import insert_tracking

if TYPE_CHECKING:
    from dnd_ledger.storage.ports import EventLog

#: Leaves a transaction: a leaf is cheap to write, a commit is not.
BATCH_SIZE = 5000
#: From ``refresh_views``, the notary catches up at most this often (seconds) per process.
KEEP_UP_EVERY = 1.0
DEFAULT_EVERY = 1000
DEFAULT_INTERVAL = 60.0


class _Moved(Exception):
    """The tree row changed since it was read: another process got there first."""


_CONFLICTS = (IntegrityError, psycopg.IntegrityError, _Moved)


class Notary(NotaryReader):
    def __init__(
        self,
        app: EventLog,
        *,
        signing_key: SigningKey | None = None,
        every: int = DEFAULT_EVERY,
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        if every < 1:
            raise ValueError("checkpoint interval in events must be at least 1")
        if interval < 0:
            raise ValueError("checkpoint interval in seconds must not be negative")
        self.app = app
        self.sql = app.sql
        self.signing_key = signing_key
        self.every = every
        self.interval = interval
        self.tracking: Any = app.factory.tracking_recorder()
        self._origin: str | None = None
        self._select_events = _select_events_statement(app)
        self.keep_up_every = KEEP_UP_EVERY
        self._kept_up = -float("inf")

    # -- set-up ------------------------------------------------------------------------
    def create_tables(self) -> None:
        self.tracking.create_table()
        with self.sql.transaction() as c:
            for statement in TABLES:
                c.execute(statement)
            c.execute(
                self.sql.q(
                    "INSERT INTO dnd_meta (name, value) VALUES ('notary_origin', ?)"
                    " ON CONFLICT (name) DO NOTHING"
                ),
                (f"dnd-ledger/log/{uuid.uuid4().hex}",),
            )

    @property
    def origin(self) -> str:
        """The checkpoint origin line: names this log, fixed when its tables were made."""
        if self._origin is None:
            row = self.sql.fetchone("SELECT value FROM dnd_meta WHERE name = 'notary_origin'")
            if row is None:
                raise RuntimeError("the notary's origin is missing from dnd_meta")
            self._origin = str(row[0])
        return self._origin

    @property
    def public_key(self) -> str | None:
        """The verifier key (``name+id+key``) of the signing key, if one is configured."""
        if self.signing_key is None:
            return None
        return format_vkey(self.signing_key.name, self.signing_key.private_key.public_key())

    # -- catching up -------------------------------------------------------------------
    def keep_up(self) -> int:
        """``catch_up``, unless this process did so less than ``keep_up_every`` seconds ago.

        Called whenever the views are refreshed, which a service does after nearly
        every write: notarising each write in its own transaction would cost the
        notary a commit per event. Leaves lag the log by at most that long (verify
        reports them as pending); checkpoints, exports and ``verify`` catch up fully.
        """
        now = time.monotonic()
        if now - self._kept_up < self.keep_up_every:
            return 0
        self._kept_up = now
        return self.catch_up()

    def catch_up(
        self, *, batch_size: int = BATCH_SIZE, progress: Callable[[int], None] | None = None
    ) -> int:
        """Notarise every event not yet in the tree; returns how many were added."""
        done = 0
        while True:
            state = self.state()  # before the position: see _move_tree
            batch = self._rows(self.position(), batch_size)
            if not batch:
                self._checkpoint_if_due(state)
                return done
            at_head = len(batch) < batch_size
            try:
                self._apply(batch, state, at_head=at_head)
            except _CONFLICTS:
                continue  # another process extended the tree first: read it again
            done += len(batch)
            if progress:
                progress(len(batch))
            if at_head:
                return done

    def _apply(self, batch: Sequence[Sequence[Any]], state: TreeState, *, at_head: bool) -> None:
        now = self.app.clock()
        rng = state.range.copy()
        checkpoint_size = state.checkpoint_size
        pending_since: datetime | None = state.pending_since or now
        locs = state.locations.copy() if state.locations is not None else None
        leaves, checkpoints = [], []
        for position, originator, version, topic, stored in batch:
            if type(stored) is not bytes:
                stored = _as_bytes(stored)
            oid, digest, data = stored_leaf(position, originator, version, topic, stored)
            h = leaf_hash(data)
            leaves.append((rng.size, position, oid, version, topic, digest, h.hex()))
            if version == 1 and locs is not None:  # an aggregate's first event: index it
                locs.append(entry_hash(rng.size, oid, location_tag(location_of(stored))))
            rng.append(h)
        if at_head and self._due(rng.size - checkpoint_size, pending_since, now):
            checkpoints.append(self._make_checkpoint(rng.size, rng.root(), now, locs))
            checkpoint_size, pending_since = rng.size, None
        q = self.sql.q
        with self.sql.transaction() as c:
            self._move_tree(c, state, rng, checkpoint_size, pending_since)
            c.executemany(
                q(
                    "INSERT INTO dnd_notary_leaves (leaf_index, notification_id, originator_id,"
                    " version, topic, state_sha256, leaf_hash) VALUES (?, ?, ?, ?, ?, ?, ?)"
                ),
                leaves,
            )
            if locs is not None and state.locations is not None and locs != state.locations:
                c.execute(
                    q("UPDATE dnd_notary_location_tree SET size = ?, hashes = ? WHERE id = 1"),
                    (locs.size, json.dumps([h.hex() for h in locs.hashes])),
                )
            for record in checkpoints:
                self._insert_checkpoint(c, record)
            insert_tracking(self.tracking, c, TRACKING_NAME, batch[-1][0])

    def _due(self, waiting: int, since: datetime | None, now: datetime) -> bool:
        if waiting <= 0:
            return False
        return waiting >= self.every or (
            since is not None and (now - since).total_seconds() >= self.interval
        )

    def _checkpoint_if_due(self, state: TreeState) -> None:
        """At the head of the log: checkpoint if enough leaves, or time enough, have passed."""
        if self._due(state.size - state.checkpoint_size, state.pending_since, self.app.clock()):
            with contextlib.suppress(*_CONFLICTS):  # another process moved the tree meanwhile
                self._checkpoint_at(state)

    def retired(self) -> bool:
        """Whether the configured key was handed over: a retired key signs nothing more."""
        if self.signing_key is None:
            return False
        row = self.sql.fetchone(
            "SELECT 1 FROM dnd_notary_handovers WHERE previous_fingerprint = ?",
            (fingerprint(self.signing_key.private_key.public_key()),),
        )
        return row is not None

    # -- checkpoints -------------------------------------------------------------------
    def checkpoint(self) -> CheckpointRecord | None:
        """Catch up, then checkpoint the whole tree now (None while the log is empty).

        When the latest checkpoint already covers every leaf it is returned as
        it is, unless it is unsigned and a key is now configured: then it is
        signed.
        """
        while True:
            self.catch_up()
            state = self.state()
            if state.size == 0:
                return None
            latest = self.latest_checkpoint()
            if latest is not None and latest.size == state.size:
                if latest.signed or self.signing_key is None:
                    return latest
                record = self._make_checkpoint(
                    state.size, state.range.root(), self.app.clock(), state.locations
                )
                with self.sql.transaction() as c:
                    c.execute(
                        self.sql.q(
                            "UPDATE dnd_notary_checkpoints SET note = ?, key_name = ?,"
                            " key_fingerprint = ?, created_at = ? WHERE size = ? AND key_name IS NULL"
                        ),
                        (record.note, record.key_name, record.key_fingerprint,
                         format_time(record.created_at), record.size),
                    )  # fmt: skip
                return record
            try:
                return self._checkpoint_at(state)
            except _CONFLICTS:
                continue

    def _checkpoint_at(self, state: TreeState) -> CheckpointRecord:
        now = self.app.clock()
        record = self._make_checkpoint(state.size, state.range.root(), now, state.locations)
        with self.sql.transaction() as c:
            self._move_tree(c, state, state.range, state.size, None)
            self._insert_checkpoint(c, record)
        return record

    def checkpoint_body(
        self, size: int, root: bytes, now: datetime, locations: CompactRange | None
    ) -> Checkpoint:
        """The checkpoint text: origin, size, root, time and the location index."""
        extensions = [TIME_PREFIX + format_time(now)]
        if locations is not None:
            extensions.append(locations_line(locations.size, locations.root()))
        return Checkpoint(self.origin, size, root, tuple(extensions))

    def _make_checkpoint(
        self, size: int, root: bytes, now: datetime, locations: CompactRange | None
    ) -> CheckpointRecord:
        checkpoint = self.checkpoint_body(size, root, now, locations)
        key = self.signing_key
        if key is None or self.retired():
            return CheckpointRecord(size, root, format_checkpoint_body(checkpoint), None, None, now)
        note = sign_checkpoint(checkpoint, key.name, key.private_key)
        return CheckpointRecord(
            size, root, note, key.name, fingerprint(key.private_key.public_key()), now
        )

    def _insert_checkpoint(self, c: Any, r: CheckpointRecord) -> None:
        c.execute(
            self.sql.q(
                "INSERT INTO dnd_notary_checkpoints (size, root, note, key_name, key_fingerprint,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?)"
            ),
            (r.size, r.root.hex(), r.note, r.key_name, r.key_fingerprint,
             format_time(r.created_at)),
        )  # fmt: skip

    def _move_tree(
        self,
        c: Any,
        old: TreeState,
        rng: CompactRange,
        checkpoint_size: int,
        pending_since: datetime | None,
    ) -> None:
        """Compare-and-set the tree row: it moves only from the state the caller read.

        Callers read the tree row before the tracking position. Both move together,
        in one transaction; so if another process moved them after the row was read,
        this update matches no row, and the whole batch rolls back (``_Moved``).
        """
        c.execute(
            self.sql.q(
                "UPDATE dnd_notary_tree SET size = ?, hashes = ?, checkpoint_size = ?,"
                " pending_since = ? WHERE id = 1 AND size = ? AND checkpoint_size = ?"
                " RETURNING size"
            ),
            (
                rng.size,
                json.dumps([h.hex() for h in rng.hashes]),
                checkpoint_size,
                None if pending_since is None else pending_since.isoformat(),
                old.size,
                old.checkpoint_size,
            ),
        )
        if c.fetchone() is None:
            raise _Moved


__all__ = [
    "BATCH_SIZE",
    "DEFAULT_EVERY",
    "DEFAULT_INTERVAL",
    "KEEP_UP_EVERY",
    "TRACKING_NAME",
    "CheckpointRecord",
    "Notary",
    "StoredEvent",
    "TreeState",
    "checkpoint_time",
    "format_time",
]
