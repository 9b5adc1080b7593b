"""A cache miss resumes an aggregate from its last resume point and the events after it:
the aggregate it gets is the one replaying every event gives, on every backend."""

from __future__ import annotations

from uuid import UUID

import pytest
from tests.conftest import SHARED_DATABASES, T0, Clock

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.bench.workload import Workload
from dnd_ledger.domain import memento
from dnd_ledger.domain.address import Address, address_uuid
from dnd_ledger.domain.contact import Contact
from dnd_ledger.domain.errors import PermanentDnd
from dnd_ledger.domain.keys import contact_uuid
from dnd_ledger.domain.values import Channel, DndKind
from dnd_ledger.storage.cache import AggregateCache
from dnd_ledger.storage.resume import ResumePoints

P = "+14155550100"
TABLE = ResumePoints.TABLE


def _cold(ledger: DndLedger) -> None:
    """Forget every cached aggregate: the next load is a miss."""
    ledger.repository.cache = AggregateCache(10**9, keys=ledger.keys)


def _replayed(ledger: DndLedger, aid: UUID) -> Contact | Address:
    """Every stored event replayed (the library's path: no cache, no resume point)."""
    version = max(e.originator_version for e in ledger.events.get(aid))
    agg: object = ledger.repository.get(aid, version=version)
    assert isinstance(agg, Contact | Address)
    agg.compact(ledger.keys)
    return agg


def _comparable(agg: Contact | Address) -> dict[str, object]:
    return {k: v for k, v in vars(agg).items() if k != "_pending_events"}


def _aggregate_ids(ledger: DndLedger) -> list[UUID]:
    ids = {n.originator_id for n in ledger.recorder.select_notifications(start=1, limit=10**6)}
    return sorted(ids, key=str)  # type: ignore[arg-type]


def test_every_aggregate_resumed_is_the_replayed_one(ledger: DndLedger) -> None:
    w = Workload(seed=3, now=T0, expected_items=1500)
    items = [*w.population(150), *w.stream(1500)]  # late, duplicate and refused items too
    for n in range(0, len(items), 50):
        ledger.execute_many([it.command for it in items[n : n + 50]])
    assert w.late > 0
    _cold(ledger)
    resumed = behind = 0
    for aid in _aggregate_ids(ledger):
        point = ledger.resume.load(aid)
        got = ledger.get_aggregate(aid)
        assert got is not None
        assert _comparable(got) == _comparable(_replayed(ledger, aid)), aid
        if point is not None:
            resumed += 1
            behind += point.version < got.version
    assert resumed > 100, "most aggregates have a resume point"
    assert behind > 50, "and most have events after it"


def test_a_late_event_after_the_resume_point_refolds_the_past(
    ledger: DndLedger, clock: Clock
) -> None:
    ledger.execute(c.RegisterContact("loc-1", "ada", (P,)))
    for n in range(3):  # versions 2..4: a resume point at 4
        clock.advance(minutes=10)
        ledger.execute(c.SetDnd("loc-1", "ada", (Channel.CALL,), "bob", request_id=f"r{n}"))
    cid = contact_uuid("loc-1", "ada")
    point = ledger.resume.load(cid)
    assert point is not None
    assert point.version == 4
    # A STOP that occurred before all of them, recorded now (on the contact at 5).
    ledger.execute(c.ReceiveInbound("loc-1", Channel.SMS, P, "STOP", "SM-late", occurred_at=T0))
    _cold(ledger)
    got = ledger.get_aggregate(cid)
    assert isinstance(got, Contact)
    assert got.version == 5
    assert got.state.channel(Channel.SMS).status is DndKind.PERMANENT
    assert _comparable(got) == _comparable(_replayed(ledger, cid))


