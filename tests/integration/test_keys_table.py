"""Idempotency keys live in the keys table (storage/keys.py): a compacted or resumed
aggregate, another process, and a ledger made before the table existed all refuse a
redelivered command whose key was recorded long ago, on every backend."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from uuid import UUID

import pytest
from tests.conftest import SHARED_DATABASES, TEST_KEY, Clock, open_together

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.bench.workload import Workload
from dnd_ledger.domain.address import Address, address_uuid
from dnd_ledger.domain.contact import Contact
from dnd_ledger.domain.errors import IdempotencyKeyReused
from dnd_ledger.domain.keys import contact_uuid
from dnd_ledger.domain.values import Channel
from dnd_ledger.storage.cache import AggregateCache
from dnd_ledger.storage.keys import MARKER, KeysNotReady, KeysTable, recorded_key

P = "+14155550100"
SMS = Channel.SMS
CID = contact_uuid("loc-1", "ada")


def _cold(ledger: DndLedger) -> None:
    """Forget every cached aggregate: the next load resumes from a resume point."""
    ledger.repository.cache = AggregateCache(10**6, keys=ledger.keys)


def _events(ledger: DndLedger) -> int:
    return len(ledger.recorder.select_notifications(start=1, limit=10**6))


def _start_then_stop(ledger: DndLedger, clock: Clock, between: int = 12) -> None:
    """A START (SM-start), many events, then a STOP: the START's key is long ago."""
    ledger.execute(c.RegisterContact("loc-1", "ada", (P,)))
    ledger.execute(c.ReceiveInbound("loc-1", SMS, P, "STOP", "SM-stop-0"))
    clock.advance(minutes=1)
    ledger.execute(c.ReceiveInbound("loc-1", SMS, P, "START", "SM-start"))
    for n in range(between):  # resume points pass the START's version
        clock.advance(minutes=1)
        ledger.execute(c.SetDnd("loc-1", "ada", (Channel.CALL,), "bob", request_id=f"r{n}"))
    clock.advance(minutes=1)
    ledger.execute(c.ReceiveInbound("loc-1", SMS, P, "STOP", "SM-stop"))
    assert not ledger.can_send("loc-1", "ada", SMS).allowed


def _redelivered_start_is_refused(ledger: DndLedger, clock: Clock) -> None:
    """The START again, now (no time given): recorded, it would lift the later STOP."""
    clock.advance(minutes=5)
    before = _events(ledger)
    again = ledger.execute(c.ReceiveInbound("loc-1", SMS, P, "START", "SM-start"))
    assert again.result == "duplicate"
    assert _events(ledger) == before
    assert not ledger.can_send("loc-1", "ada", SMS).allowed


def test_a_resumed_contact_refuses_a_start_redelivered_after_a_later_stop(
    ledger: DndLedger, clock: Clock
) -> None:
    _start_then_stop(ledger, clock)
    _cold(ledger)
    contact = ledger.get_aggregate(CID)
    assert isinstance(contact, Contact)
    point = ledger.resume.load(CID)
    assert point is not None
    assert point.version > 3  # the START (version 3) is before the resume point
    assert contact.keys == set()  # nothing of the START's key in memory
    assert contact.key_lookup is ledger.keys
    _redelivered_start_is_refused(ledger, clock)


def test_a_cached_contact_refuses_a_start_redelivered_after_a_later_stop(
    ledger: DndLedger, clock: Clock
) -> None:
    _start_then_stop(ledger, clock)
    cached = ledger.repository.cache.get(CID)  # type: ignore[union-attr]
    assert isinstance(cached, Contact)
    assert cached.keys == set()
    address = ledger.get_aggregate(address_uuid("loc-1", ledger.keyring.ref("phone", P)))
    assert isinstance(address, Address)
    assert address.keys == set()
    assert address.has_key("inbound:SM-start")
    _redelivered_start_is_refused(ledger, clock)


def test_a_replayed_contact_refuses_it_without_resume_points(
    ledger: DndLedger, clock: Clock
) -> None:
    _start_then_stop(ledger, clock)
    ledger.sql.execute(f"DELETE FROM {ledger.resume.TABLE}")
    _cold(ledger)
    _redelivered_start_is_refused(ledger, clock)


@SHARED_DATABASES
def test_another_process_refuses_a_start_redelivered_after_a_later_stop(
    two_ledgers: tuple[DndLedger, DndLedger], clock: Clock
) -> None:
    one, two = two_ledgers
    _start_then_stop(one, clock)
    _redelivered_start_is_refused(two, clock)
    _redelivered_start_is_refused(one, clock)


