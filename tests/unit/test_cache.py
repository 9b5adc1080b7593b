"""The aggregate cache is bounded by the events its aggregates hold."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID, uuid4

import pytest
from tests.conftest import T0, Clock

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.domain.address import Address, address_uuid
from dnd_ledger.domain.contact import Contact, HistoryNotLoaded
from dnd_ledger.domain.keys import contact_uuid
from dnd_ledger.domain.state import Effect, Op
from dnd_ledger.domain.values import Channel, DndKind, Source
from dnd_ledger.storage.cache import EventBudgetCache


@dataclass
class Agg:
    version: int


def test_least_recently_used_aggregates_go_first_once_over_budget() -> None:
    cache = EventBudgetCache(budget=10)
    a, b, c = uuid4(), uuid4(), uuid4()
    cache.put(a, Agg(4))
    cache.put(b, Agg(4))
    assert cache.get(a).version == 4  # a is now the most recently used
    cache.put(c, Agg(4))  # 12 > 10: b, the least recently used, goes
    assert a in cache
    assert c in cache
    assert b not in cache
    assert cache.held == 8


def test_a_put_again_counts_the_aggregates_new_version() -> None:
    cache = EventBudgetCache(budget=10)
    a, b = uuid4(), uuid4()
    cache.put(a, Agg(2))
    cache.put(b, Agg(2))
    cache.put(a, Agg(9))  # a grew: 11 > 10, b goes
    assert cache.held == 9
    assert b not in cache
    assert a in cache


def test_evict_removes_and_a_missing_key_is_a_key_error() -> None:
    cache = EventBudgetCache(budget=10)
    a: UUID = uuid4()
    cache.put(a, Agg(3))
    assert cache.get(a, evict=True).version == 3
    assert cache.held == 0
    with pytest.raises(KeyError):
        cache.get(a)
    with pytest.raises(KeyError):
        cache.get(a, evict=True)


def test_one_aggregate_bigger_than_the_budget_is_still_cached() -> None:
    cache = EventBudgetCache(budget=10)
    a = uuid4()
    cache.put(a, Agg(50))
    assert a in cache
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
    contact.compact()
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
