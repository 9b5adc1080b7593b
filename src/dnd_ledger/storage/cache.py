"""The aggregate cache: compacted aggregates, bounded by how many it holds.

A contact folds every effect it is given, and a late event refolds them all; an
address keeps what providers said for contacts that claim it later; both keep the
idempotency key of every event. All of it is in the database (the event store, the
keys table), so an aggregate entering the cache is *compacted*: it drops its history
and its keys, and keeps its current fold and addresses (it asks the keys table for a
key, and the application restores a history on the rare occasion it needs one). A
compacted aggregate's memory does not grow with its history, so the cache evicts
least-recently-used aggregates once it holds more than ``entries`` of them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any
from uuid import UUID

from eventsourcing.application import Cache

from dnd_ledger.domain.keys import KeyLookup

#: Aggregates cached, by default. Compacted, with its cache entry, a contact of the bench
#: workload takes about 3.4 KB and an address 0.9 KB (tracemalloc, whatever their number
#: of events), and the workload has two addresses a contact: 25,000 entries hold about
#: 45 MB, and 85 MB were they all contacts. At a million stored events 50,000 took the
#: bench's peak RSS to 374 MB, 25,000 (with 32 MiB SQLite page caches) to 272 MB, at the
#: same ingest rate there.
DEFAULT_ENTRIES = 25_000


class AggregateCache(Cache[UUID, Any]):
    """At most ``entries`` aggregates (at least the last one put), each compacted with
    ``keys`` (the keys table) as where its idempotency keys are looked up."""

    def __init__(self, entries: int = DEFAULT_ENTRIES, *, keys: KeyLookup) -> None:
        super().__init__()
        self.entries = max(1, entries)
        self.keys = keys
        self._lru: OrderedDict[UUID, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: UUID, *, evict: bool = False) -> Any:
        with self._lock:
            if evict:
                return self._lru.pop(key)
            value = self._lru[key]
            self._lru.move_to_end(key)
            return value

    def put(self, key: UUID, value: Any | None) -> None:
        """Cache ``value``, compacted: it must have no events that are not stored."""
        if value is None:
            return
        compact = getattr(value, "compact", None)
        if compact is not None:
            compact(self.keys)
        with self._lock:
            self._lru.pop(key, None)
            self._lru[key] = value
            while len(self._lru) > self.entries:
                self._lru.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        return key in self._lru

    def size(self) -> int:
        return len(self._lru)


__all__ = ["DEFAULT_ENTRIES", "AggregateCache"]
