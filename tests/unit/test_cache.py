"""The aggregate cache is bounded by how many aggregates it holds; each is compacted."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID, uuid4

import pytest
from tests.conftest import T0, Clock

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.domain.address import Address, address_uuid
from dnd_ledger.domain.contact import Contact
from dnd_ledger.domain.errors import HistoryNotLoaded
from dnd_ledger.domain.keys import contact_uuid
from dnd_ledger.domain.state import Effect, Op
from dnd_ledger.domain.values import Channel, DndKind, Source
from dnd_ledger.storage.cache import AggregateCache


class NoKeys:
    """A keys table with no keys."""

    def holds(self, owner: UUID, key: str) -> bool:
        return False

    def request_key(self, owner: UUID, request: str) -> str | None:
        return None


@dataclass
class Agg:
    version: int
    compacted_with: list[object] = field(default_factory=list)

    def compact(self, keys: object) -> None:
        self.compacted_with.append(keys)


def test_least_recently_used_aggregates_go_first_once_over_the_entries() -> None:
    cache = AggregateCache(2, keys=NoKeys())
    a, b, c = uuid4(), uuid4(), uuid4()
    cache.put(a, Agg(400))
    cache.put(b, Agg(1))
    assert cache.get(a).version == 400  # a is now the most recently used
    cache.put(c, Agg(1))  # a third entry: b, the least recently used, goes
    assert a in cache
    assert c in cache
    assert b not in cache
    assert cache.size() == 2


def test_the_bound_counts_aggregates_not_their_versions() -> None:
    cache = AggregateCache(3, keys=NoKeys())
    ids = [uuid4() for _ in range(3)]
    for n, aid in enumerate(ids):
        cache.put(aid, Agg(10**6 * (n + 1)))  # versions summing to millions
    assert all(aid in cache for aid in ids)
    cache.put(ids[0], Agg(10**7))  # a put again is the same entry
    assert cache.size() == 3
    cache.put(uuid4(), Agg(1))
    assert cache.size() == 3
    assert ids[1] not in cache  # the least recently used one


def test_every_aggregate_put_is_compacted_with_the_keys_table() -> None:
    keys = NoKeys()
    cache = AggregateCache(10, keys=keys)
    agg = Agg(3)
    cache.put(uuid4(), agg)
    assert agg.compacted_with == [keys]


def test_evict_removes_and_a_missing_key_is_a_key_error() -> None:
    cache = AggregateCache(10, keys=NoKeys())
    a: UUID = uuid4()
    cache.put(a, Agg(3))
    assert cache.get(a, evict=True).version == 3
    assert cache.size() == 0
    with pytest.raises(KeyError):
        cache.get(a)
    with pytest.raises(KeyError):
        cache.get(a, evict=True)


def test_a_cache_of_no_entries_still_holds_the_last_aggregate_put() -> None:
    cache = AggregateCache(0, keys=NoKeys())
    a, b = uuid4(), uuid4()
    cache.put(a, Agg(50))
    assert a in cache
    cache.put(b, Agg(1))
    assert a not in cache
    assert b in cache
    assert cache.size() == 1


# -- compacted aggregates, through the ledger ---------------------------------------------
P = "+14155550100"


def _ledger(clock: Clock) -> DndLedger:
    return DndLedger("memory:", clock=clock)


def test_a_cached_contact_is_compacted_and_a_late_event_restores_its_history(
    clock: Clock,
) -> None:
    ledger = _ledger(clock)
    ledger.execute(c.RegisterContact("loc-1", "ada", (P,)))
    clock.advance(minutes=10)
    ledger.execute(c.SetDnd("loc-1", "ada", (Channel.CALL,), "bob"))
    clock.advance(minutes=10)
    cid = contact_uuid("loc-1", "ada")
    cached = ledger.repository.cache.get(cid)  # type: ignore[union-attr]
    assert isinstance(cached, Contact)
    assert cached.entries is None  # compacted: the store holds the history
    # A STOP that occurred before the user's DND, recorded now: late, so it refolds.
    ledger.execute(c.ReceiveInbound("loc-1", Channel.SMS, P, "STOP", "SM-late", occurred_at=T0))
    replayed = ledger.repository.get(cid, version=cached.version)
    assert isinstance(replayed, Contact)
    assert cached.state == replayed.state
    assert cached.state.channel(Channel.SMS).status is DndKind.PERMANENT
    assert cached.state.channel(Channel.CALL).status is DndKind.ACTIVE


def test_a_compacted_contact_refuses_a_late_event_and_stays_as_it_was(clock: Clock) -> None:
    ledger = _ledger(clock)
    ledger.execute(c.RegisterContact("loc-1", "ada", (P,)))
    clock.advance(minutes=10)
    ledger.execute(c.SetDnd("loc-1", "ada", (Channel.CALL,), "bob"))
    contact = ledger.repository.get(contact_uuid("loc-1", "ada"))
    assert isinstance(contact, Contact)
    contact.compact(ledger.keys)
    version, state = contact.version, contact.state
    with pytest.raises(HistoryNotLoaded):
        contact.record(
            "DndSetByUser", occurred_at=T0, source=Source.USER, actor="bob",
            idempotency_key=None, policy_version="p", effect=Effect(
                Op.BLOCK, (Channel.SMS,), DndKind.ACTIVE, code="user", message="m"
            ),
        )  # fmt: skip
    assert contact.version == version
    assert contact.state is state
    assert contact.pending_events == []


def test_a_compacted_address_gives_its_signals_to_a_contact_that_claims_it_later(
    clock: Clock,
) -> None:
    ledger = _ledger(clock)
    ledger.execute(c.ReceiveInbound("loc-1", Channel.SMS, P, "STOP", "SM-1"))
    cached = ledger.repository.cache.get(address_uuid("loc-1", ledger.keyring.ref("phone", P)))  # type: ignore[union-attr]
    assert isinstance(cached, Address)
    assert cached.signals is None
    clock.advance(minutes=1)
    ledger.execute(c.RegisterContact("loc-1", "ada", (P,)))
    assert not ledger.can_send("loc-1", "ada", Channel.SMS).allowed
