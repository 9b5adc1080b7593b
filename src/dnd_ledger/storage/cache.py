"""The aggregate cache: compacted aggregates, bounded by the events they stand for.

A contact folds every effect it is given, and a late event refolds them all; an
address keeps what providers said for contacts that claim it later. Both
histories are in the event store, so an aggregate entering the cache is
*compacted*: it drops them and keeps its current fold, idempotency keys and
addresses (the application restores a history on the rare occasion it needs
one). Memory still grows with an aggregate's version (one key per event), so
the cache evicts least-recently-used aggregates until the versions it holds sum
to at most ``budget`` events.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any
from uuid import UUID

from eventsourcing.application import Cache

#: Events held by cached aggregates, by default (about 500 bytes each in memory).
DEFAULT_BUDGET = 100_000


class EventBudgetCache(Cache[UUID, Any]):
    def __init__(self, budget: int = DEFAULT_BUDGET) -> None:
        super().__init__()
        self.budget = budget
        self.held = 0
        self._lru: OrderedDict[UUID, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: UUID, *, evict: bool = False) -> Any:
        with self._lock:
            if evict:
                value, weight = self._lru.pop(key)
                self.held -= weight
                return value
            value, _ = self._lru[key]
            self._lru.move_to_end(key)
            return value

    def put(self, key: UUID, value: Any | None) -> None:
        if value is None:
            return
        compact = getattr(value, "compact", None)
        if compact is not None:
            compact()
        weight = max(1, int(getattr(value, "version", 1)))
        with self._lock:
            old = self._lru.pop(key, None)
            if old is not None:
                self.held -= old[1]
            self._lru[key] = (value, weight)
            self.held += weight
            while self.held > self.budget and len(self._lru) > 1:
                _, (_, dropped) = self._lru.popitem(last=False)
                self.held -= dropped

    def __contains__(self, key: object) -> bool:
        return key in self._lru

    def size(self) -> int:
        return len(self._lru)


__all__ = ["DEFAULT_BUDGET", "EventBudgetCache"]