def test_a_reused_request_id_is_refused_through_the_table(ledger: DndLedger, clock: Clock) -> None:
    _start_then_stop(ledger, clock)  # request ids r0..r11, long ago
    _cold(ledger)
    contact = ledger.get_aggregate(CID)
    assert isinstance(contact, Contact)
    assert contact.requests == {}
    before = _events(ledger)
    with pytest.raises(IdempotencyKeyReused, match="'r0' was already used"):
        ledger.execute(c.SetDnd("loc-1", "ada", (Channel.EMAIL,), "bob", request_id="r0"))
    assert _events(ledger) == before
    # The same request again is a duplicate; a new id is recorded.
    clock.advance(minutes=1)
    again = ledger.execute(c.SetDnd("loc-1", "ada", (Channel.CALL,), "bob", request_id="r0"))
    assert again.result == "duplicate"
    new = ledger.execute(c.SetDnd("loc-1", "ada", (Channel.EMAIL,), "bob", request_id="r-new"))
    assert new.result == "appended"
    assert _events(ledger) == before + 1
    # The request rule holds in one batch too: the new key is in memory, not yet stored.
    _cold(ledger)
    outcomes = ledger.execute_many([
        c.SetDnd("loc-1", "ada", (Channel.CALL,), "bob", request_id="r-batch"),
        c.SetDnd("loc-1", "ada", (Channel.EMAIL,), "bob", request_id="r-batch"),
        c.SetDnd("loc-1", "ada", (Channel.CALL,), "bob", request_id="r-batch"),
    ])  # fmt: skip
    assert [o.result for o in outcomes] == ["appended", "rejected", "duplicate"]
    assert "already used" in outcomes[1].detail["error"]


def test_every_stored_key_is_in_the_table_and_only_those(ledger: DndLedger) -> None:
    """The rows written with the events are exactly the keys a full replay holds."""
    w = Workload(seed=11, now=ledger.clock(), expected_items=800)
    items = [*w.population(80), *w.stream(800)]  # duplicates and late events too
    for n in range(0, len(items), 40):
        ledger.execute_many([it.command for it in items[n : n + 40]])
    ids = {n.originator_id for n in ledger.recorder.select_notifications(start=1, limit=10**6)}
    rows = ledger.sql.fetchall(f"SELECT owner, key FROM {KeysTable.KEYS} WHERE owner <> ''")
    in_table: dict[str, set[str]] = {}
    for owner, key in rows:
        in_table.setdefault(str(owner), set()).add(str(key))
    held = 0
    for aid in ids:
        assert isinstance(aid, UUID)
        events = list(ledger.events.get(aid))
        replayed = ledger.repository.get(aid, version=events[-1].originator_version)
        assert isinstance(replayed, Contact | Address)
        keys = {k for e in events if (k := recorded_key(e)) is not None}
        assert keys == replayed.keys, aid  # recorded_key keeps what the aggregate keeps
        assert in_table.get(aid.hex, set()) == keys, aid
        if isinstance(replayed, Contact):
            for request, key in replayed.requests.items():
                assert ledger.keys.request_key(aid, request) == key
        held += len(keys)
    assert held == len(rows) > 500


def _drop_the_table(ledger: DndLedger) -> None:
    """What a ledger made before the keys table had: no table, so no marker."""
    ledger.sql.execute(f"DROP TABLE {KeysTable.KEYS}")
    ledger.sql.execute(f"DROP TABLE {KeysTable.REQUESTS}")


@SHARED_DATABASES
def test_a_ledger_without_the_keys_table_is_backfilled_when_opened(
    db_url: str, clock: Clock
) -> None:
    old = DndLedger(db_url, pii_key=TEST_KEY, clock=clock)
    try:
        _start_then_stop(old, clock)
        rows = sorted(old.sql.fetchall(f"SELECT owner, key FROM {KeysTable.KEYS}"))
        requests = sorted(old.sql.fetchall(f"SELECT * FROM {KeysTable.REQUESTS}"))
        _drop_the_table(old)
    finally:
        old.close()
    reopened = DndLedger(db_url, pii_key=TEST_KEY, clock=clock)
    try:
        assert reopened.keys.ready
        assert sorted(reopened.sql.fetchall(f"SELECT owner, key FROM {KeysTable.KEYS}")) == rows
        assert sorted(reopened.sql.fetchall(f"SELECT * FROM {KeysTable.REQUESTS}")) == requests
        assert ("", MARKER) in rows  # the marker, with the rows it vouches for
        _redelivered_start_is_refused(reopened, clock)
        with pytest.raises(IdempotencyKeyReused):
            reopened.execute(c.SetDnd("loc-1", "ada", (Channel.EMAIL,), "bob", request_id="r3"))
    finally:
        reopened.close()


@SHARED_DATABASES
@pytest.mark.parametrize(
    "emptied", [KeysTable.KEYS, KeysTable.REQUESTS], ids=["keys", "request_keys"]
)
def test_a_table_emptied_loses_its_marker_and_is_backfilled_again(
    db_url: str, clock: Clock, emptied: str
) -> None:
    old = DndLedger(db_url, pii_key=TEST_KEY, clock=clock)
    try:
        _start_then_stop(old, clock)
        rows = sorted(old.sql.fetchall(f"SELECT * FROM {emptied}"))
        old.sql.execute(f"DELETE FROM {emptied}")  # the other table keeps its rows
    finally:
        old.close()
    reopened = DndLedger(db_url, pii_key=TEST_KEY, clock=clock)
    try:
        assert sorted(reopened.sql.fetchall(f"SELECT * FROM {emptied}")) == rows
        _cold(reopened)
        _redelivered_start_is_refused(reopened, clock)
    finally:
        reopened.close()