def test_a_resume_point_of_another_shape_is_ignored(ledger: DndLedger, clock: Clock) -> None:
    ledger.execute(c.RegisterContact("loc-1", "ada", (P,)))
    for n in range(4):
        clock.advance(minutes=1)
        ledger.execute(c.SetDnd("loc-1", "ada", (Channel.CALL,), "bob", request_id=f"r{n}"))
    ledger.sql.execute(f"UPDATE {TABLE} SET state = ?", ('{"v": 999, "type": "contact"}',))
    _cold(ledger)
    cid = contact_uuid("loc-1", "ada")
    assert ledger.resume.load(cid) is None
    got = ledger.get_aggregate(cid)
    assert got is not None
    assert _comparable(got) == _comparable(_replayed(ledger, cid))


def test_deleting_every_resume_point_changes_nothing(ledger: DndLedger) -> None:
    w = Workload(seed=5, now=T0, expected_items=600)
    items = [*w.population(60), *w.stream(600)]
    for n in range(0, len(items), 100):
        ledger.execute_many([it.command for it in items[n : n + 100]])
    _cold(ledger)
    before = {
        aid: _comparable(a) for aid in _aggregate_ids(ledger) if (a := ledger.get_aggregate(aid))
    }
    ledger.sql.execute(f"DELETE FROM {TABLE}")
    _cold(ledger)
    after = {
        aid: _comparable(a) for aid in _aggregate_ids(ledger) if (a := ledger.get_aggregate(aid))
    }
    assert after == before


@SHARED_DATABASES
def test_another_process_resumed_from_a_point_keeps_the_opt_out_and_the_keys(
    two_ledgers: tuple[DndLedger, DndLedger], clock: Clock
) -> None:
    """A second ledger on the database (another worker) that has not loaded the contact:
    it comes from a resume point and still refuses to clear a STOP, and still knows a
    request and a provider's message."""
    one, two = two_ledgers
    one.execute(c.RegisterContact("loc-1", "ada", (P,)))
    one.execute(c.ReceiveInbound("loc-1", Channel.SMS, P, "STOP", "SM1"))
    for n in range(2):  # version 4: a resume point
        clock.advance(minutes=1)
        one.execute(c.SetDnd("loc-1", "ada", (Channel.CALL,), "bob", request_id=f"r{n}"))
    assert one.resume.load(contact_uuid("loc-1", "ada")) is not None
    with pytest.raises(PermanentDnd):
        two.execute(c.ClearDnd("loc-1", "ada", (Channel.SMS,), "bob"))
    again = two.execute(c.SetDnd("loc-1", "ada", (Channel.CALL,), "bob", request_id="r1"))
    assert again.result == "duplicate"
    stop = two.execute(c.ReceiveInbound("loc-1", Channel.SMS, P, "STOP", "SM1"))
    assert stop.result == "duplicate"
    assert not two.can_send("loc-1", "ada", Channel.SMS).allowed
    address = two.get_aggregate(address_uuid("loc-1", two.keyring.ref("phone", P)))
    assert isinstance(address, Address)
    assert address.claimants == ["ada"]


def test_the_memento_names_every_attribute_of_the_aggregates(ledger: DndLedger) -> None:
    """An attribute added to an aggregate must be carried by its memento (else a resumed
    aggregate would silently lack it): this fails until domain/memento.py names it."""
    ledger.execute(c.RegisterContact("loc-1", "ada", (P,), ("ada@example.com",)))
    ledger.execute(c.ReceiveInbound("loc-1", Channel.SMS, P, "STOP", "SM1"))
    contact = ledger.get_aggregate(contact_uuid("loc-1", "ada"))
    address = ledger.get_aggregate(address_uuid("loc-1", ledger.keyring.ref("phone", P)))
    assert isinstance(contact, Contact)
    assert isinstance(address, Address)
    assert set(vars(contact)) == memento.CONTACT_FIELDS
    assert set(vars(address)) == memento.ADDRESS_FIELDS
    for agg in (contact, address):
        back = memento.restore(agg.id, agg.version, memento.memento(agg), ledger.keys)
        assert back is not None
        agg.compact(ledger.keys)
        assert _comparable(back) == _comparable(agg)
