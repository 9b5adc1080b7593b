"""The notary's tables and the records it reads back from them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from dnd_ledger.notary.keychain import note_body
from dnd_ledger.notary.merkle import CompactRange
from dnd_ledger.notary.signed_note import Checkpoint, parse_checkpoint_body
from dnd_ledger.storage.persistence import row_values

TIME_PREFIX = "time "

TABLES = [
    "CREATE TABLE IF NOT EXISTS dnd_notary_leaves ("
    " leaf_index BIGINT PRIMARY KEY, notification_id BIGINT NOT NULL,"
    " originator_id TEXT NOT NULL, version BIGINT NOT NULL, topic TEXT NOT NULL,"
    " state_sha256 TEXT NOT NULL, leaf_hash TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS dnd_notary_tree ("
    " id INTEGER PRIMARY KEY CHECK (id = 1), size BIGINT NOT NULL, hashes TEXT NOT NULL,"
    " checkpoint_size BIGINT NOT NULL, pending_since TEXT)",
    "CREATE TABLE IF NOT EXISTS dnd_notary_checkpoints ("
    " size BIGINT PRIMARY KEY, root TEXT NOT NULL, note TEXT NOT NULL, key_name TEXT,"
    " key_fingerprint TEXT, created_at TEXT NOT NULL)",
    # Key hand-overs (keychain.py): checkpoints signed by the old and the new key.
    "CREATE TABLE IF NOT EXISTS dnd_notary_handovers ("
    " seq BIGINT PRIMARY KEY, size BIGINT NOT NULL, root TEXT NOT NULL, note TEXT NOT NULL,"
    " key_name TEXT NOT NULL, key_fingerprint TEXT NOT NULL, previous_key TEXT NOT NULL,"
    " previous_fingerprint TEXT NOT NULL, created_at TEXT NOT NULL)",
    "INSERT INTO dnd_notary_tree (id, size, hashes, checkpoint_size, pending_since)"
    " VALUES (1, 0, '[]', 0, NULL) ON CONFLICT (id) DO NOTHING",
    # The location index's compact range (locations.py); its entries are rebuilt from the
    # aggregates' first events when a location is exported.
    "CREATE TABLE IF NOT EXISTS dnd_notary_location_tree ("
    " id INTEGER PRIMARY KEY CHECK (id = 1), size BIGINT NOT NULL, hashes TEXT NOT NULL,"
    " first_leaf BIGINT NOT NULL)",
    # A ledger notarised before the index existed starts it where it is (first_leaf > 0):
    # its checkpoints then carry no index, and location bundles say they are not complete.
    "INSERT INTO dnd_notary_location_tree (id, size, hashes, first_leaf)"
    " SELECT 1, 0, '[]', size FROM dnd_notary_tree WHERE id = 1 ON CONFLICT (id) DO NOTHING",
]


def format_time(t: datetime) -> str:
    """UTC, microseconds, ``Z``: one spelling per instant, as signed in checkpoints."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def checkpoint_time(checkpoint: Checkpoint) -> datetime | None:
    """The ``time`` extension line of a checkpoint, if it has one."""
    for line in checkpoint.extensions:
        if line.startswith(TIME_PREFIX):
            return datetime.strptime(line[len(TIME_PREFIX) :], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=UTC
            )
    return None


@dataclass(frozen=True)
class CheckpointRecord:
    """A checkpoint as the notary stored it: the note is the evidence, the rest an index."""

    size: int
    root: bytes
    note: str
    key_name: str | None
    key_fingerprint: str | None
    created_at: datetime
    #: A key hand-over (signed by the old key and ``key_name``, the new one).
    handover: bool = False

    @property
    def signed(self) -> bool:
        return self.key_name is not None

    @property
    def body(self) -> Checkpoint:
        """The checkpoint text (unverified: ``verify`` checks the signature)."""
        return parse_checkpoint_body(note_body(self.note) if self.signed else self.note)

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "root": self.root.hex(),
            "signed": self.signed,
            "key_name": self.key_name,
            "key_fingerprint": self.key_fingerprint,
            "created_at": format_time(self.created_at),
            "note": self.note,
            "handover": self.handover,
        }


@dataclass(frozen=True)
class TreeState:
    size: int
    range: CompactRange
    checkpoint_size: int
    pending_since: datetime | None
    #: The location index's compact range; None when it does not cover the tree from leaf 0.
    locations: CompactRange | None = None


class StoredEvent(NamedTuple):
    """A row of the event log exactly as stored: ``state`` is the transcoder's bytes."""

    id: int
    originator_id: Any
    originator_version: int
    topic: str
    state: bytes


CHECKPOINT_COLUMNS = "size, root, note, key_name, key_fingerprint, created_at"


def checkpoint_record(row: tuple[Any, ...], handover: bool = False) -> CheckpointRecord:
    r = row_values(row)
    return CheckpointRecord(
        size=int(r[0]),
        root=bytes.fromhex(r[1]),
        note=str(r[2]),
        key_name=r[3],
        key_fingerprint=r[4],
        created_at=datetime.strptime(r[5], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC),
        handover=handover,
    )


__all__ = [
    "CHECKPOINT_COLUMNS",
    "TABLES",
    "TIME_PREFIX",
    "CheckpointRecord",
    "StoredEvent",
    "TreeState",
    "checkpoint_record",
    "checkpoint_time",
    "format_time",
]