@SHARED_DATABASES
def test_two_processes_opening_at_once_both_backfill_correctly(db_url: str, clock: Clock) -> None:
    old = DndLedger(db_url, pii_key=TEST_KEY, clock=clock)
    try:
        _start_then_stop(old, clock)
        rows = sorted(old.sql.fetchall(f"SELECT owner, key FROM {KeysTable.KEYS}"))
        _drop_the_table(old)
    finally:
        old.close()
    opened, failed = open_together(3, db_url, TEST_KEY, clock)
    try:
        assert failed == []
        assert len(opened) == 3
        for ledger in opened:
            assert ledger.keys.ready
            assert sorted(ledger.sql.fetchall(f"SELECT owner, key FROM {KeysTable.KEYS}")) == rows
            _cold(ledger)
            _redelivered_start_is_refused(ledger, clock)
    finally:
        for ledger in opened:
            ledger.close()


def test_no_lookup_answers_before_the_backfill_is_complete(ledger: DndLedger) -> None:
    table = KeysTable(ledger.sql)  # never opened: the marker not seen
    with pytest.raises(KeysNotReady):
        table.holds(CID, "inbound:SM-1")
    with pytest.raises(KeysNotReady):
        table.request_key(CID, "request:r1")


def test_a_failing_lookup_fails_the_command_and_records_nothing(
    ledger: DndLedger, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    _start_then_stop(ledger, clock)
    _cold(ledger)

    def broken(owner: UUID, key: str) -> bool:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(ledger.keys, "holds", broken)
    before = _events(ledger)
    clock.advance(minutes=5)
    with pytest.raises(sqlite3.OperationalError):
        ledger.execute(c.ReceiveInbound("loc-1", SMS, P, "START", "SM-start"))
    outcomes = None
    with pytest.raises(sqlite3.OperationalError):  # in a batch: the whole batch fails
        outcomes = ledger.execute_many(
            [c.ReceiveInbound("loc-1", SMS, P, "START", "SM-start")], raise_errors=False
        )
    assert outcomes is None
    assert _events(ledger) == before
    monkeypatch.undo()
    assert not ledger.can_send("loc-1", "ada", SMS).allowed
    _redelivered_start_is_refused(ledger, clock)


def test_a_cached_contact_does_not_grow_with_its_events(clock: Clock) -> None:
    """Its keys are the table's: 300 events with 300 request ids leave none in memory,
    and the cached contact is as small as one with 5 events."""
    ledger = DndLedger("memory:", pii_key=TEST_KEY, clock=clock)
    try:
        sizes = {}
        for name, events in (("few", 5), ("many", 300)):
            ledger.execute(c.RegisterContact("loc-1", name, (f"+1415555{len(name):04d}",)))
            for n in range(events):
                clock.advance(seconds=1)
                channel = (Channel.CALL,) if n % 2 else (Channel.EMAIL,)
                ledger.execute(c.SetDnd("loc-1", name, channel, "bob", request_id=f"{name}-{n}"))
            cached = ledger.repository.cache.get(contact_uuid("loc-1", name))  # type: ignore[union-attr]
            assert isinstance(cached, Contact)
            assert cached.version == events + 1
            assert (cached.keys, cached.requests, cached.entries) == (set(), {}, None)
            sizes[name] = _deep_size(cached)
        assert sizes["many"] <= sizes["few"] + 256, sizes
    finally:
        ledger.close()


def test_the_ledger_caches_at_most_its_entries(clock: Clock, tmp_path: Path) -> None:
    ledger = DndLedger(str(tmp_path / "l.db"), pii_key=TEST_KEY, clock=clock, cache_entries=4)
    try:
        for n in range(10):
            ledger.execute(c.RegisterContact("loc-1", f"c{n}", ()))
        cache = ledger.repository.cache
        assert isinstance(cache, AggregateCache)
        assert cache.size() == 4
        assert contact_uuid("loc-1", "c9") in cache
        assert contact_uuid("loc-1", "c0") not in cache
    finally:
        ledger.close()


def _deep_size(agg: object) -> int:
    """The bytes of an aggregate's own objects (not the shared keys table)."""
    import sys

    seen: set[int] = set()

    def size(o: object) -> int:
        if id(o) in seen or isinstance(o, KeysTable | type):
            return 0
        seen.add(id(o))
        n = sys.getsizeof(o)
        if isinstance(o, dict):
            n += sum(size(k) + size(v) for k, v in o.items())
        elif isinstance(o, list | tuple | set | frozenset):
            n += sum(size(v) for v in o)
        elif hasattr(o, "__dict__"):
            n += size(vars(o))
        elif hasattr(o, "__slots__"):
            n += sum(size(getattr(o, s)) for s in o.__slots__ if hasattr(o, s))
        return n

    return size(agg)
