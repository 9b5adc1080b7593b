"""The Address aggregate: what providers reported about one address in one location.

Provider events arrive by address, not by contact. Each is recorded here first
(this stream serialises them with registrations, so none is lost to a race),
then applied to every contact that has the address; a contact that registers
the address later adopts everything recorded here.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from dnd_ledger.domain.keys import NAMESPACE, NO_KEYS, KeyLookup, added, filter_with, may_hold
from dnd_ledger.domain.values import AddressKind, Source


@lru_cache(maxsize=200_000)
def address_uuid(location_id: str, ref: str) -> UUID:
    return uuid5(NAMESPACE, f"address\x1f{location_id}\x1f{ref}")


@dataclass(frozen=True, slots=True)
class Signal:
    """A provider event about this address, as recorded on its stream."""

    event: str  # the contact event it becomes, e.g. "OptOutKeyword"
    event_id: str
    occurred_at: datetime
    source: Source
    actor: str | None
    idempotency_key: str
    policy_version: str
    effect: dict[str, Any]
    detail: dict[str, Any]


class Address(Aggregate):
    class Seen(Aggregate.Created):
        location_id: str
        kind: AddressKind
        ref: str

    class Claimed(Aggregate.Event):
        contact_id: str
        occurred_at: datetime

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Address)
            if self.contact_id not in aggregate.claimants:
                aggregate.claimants.append(self.contact_id)

    class Released(Aggregate.Event):
        """A contact no longer has the address: later signals do not reach it."""

        contact_id: str
        occurred_at: datetime

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Address)
            if self.contact_id in aggregate.claimants:
                aggregate.claimants.remove(self.contact_id)

    class SignalRecorded(Aggregate.Event):
        event: str
        occurred_at: datetime
        source: Source
        actor: str | None
        idempotency_key: str
        policy_version: str
        effect: dict[str, Any]
        detail: dict[str, Any]

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Address)
            aggregate.keys = added(aggregate.keys, self.idempotency_key)
            aggregate.key_filter = filter_with(aggregate.key_filter, self.idempotency_key)
            if aggregate.signals is not None:
                aggregate.signals.append(self.signal())

        def signal(self) -> Signal:
            return Signal(
                event=self.event,
                event_id=f"{self.originator_id}:{self.originator_version}",
                occurred_at=self.occurred_at,
                source=self.source,
                actor=self.actor,
                idempotency_key=self.idempotency_key,
                policy_version=self.policy_version,
                effect=self.effect,
                detail=self.detail,
            )

    def __init__(self, location_id: str, kind: AddressKind, ref: str) -> None:
        self.location_id = location_id
        self.kind = kind
        self.ref = ref
        self.claimants: list[str] = []
        #: The idempotency keys of its signals: all of them while ``key_lookup`` is None;
        #: once compacted, only those applied since (the lookup has the stored ones).
        self.keys: Set[str] = NO_KEYS
        self.key_lookup: KeyLookup | None = None
        #: Every key it recorded, as a fixed-size filter (see domain.keys.may_hold).
        self.key_filter = 0
        #: What providers said, for contacts that claim the address later; None once
        #: compacted for the cache (the event store holds them: see :meth:`restore_signals`).
        self.signals: list[Signal] | None = []

    def compact(self, keys: KeyLookup) -> None:
        """Forget the signals and the idempotency keys (the event store and ``keys``, the
        keys of its stored events, hold them). Only for an address whose events are all
        stored."""
        if self._pending_events:
            raise RuntimeError(f"address {self.id} has events not stored: it cannot compact")
        self.signals = None
        self.keys = NO_KEYS
        self.key_lookup = keys

    def has_key(self, key: str) -> bool:
        """Whether a signal with idempotency key ``key`` is recorded."""
        if key in self.keys:
            return True
        if self.key_lookup is None or not may_hold(self.key_filter, key):
            return False
        return self.key_lookup.holds(self.id, key)

    def restore_signals(self, events: Iterable[Any]) -> list[Signal]:
        """Rebuild the signals from this address's events (stored, then pending)."""
        self.signals = [e.signal() for e in events if isinstance(e, Address.SignalRecorded)]
        return self.signals

    @classmethod
    def open(
        cls, location_id: str, kind: AddressKind, ref: str, timestamp: datetime | None = None
    ) -> Address:
        return cls._create(
            cls.Seen,
            id=address_uuid(location_id, ref),
            timestamp=timestamp,
            location_id=location_id,
            kind=kind,
            ref=ref,
        )

    def claim(
        self, contact_id: str, occurred_at: datetime, timestamp: datetime | None = None
    ) -> None:
        if contact_id not in self.claimants:
            self.trigger_event(
                self.Claimed, timestamp=timestamp, contact_id=contact_id, occurred_at=occurred_at
            )

    def release(
        self, contact_id: str, occurred_at: datetime, timestamp: datetime | None = None
    ) -> None:
        if contact_id in self.claimants:
            self.trigger_event(
                self.Released, timestamp=timestamp, contact_id=contact_id, occurred_at=occurred_at
            )

    def record_signal(
        self,
        event: str,
        *,
        occurred_at: datetime,
        source: Source,
        actor: str | None,
        idempotency_key: str,
        policy_version: str,
        effect: dict[str, Any],
        detail: dict[str, Any],
        timestamp: datetime | None = None,
    ) -> Signal:
        self.trigger_event(
            self.SignalRecorded,
            timestamp=timestamp,
            event=event,
            occurred_at=occurred_at,
            source=source,
            actor=actor,
            idempotency_key=idempotency_key,
            policy_version=policy_version,
            effect=effect,
            detail=detail,
        )
        if self.signals is not None:
            return self.signals[-1]  # built by the event's apply
        recorded = self.pending_events[-1]
        assert isinstance(recorded, Address.SignalRecorded)
        return recorded.signal()
