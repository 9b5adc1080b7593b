"""The views of issue 3: status, address index, audit trail and stats.

* A property test: for random command histories (shared addresses, duplicates,
  refusals, out-of-order times), the incrementally maintained views equal a full
  rebuild, the status view equals the Contact aggregate's fold, the address
  index equals the Address aggregates' claimants, and the stats equal the
  status rows counted.
* Catch-up happens in batches (one write transaction per batch).
* Read-your-writes, in one process and across two ledgers on one database.
* ``audit``, ``projections`` and ``stats`` at the command line, for a narrated
  scenario, compared exactly.
* Past-time queries (``as_of``/``known_at``) against a hand-worked timeline with
  late events, and against a contact with 1,000 events.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import sqlite3
import tempfile
import threading
from collections import Counter
from dataclasses import astuple, dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import SHARED_DATABASES, T0, Clock

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.cli.main import cli as dnd_ledger_cli
from dnd_ledger.domain.address import Address
from dnd_ledger.domain.contact import Contact
from dnd_ledger.domain.errors import LedgerError, UnknownContact
from dnd_ledger.domain.policy import DEFAULT_POLICY
from dnd_ledger.domain.state import ChannelState, fold, overall
from dnd_ledger.domain.values import ALL_CHANNELS, Channel, DndKind, EmailSignal, Overall
from dnd_ledger.idempotency import request_key
from dnd_ledger.projections import status_row
from dnd_ledger.projections.projector import Projector
from dnd_ledger.projections.schema import VIEWS
from dnd_ledger.projections.status_row import CHANNEL_COLUMNS
from dnd_ledger.storage.pii import Keyring

KEY = b"test-key-0123456789abcdef"
P, E = "+14155550100", "ada@example.com"  # Ada's phone and email
ALL_VIEWS = list(VIEWS)
SMS, EMAIL, CALL, FB, GMB, WA = (
    Channel.SMS,
    Channel.EMAIL,
    Channel.CALL,
    Channel.FB,
    Channel.GMB,
    Channel.WHATSAPP,
)

# Every row of every view, in a stable order. Stats rows whose count fell to
# zero are kept by the incremental path and never written by a rebuild; the
# reader skips them, and so does the comparison.
VIEW_ROWS = {
    "status_contacts": "SELECT aggregate_id, location_id, contact_id, overall, version,"
    f" last_occurred, state, {CHANNEL_COLUMNS} FROM dnd_status_contacts ORDER BY aggregate_id",
    "addresses": "SELECT aggregate_id, location_id, ref, kind FROM dnd_addresses ORDER BY 1",
    "address_index": "SELECT location_id, ref, contact_id, kind, since FROM dnd_address_index"
    " ORDER BY 1, 2, 3",
    "audit": "SELECT position, aggregate_id, version, location_id, contact_id, address_ref,"
    " event, before, after FROM dnd_audit ORDER BY position",
    "stats": "SELECT location_id, dimension, value, count FROM dnd_stats WHERE count <> 0"
    " ORDER BY 1, 2, 3",
}


def view_rows(ledger: DndLedger) -> dict[str, list[tuple[Any, ...]]]:
    rows = {name: ledger.sql.fetchall(q) for name, q in VIEW_ROWS.items()}
    # And what the audit trail shows of each row's event, read from the log.
    rows["trail"] = [(r.position, astuple(r.fields)) for r in ledger.views.trail.read()]
    return rows


def visible(s: ChannelState) -> tuple[Any, ...]:
    """What the status view stores of a channel's state."""
    return (s.status, s.since, s.code, s.message, s.event, s.event_id)


def visible_all(channels: dict[Channel, ChannelState]) -> dict[Channel, tuple[Any, ...]]:
    return {ch: visible(channels[ch]) for ch in ALL_CHANNELS}


def notification_ids(ledger: DndLedger) -> list[int]:
    return [n.id for n in ledger.recorder.select_notifications(start=1, limit=10_000_000)]


def check_views_consistent(ledger: DndLedger, now: datetime) -> None:
    """Views == rebuild, status == aggregate fold == past-time fold at now, index and stats."""
    ledger.refresh_views()
    assert set(ledger.projector.positions().values()) == {ledger.projector.head()}
    incremental = view_rows(ledger)

    # Every event has exactly one audit row, at its log position.
    assert [r[0] for r in incremental["audit"]] == notification_ids(ledger)

    # The status view against the Contact aggregates, and against the past-time fold.
    for row in incremental["status_contacts"]:
        aggregate_id, location_id, contact_id, overall_value, version = row[:5]
        agg = ledger.repository.get(UUID(aggregate_id))
        assert isinstance(agg, Contact)
        assert (agg.location_id, agg.contact_id, agg.version) == (
            location_id,
            contact_id,
            int(version),
        )
        expected = visible_all(agg.state.channels())
        # The aggregate replayed from its stored events (not the cached, compacted one)
        # agrees, and so does the fold of its entries.
        replayed = ledger.repository.get(UUID(aggregate_id), version=agg.version)
        assert isinstance(replayed, Contact)
        assert replayed.entries is not None
        assert visible_all(replayed.state.channels()) == expected
        assert visible_all(fold(replayed.entries).channels()) == expected
        # The contact's one row holds every channel's state.
        stored = {
            ch: status_row.state(*row[7 + 2 * i : 9 + 2 * i]) for i, ch in enumerate(ALL_CHANNELS)
        }
        assert visible_all(stored) == expected, (location_id, contact_id)
        view = ledger.status(location_id, contact_id)
        assert visible_all(view.channels) == expected, (location_id, contact_id)
        assert view.dnd.value == overall_value == overall(agg.state.channels()).value
        for kwargs in ({"as_of": now}, {"known_at": now}, {"as_of": now, "known_at": now}):
            past = ledger.status(location_id, contact_id, **kwargs)
            assert visible_all(past.channels) == expected, (contact_id, kwargs)
        for ch in ALL_CHANNELS:
            hot = ledger.can_send(location_id, contact_id, ch)
            assert hot == ledger.can_send(location_id, contact_id, ch, as_of=now, known_at=now)
        # Past times, on both timelines, against the aggregate's own fold.
        occurred = sorted({e.occurred_at for e in replayed.entries})
        recorded = sorted({e.recorded_at for e in replayed.entries})
        # Before the registration a past query is an error (the contact was unknown).
        occurred = [t for t in occurred if t >= replayed.registered_at] or [replayed.registered_at]
        recorded = [t for t in recorded if t >= replayed.created_on] or [replayed.created_on]
        for as_of in [*occurred[:: max(1, len(occurred) // 4)], None]:
            for known_at in [*recorded[:: max(1, len(recorded) // 3)], None]:
                if as_of is None and known_at is None:
                    continue
                past = ledger.status(location_id, contact_id, as_of=as_of, known_at=known_at)
                folded = fold(replayed.entries, as_of=as_of, known_at=known_at).channels()
                assert visible_all(past.channels) == visible_all(folded), (as_of, known_at)
    registered = [r for r in incremental["audit"] if r[6] == "Registered"]
    assert len(registered) == len(incremental["status_contacts"])

    # The address index against the Address aggregates.
    index: dict[tuple[str, str], set[str]] = {}
    for location_id, ref, contact_id, _kind, _since in incremental["address_index"]:
        index.setdefault((location_id, ref), set()).add(contact_id)
    for aggregate_id, location_id, ref, kind in incremental["addresses"]:
        address = ledger.repository.get(UUID(aggregate_id))
        assert isinstance(address, Address)
        assert (address.location_id, address.ref, str(address.kind)) == (location_id, ref, kind)
        assert index.get((location_id, ref), set()) == set(address.claimants)

    # Stats are the status rows, counted.
    counted: Counter[tuple[str, str, str]] = Counter()
    for _a, location_id, _c, overall_value, *_ in incremental["status_contacts"]:
        counted[(location_id, "overall", overall_value)] += 1
    for _a, location_id, *rest in incremental["status_contacts"]:
        for i, ch in enumerate(ALL_CHANNELS):
            counted[(location_id, f"channel:{ch.value}", rest[5 + 2 * i])] += 1
    assert {(r[0], r[1], r[2]): int(r[3]) for r in incremental["stats"]} == dict(counted)

    # A full rebuild gives the same rows.
    ledger.projector.rebuild(ALL_VIEWS)
    rebuilt = view_rows(ledger)
    for name in VIEW_ROWS:
        assert rebuilt[name] == incremental[name], name
    # And so does rebuilding one view at a time (status, audit and stats go together).
    for view in ALL_VIEWS:
        ledger.projector.rebuild([view])
        assert view_rows(ledger) == incremental, view


# -- random histories --------------------------------------------------------------------
LOCS = ("loc-a", "loc-b")
CONTACTS = ("c1", "c2", "c3", "c4")
PHONES = ("+14155550101", "+14155550102", "+14155550103")
EMAILS = ("a@example.com", "b@example.com", "c@example.com")
BODIES = ("STOP", "start", "Hello, see you at 5", "please stop texting me", "UNSUBSCRIBE")
CARRIER_CODES = (None, 0, 30003, 30004, 30005, 30006, 21610, 63014, 30007, 11200)
EMAIL_REASONS = (None, "bounce", "generic", "suppress-complaint", "mailbox full")

# occurred_at: the recording time, or up to three days in the past (out of order).
when = st.one_of(st.none(), st.integers(0, 3 * 24 * 60))
channels = st.lists(st.sampled_from(ALL_CHANNELS), min_size=1, max_size=3, unique=True).map(tuple)
request_id = st.one_of(st.none(), st.sampled_from(("r1", "r2", "r3")))


@dataclass(frozen=True)
class Spec:
    """A command, built at recording time: it occurred ``back`` minutes before the clock."""

    command: type[c.Command]
    fields: tuple[tuple[str, Any], ...]
    back: int | None

    def build(self, now: datetime) -> c.Command:
        at = None if self.back is None else now - timedelta(minutes=self.back)
        return self.command(**dict(self.fields), occurred_at=at)  # type: ignore[call-arg]


KINDS = ("register", "inbound", "inbound", "carrier", "email", "set", "clear", "clear")
KINDS += ("approve", "legacy")


@st.composite
def command(draw: st.DrawFn, kinds: tuple[str, ...] = KINDS) -> Spec:
    loc = draw(st.sampled_from(LOCS))
    who = draw(st.sampled_from(CONTACTS))
    back = draw(when)
    kind = draw(st.sampled_from(kinds))

    def spec(command: type[c.Command], **fields: Any) -> Spec:
        return Spec(command, tuple(fields.items()), back)

    if kind == "register":
        return spec(
            c.RegisterContact, location_id=loc, contact_id=who,
            phones=tuple(draw(st.lists(st.sampled_from(PHONES), max_size=2, unique=True))),
            emails=tuple(draw(st.lists(st.sampled_from(EMAILS), max_size=2, unique=True))),
            actor="alice", request_id=draw(request_id),
        )  # fmt: skip
    if kind == "inbound":
        return spec(
            c.ReceiveInbound, location_id=loc, channel=draw(st.sampled_from((SMS, WA))),
            from_address=draw(st.sampled_from(PHONES)), body=draw(st.sampled_from(BODIES)),
            message_id=draw(st.sampled_from(("SM1", "SM2", "SM3", "SM4", "SM5"))),
            provider_opt_out_type=draw(st.sampled_from((None, None, "STOP", "START"))),
        )  # fmt: skip
    if kind == "carrier":
        return spec(
            c.ReportCarrierStatus, location_id=loc, channel=draw(st.sampled_from((SMS, WA))),
            to_address=draw(st.sampled_from(PHONES)),
            message_id=draw(st.sampled_from(("MM1", "MM2", "MM3"))), status="undelivered",
            error_code=draw(st.sampled_from(CARRIER_CODES)),
        )  # fmt: skip
    if kind == "email":
        token = draw(st.sampled_from(("t1", "t2")))
        return spec(
            c.ReportEmailEvent, location_id=loc, recipient=draw(st.sampled_from(EMAILS)),
            signal=draw(st.sampled_from(tuple(EmailSignal))), idempotency_key=token,
            reason=draw(st.sampled_from(EMAIL_REASONS)), event_id=f"ev-{token}",
        )  # fmt: skip
    if kind == "legacy":
        return spec(
            c.ImportLegacy, location_id=loc, contact_id=who, dnd=draw(st.booleans()),
            phones=tuple(draw(st.lists(st.sampled_from(PHONES), max_size=1))),
        )  # fmt: skip
    common = {"location_id": loc, "contact_id": who, "channels": draw(channels)}
    common["request_id"] = draw(request_id)
    if kind == "set":
        return spec(c.SetDnd, **common, actor="alice")
    if kind == "clear":
        return spec(c.ClearDnd, **common, actor="bob", suppression_removed=draw(st.booleans()))
    return spec(c.ApproveOptIn, **common, approver="sam", ticket="SUP-1", evidence="signed form")


@dataclass(frozen=True)
class Step:
    advance_s: int
    many: bool  # one execute_many batch, or one execute per command
    commands: tuple[Spec, ...]
    sync: str  # after the step: "none", "refresh", or "catch-<batch size>"


step = st.builds(
    Step,
    advance_s=st.integers(0, 3600),
    many=st.booleans(),
    commands=st.lists(command(), min_size=1, max_size=4).map(tuple),
    sync=st.sampled_from(("none", "refresh", "refresh", "catch-1", "catch-3")),
)
# Registrations first (so that most later commands find their contact), then anything.
setup = st.builds(
    Step,
    advance_s=st.just(0),
    many=st.just(True),
    commands=st.lists(command(("register",)), min_size=2, max_size=6).map(tuple),
    sync=st.just("none"),
)
histories = st.tuples(setup, st.lists(step, min_size=3, max_size=25)).map(lambda t: [t[0], *t[1]])


def run_history(ledger: DndLedger, clock: Clock, steps: list[Step]) -> None:
    for s in steps:
        clock.advance(seconds=s.advance_s)
        commands = [spec.build(clock.now) for spec in s.commands]
        if s.many:
            ledger.execute_many(commands)
        else:
            for one in commands:
                # Refusals (unknown contact, permanent DND, attestation) change nothing.
                with contextlib.suppress(LedgerError):
                    ledger.execute(one)
        if s.sync == "refresh":
            ledger.refresh_views()
        elif s.sync.startswith("catch-"):
            ledger.projector.catch_up(batch_size=int(s.sync.split("-")[1]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories)
def test_incremental_views_equal_rebuild_and_aggregates_memory(steps: list[Step]) -> None:
    clock = Clock()
    ledger = DndLedger("memory:", pii_key=KEY, clock=clock)
    try:
        run_history(ledger, clock, steps)
        check_views_consistent(ledger, clock.now)
    finally:
        ledger.close()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories)
def test_incremental_views_equal_rebuild_and_aggregates_sqlite(steps: list[Step]) -> None:
    clock = Clock()
    with tempfile.TemporaryDirectory() as tmp:
        ledger = DndLedger(str(Path(tmp) / "ledger.db"), pii_key=KEY, clock=clock)
        try:
            run_history(ledger, clock, steps)
            check_views_consistent(ledger, clock.now)
        finally:
            ledger.close()


def test_a_dated_ahead_event_counts_the_same_in_the_view_and_the_fold(clock: Clock) -> None:
    """An event dated in the past agrees everywhere (the control for the next test)."""
    ledger = DndLedger("memory:", pii_key=KEY, clock=clock)
    try:
        ledger.execute(c.RegisterContact("loc", "ada", ("+14155550100",)))
        ledger.execute(
            c.SetDnd("loc", "ada", (SMS,), "alice", occurred_at=clock.now - timedelta(minutes=3))
        )
        now = ledger.status("loc", "ada").channels[SMS].status
        assert now is ledger.status("loc", "ada", as_of=clock.now).channels[SMS].status
        assert now is DndKind.ACTIVE
    finally:
        ledger.close()


def test_present_view_and_fold_at_now_agree_for_an_event_dated_slightly_ahead(
    clock: Clock,
) -> None:
    ledger = DndLedger("memory:", pii_key=KEY, clock=clock)
    try:
        ledger.execute(c.RegisterContact("loc", "ada", ("+14155550100",)))
        ahead = clock.now + timedelta(minutes=3)  # within the accepted clock skew
        ledger.execute(c.SetDnd("loc", "ada", (SMS,), "alice", occurred_at=ahead))
        view = ledger.status("loc", "ada")
        assert view.as_of == clock.now
        folded = ledger.status("loc", "ada", as_of=clock.now, known_at=clock.now)
        assert visible_all(view.channels) == visible_all(folded.channels)
        assert ledger.can_send("loc", "ada", SMS) == ledger.can_send(
            "loc", "ada", SMS, as_of=clock.now, known_at=clock.now
        )
    finally:
        ledger.close()


# -- catch-up in batches ---------------------------------------------------------------------
def register_many(ledger: DndLedger, n: int, location: str = "loc-1") -> None:
    """``n`` contacts with a phone and an email each: 5 events per contact."""
    for start in range(0, n, 100):
        ledger.execute_many(
            [
                c.RegisterContact(
                    location, f"c{i:05d}", (f"+1415555{i:04d}",), (f"c{i}@example.com",)
                )
                for i in range(start, min(n, start + 100))
            ]
        )


class Counting:
    """Counts the projector's batches, and the committing transactions each one opens."""

    def __init__(self, ledger: DndLedger, monkeypatch: pytest.MonkeyPatch) -> None:
        self.batches: list[int] = []
        self.commits: list[int] = []  # per batch
        projector: Projector = ledger.projector
        apply, transaction = projector._apply, ledger.sql.transaction

        self.inside = False

        def counted_apply(batch: Any, positions: dict[str, int]) -> None:
            self.batches.append(len(batch))
            self.commits.append(0)
            self.inside = True
            try:
                apply(batch, positions)
            finally:
                self.inside = False

        def counted_transaction(*, commit: bool = True) -> Any:
            if commit and self.inside:
                self.commits[-1] += 1
            return transaction(commit=commit)

        monkeypatch.setattr(projector, "_apply", counted_apply)
        monkeypatch.setattr(ledger.sql, "transaction", counted_transaction)


def empty_views(ledger: DndLedger) -> None:
    """Empty every view and its position, as a rebuild starts (the views were
    written with the events)."""
    ledger.projector.clear(VIEWS)
    assert ledger.projector.positions() == dict.fromkeys(VIEWS, 0)


def test_the_writer_projects_its_own_events_in_its_transaction(
    ledger: DndLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_many(ledger, 100)
    assert ledger.projector.positions() == dict.fromkeys(VIEWS, 500)  # no catch-up yet
    count = Counting(ledger, monkeypatch)
    commits = 0
    transaction = ledger.sql.transaction

    def counted(*, commit: bool = True) -> Any:
        nonlocal commits
        commits += commit
        return transaction(commit=commit)

    monkeypatch.setattr(ledger.sql, "transaction", counted)
    ledger.execute(c.ReceiveInbound("loc-1", SMS, "+14155550007", "STOP", "SM-own"))
    assert commits == 1  # personal data, events and view rows: one transaction
    assert not ledger.can_send("loc-1", "c00007", SMS).allowed
    assert count.batches == []  # the query found the views current
    assert ledger.projector.positions() == dict.fromkeys(VIEWS, 502)  # address + contact


def test_the_writers_view_rows_come_from_its_aggregates_without_reading_or_folding(
    ledger: DndLedger, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer's batch is projected from the aggregates it saves: no status row read,
    no history read for a late event; the rows equal a rebuild's."""
    register_many(ledger, 3)
    from dnd_ledger.projections import own
    from dnd_ledger.projections.batch import Batch

    def unexpected(*_args: Any) -> None:
        raise AssertionError("the writer read the views to project its own events")

    monkeypatch.setattr(Batch, "prefetch", unexpected)
    monkeypatch.setattr(Batch, "history", unexpected)
    filled: list[bool] = []
    fill = own.fill
    monkeypatch.setattr(own, "fill", lambda *a: filled.append(fill(*a)) or filled[-1])
    early = clock.now - timedelta(minutes=30)
    ledger.execute_many([
        c.ReceiveInbound("loc-1", SMS, "+14155550001", "STOP", "SM-a"),
        c.SetDnd("loc-1", "c00002", (Channel.EMAIL,), "alice", request_id="rq-1"),
        c.RegisterContact("loc-1", "new", ("+14155550001",)),  # gets c00001's STOP
        c.ReceiveInbound("loc-1", SMS, "+14155550002", "STOP", "SM-b", occurred_at=early),
    ])  # fmt: skip
    ledger.execute(c.ClearDnd("loc-1", "c00002", (Channel.EMAIL,), "bob", request_id="rq-2"))
    assert filled == [True, True]
    assert not ledger.can_send("loc-1", "new", SMS).allowed
    monkeypatch.undo()
    check_views_consistent(ledger, clock.now)


def test_views_behind_the_log_are_caught_up_not_skipped(ledger: DndLedger) -> None:
    register_many(ledger, 10)
    empty_views(ledger)
    # The views lag: this write leaves its events to catch-up, which applies all in order.
    ledger.execute(c.SetDnd("loc-1", "c00003", (SMS,), "alice"))
    assert ledger.projector.positions() == dict.fromkeys(VIEWS, 0)
    assert not ledger.can_send("loc-1", "c00003", SMS).allowed
    assert ledger.projector.positions() == dict.fromkeys(VIEWS, 51)
    assert len(ledger.views.audit()) == 51


def test_catch_up_writes_one_transaction_per_batch(
    ledger: DndLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_many(ledger, 500)
    assert ledger.projector.head() == 2_500
    empty_views(ledger)

    count = Counting(ledger, monkeypatch)
    assert ledger.projector.catch_up(batch_size=1000) == 2_500
    assert count.batches == [1000, 1000, 500]
    assert count.commits == [1, 1, 1]  # one write transaction per batch, not one per event
    assert ledger.projector.positions() == dict.fromkeys(VIEWS, 2_500)
    assert len(ledger.views.audit()) == 2_500

    # Nothing left: no batch at all.
    assert ledger.projector.catch_up(batch_size=1000) == 0
    assert count.batches == [1000, 1000, 500]

    # One more command (one event): the writer projects it itself, no batch.
    ledger.execute(c.SetDnd("loc-1", "c00007", (SMS,), "alice"))
    assert not ledger.can_send("loc-1", "c00007", SMS).allowed
    assert count.batches == [1000, 1000, 500]
    assert ledger.projector.positions() == dict.fromkeys(VIEWS, 2_501)

    # A rebuild: one transaction per batch.
    assert ledger.projector.rebuild(ALL_VIEWS, batch_size=1000) == 2_501
    assert count.batches[3:] == [1000, 1000, 501]
    assert count.commits[3:] == [1, 1, 1]
    assert ledger.projector.positions() == dict.fromkeys(VIEWS, 2_501)


# -- read your writes --------------------------------------------------------------------------
def test_a_query_reads_the_write_that_preceded_it(ledger: DndLedger, clock: Clock) -> None:
    ledger.execute(c.RegisterContact("loc-1", "ada", ("+14155550100",), ("ada@example.com",)))
    assert ledger.status("loc-1", "ada").dnd is Overall.OFF
    for step, (command, channel, expected) in enumerate(
        [
            (c.SetDnd("loc-1", "ada", (CALL,), "alice"), CALL, DndKind.ACTIVE),
            (c.ReceiveInbound("loc-1", SMS, "+14155550100", "STOP", "SM1"), SMS, DndKind.PERMANENT),
            (c.ClearDnd("loc-1", "ada", (CALL,), "alice"), CALL, DndKind.INACTIVE),
        ]
    ):
        clock.advance(minutes=1)
        ledger.execute(command)
        assert ledger.status("loc-1", "ada").channels[channel].status is expected, step
        assert ledger.can_send("loc-1", "ada", channel).allowed is (expected is DndKind.INACTIVE)
    clock.advance(minutes=1)
    outcomes = ledger.execute_many(
        [
            c.RegisterContact("loc-1", "bob", ("+14155550100",)),  # adopts the STOP
            c.SetDnd("loc-1", "bob", ALL_CHANNELS, "alice"),
        ]
    )
    assert [o.result for o in outcomes] == ["appended", "appended"]
    bob = ledger.status("loc-1", "bob")
    assert bob.dnd is Overall.ON
    assert bob.channels[SMS].status is DndKind.PERMANENT


@SHARED_DATABASES
def test_a_second_ledger_on_the_same_database_sees_the_writes_after_refresh(
    two_ledgers: tuple[DndLedger, DndLedger], clock: Clock
) -> None:
    first, second = two_ledgers
    first.execute(c.RegisterContact("loc-1", "ada", ("+14155550100",)))
    second.refresh_views()
    assert second.status("loc-1", "ada").dnd is Overall.OFF
    second.execute(c.SetDnd("loc-1", "ada", (FB,), "bob"))  # now in its aggregate cache
    first.refresh_views()
    assert first.status("loc-1", "ada").channels[FB].status is DndKind.ACTIVE

    clock.advance(minutes=1)
    first.execute(c.SetDnd("loc-1", "ada", (SMS, CALL), "alice"))
    assert first.status("loc-1", "ada").dnd is Overall.PARTIAL  # its own write, at once
    second.refresh_views()
    view = second.status("loc-1", "ada")
    assert view.dnd is Overall.PARTIAL
    assert [view.channels[ch].status for ch in (SMS, CALL, FB)] == [DndKind.ACTIVE] * 3
    assert not second.can_send("loc-1", "ada", CALL).allowed

    # The second ledger's cached aggregate is behind the log: it still decides right.
    clock.advance(minutes=1)
    second.execute(c.ClearDnd("loc-1", "ada", (SMS,), "bob"))
    first.refresh_views()
    assert first.status("loc-1", "ada").channels[SMS].status is DndKind.INACTIVE
    assert first.can_send("loc-1", "ada", SMS).allowed
    assert first.projector.positions() == second.projector.positions()


@SHARED_DATABASES
def test_a_second_ledger_does_not_refuse_from_its_stale_cached_aggregate(
    two_ledgers: tuple[DndLedger, DndLedger], clock: Clock
) -> None:
    first, second = two_ledgers
    first.execute(c.RegisterContact("loc-1", "ada", (P,)))
    clock.advance(minutes=1)
    first.execute(c.ReceiveInbound("loc-1", SMS, P, "STOP", "SM-1"))
    clock.advance(minutes=1)
    second.execute(c.SetDnd("loc-1", "ada", (CALL,), "bob"))  # caches Ada: SMS permanent
    clock.advance(minutes=1)
    first.execute(c.ReceiveInbound("loc-1", SMS, P, "START", "SM-2"))  # lifts the STOP
    second.refresh_views()
    assert second.status("loc-1", "ada").channels[SMS].status is DndKind.INACTIVE
    clock.advance(minutes=1)
    # SMS is not under permanent DND any more: the clear must be recorded, not refused.
    outcome = second.execute(c.ClearDnd("loc-1", "ada", (SMS, CALL), "bob"))
    assert outcome.result == "appended"
    assert second.status("loc-1", "ada").dnd is Overall.OFF


@SHARED_DATABASES
def test_a_second_ledger_does_not_clear_a_stop_its_stale_cached_aggregate_missed(
    two_ledgers: tuple[DndLedger, DndLedger], clock: Clock
) -> None:
    first, second = two_ledgers
    first.execute(c.RegisterContact("loc-1", "ada", (P,)))
    clock.advance(minutes=1)
    second.execute(c.SetDnd("loc-1", "ada", (SMS,), "bob"))  # caches Ada: SMS temporary
    clock.advance(minutes=1)
    first.execute(c.ReceiveInbound("loc-1", SMS, P, "STOP", "SM-1"))  # now permanent
    head = second.projector.head()
    clock.advance(minutes=1)
    # The cached copy would allow the clear; the stored events refuse it.
    with pytest.raises(LedgerError, match="permanent"):
        second.execute(c.ClearDnd("loc-1", "ada", (SMS,), "bob"))
    assert second.projector.head() == head  # nothing appended
    assert second.status("loc-1", "ada").channels[SMS].status is DndKind.PERMANENT


@SHARED_DATABASES
def test_two_ledgers_writing_at_once_lose_nothing_and_keep_the_views_exact(
    two_ledgers: tuple[DndLedger, DndLedger], clock: Clock
) -> None:
    """Two writers (threads, each with its own ledger and connections) on one database:
    every event is stored once with a dense notification id, and the views each
    writer projected, or left to catch-up, equal a rebuild."""
    ledgers = list(two_ledgers)
    errors: list[BaseException] = []

    def batches(n: int) -> list[list[c.Command]]:
        out = []
        for b in range(15):
            batch: list[c.Command] = []
            for i in range(10):
                cid = f"w{n}-{b}-{i}"
                phone = f"+1415555{n}{b:02d}{i}"
                batch.append(c.RegisterContact("loc-1", cid, (phone,)))
                batch.append(c.ReceiveInbound("loc-1", SMS, phone, "STOP", f"SM-{cid}"))
                # A shared address: both writers append to its stream.
                batch.append(c.ReportEmailEvent("loc-1", "shared@example.com",
                                                EmailSignal.COMPLAINED, f"ev-{cid}"))  # fmt: skip
            out.append(batch)
        return out

    def write(n: int, ledger: DndLedger) -> None:
        try:
            for batch in batches(n):
                outcomes = ledger.execute_many(batch)
                assert {o.result for o in outcomes} == {"appended"}, outcomes
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    alone = DndLedger("memory:", pii_key=KEY, clock=clock)  # the same commands, one writer
    for n in range(2):
        for batch in batches(n):
            alone.execute_many(batch)
    expected = alone.projector.head()
    alone.close()

    threads = [threading.Thread(target=write, args=(n, led)) for n, led in enumerate(ledgers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    first = ledgers[0]
    ids = notification_ids(first)
    assert len(ids) == expected  # none lost, none doubled
    assert ids == sorted(set(ids))
    if first.db.engine == "sqlite":
        assert ids == list(range(1, expected + 1))  # SQLite's ids are dense
    for ledger in ledgers:
        ledger.refresh_views()
    incremental = view_rows(first)
    first.projector.rebuild(ALL_VIEWS)
    assert view_rows(first) == incremental
    assert not first.can_send("loc-1", "w1-14-9", SMS).allowed


# -- past-time queries ---------------------------------------------------------------------------
NOV1 = T0 - timedelta(days=1, hours=9)  # 2026-11-01T00:00Z; the clock starts at 2026-11-02T09:00Z


def occ(hour: int, minute: int = 0) -> datetime:
    """A time on 2026-11-01 (the effective timeline)."""
    return NOV1 + timedelta(hours=hour, minutes=minute)


def rec(hour: int, minute: int = 0) -> datetime:
    """A time on 2026-11-02 (the recording timeline)."""
    return T0.replace(hour=hour, minute=minute)


def summary(channels: dict[Channel, ChannelState]) -> dict[str, tuple[str, datetime | None, Any]]:
    """The channels under DND: status, since and code."""
    return {
        ch.value: (s.status.value, s.since, s.code)
        for ch, s in channels.items()
        if s.status is not DndKind.INACTIVE
    }


def test_past_queries_on_a_hand_worked_timeline(ledger: DndLedger, clock: Clock) -> None:
    """Ada's history, recorded out of order. Times: occurred on 11-01, recorded on 11-02.

    ====  ========  ========  ==========================================  =====================
    #     recorded  occurred  event                                       effect
    ====  ========  ========  ==========================================  =====================
    1     09:00     08:00     Registered ada (phone P, email E)           -
    2     09:10     10:00     DndSetByUser call (alice)                   call temporary
    3     09:20     12:00     OptOutKeyword "STOP" by SMS from P          sms permanent (from P)
    4     09:30     14:00     DndClearedByUser call (alice)               call cleared
    5     09:40     16:00     StartReceived "START" by SMS from P         sms: P's blocks and
                                                                          temporary ones cleared
    6     10:00     11:00     MailgunComplaint for E           (late)     email permanent
    7     10:10     13:00     CarrierError30004 for P          (late)     sms permanent, same
                                                                          origin as the STOP: keeps
                                                                          since 12:00, code 30004
    8     10:20     15:00     DndSetByUser fb, call (alice)    (late)     fb, call temporary
    ====  ========  ========  ==========================================  =====================

    Expected (as_of on 11-01, known_at on 11-02; "-" is inactive; now is 11-02 10:30):

    ======  ========  ==============  ================  ================  =========  =======
    as_of   known_at  email           sms               call              fb         overall
    ======  ========  ==============  ================  ================  =========  =======
    09:00   now       -               -                 -                 -          off
    10:30   now       -               -                 active 10:00      -          partial
    11:30   now       perm 11:00      -                 active 10:00      -          partial
    11:30   10:00     perm 11:00      -                 active 10:00      -          partial
    11:30   09:50     -               -                 active 10:00      -          partial
    12:00   now       perm 11:00      perm 12:00 STOP   active 10:00      -          partial
    13:30   now       perm 11:00      perm 12:00 30004  active 10:00      -          partial
    13:30   10:05     perm 11:00      perm 12:00 STOP   active 10:00      -          partial
    13:30   09:25     -               perm 12:00 STOP   active 10:00      -          partial
    14:30   now       perm 11:00      perm 12:00 30004  -                 -          partial
    15:30   now       perm 11:00      perm 12:00 30004  active 15:00      act 15:00  partial
    15:30   10:15     perm 11:00      perm 12:00 30004  -                 -          partial
    17:00   now       perm 11:00      -                 active 15:00      act 15:00  partial
    17:00   09:45     -               -                 -                 -          off
    17:00   08:59     error: the ledger did not know Ada yet (recorded at 09:00)
    07:30   now       error: Ada was not registered yet (registered at 08:00)
    ======  ========  ==============  ================  ================  =========  =======
    """
    L, A = "loc-1", "ada"
    script: list[tuple[datetime, c.Command]] = [
        (rec(9, 0), c.RegisterContact(L, A, (P,), (E,), occ(8), "alice")),
        (rec(9, 10), c.SetDnd(L, A, (CALL,), "alice", None, occ(10))),
        (rec(9, 20), c.ReceiveInbound(L, SMS, P, "STOP", "SM-1", occ(12))),
        (rec(9, 30), c.ClearDnd(L, A, (CALL,), "alice", None, False, occ(14))),
        (rec(9, 40), c.ReceiveInbound(L, SMS, P, "START", "SM-2", occ(16))),
        (rec(10, 0), c.ReportEmailEvent(L, E, EmailSignal.COMPLAINED, "tok-1", None, "ev-1", occ(11))),
        (rec(10, 10), c.ReportCarrierStatus(L, SMS, P, "SM-0", "undelivered", 30004, occ(13))),
        (rec(10, 20), c.SetDnd(L, A, (FB, CALL), "alice", None, occ(15))),
    ]  # fmt: skip
    for recorded_at, command in script:
        clock.now = recorded_at
        assert ledger.execute(command).result == "appended"
        ledger.status(L, A)  # the views follow each write
    clock.now = rec(10, 30)
    now = clock.now

    perm_email = ("permanent", occ(11), "complained")
    stop, blocked = ("permanent", occ(12), "STOP"), ("permanent", occ(12), "30004")
    call_10, call_15 = ("active", occ(10), "user"), ("active", occ(15), "user")
    fb_15 = ("active", occ(15), "user")
    expected: list[tuple[datetime, datetime, dict[str, Any], Overall]] = [
        (occ(9), now, {}, Overall.OFF),
        (occ(10, 30), now, {"call": call_10}, Overall.PARTIAL),
        (occ(11, 30), now, {"email": perm_email, "call": call_10}, Overall.PARTIAL),
        (occ(11, 30), rec(10, 0), {"email": perm_email, "call": call_10}, Overall.PARTIAL),
        (occ(11, 30), rec(9, 50), {"call": call_10}, Overall.PARTIAL),
        (occ(12), now, {"email": perm_email, "sms": stop, "call": call_10}, Overall.PARTIAL),
        (occ(13, 30), now, {"email": perm_email, "sms": blocked, "call": call_10}, Overall.PARTIAL),
        (occ(13, 30), rec(10, 5), {"email": perm_email, "sms": stop, "call": call_10}, Overall.PARTIAL),
        (occ(13, 30), rec(9, 25), {"sms": stop, "call": call_10}, Overall.PARTIAL),
        (occ(14, 30), now, {"email": perm_email, "sms": blocked}, Overall.PARTIAL),
        (occ(15, 30), now, {"email": perm_email, "sms": blocked, "call": call_15, "fb": fb_15}, Overall.PARTIAL),
        (occ(15, 30), rec(10, 15), {"email": perm_email, "sms": blocked}, Overall.PARTIAL),
        (occ(17), now, {"email": perm_email, "call": call_15, "fb": fb_15}, Overall.PARTIAL),
        (occ(17), rec(9, 45), {}, Overall.OFF),
    ]  # fmt: skip
    for as_of, known_at, dnd, overall_status in expected:
        view = ledger.status(L, A, as_of=as_of, known_at=known_at)
        assert (summary(view.channels), view.dnd) == (dnd, overall_status), (as_of, known_at)
        assert (view.as_of, view.known_at) == (as_of, known_at)
        for ch in ALL_CHANNELS:
            decision = ledger.can_send(L, A, ch, as_of=as_of, known_at=known_at)
            assert decision.allowed is (ch.value not in dnd), (as_of, known_at, ch)

    for as_of, known_at in ((occ(17), rec(8, 59)), (occ(7, 30), now)):
        with pytest.raises(UnknownContact, match="not registered"):
            ledger.status(L, A, as_of=as_of, known_at=known_at)
        with pytest.raises(UnknownContact, match="not registered"):
            ledger.can_send(L, A, SMS, as_of=as_of, known_at=known_at)

    # The causes, where the late carrier error took over the STOP's explanation.
    sms = ledger.status(L, A, as_of=occ(13, 30)).channels[SMS]
    assert (sms.event, sms.message) == ("CarrierError30004", "Message blocked by the recipient")
    sms = ledger.status(L, A, as_of=occ(13, 30), known_at=rec(10, 5)).channels[SMS]
    assert (sms.event, sms.message) == ("OptOutKeyword", "opt-out keyword on sms")

    # Times in another zone are the same instants.
    plus2 = timezone(timedelta(hours=2))
    assert summary(ledger.status(L, A, as_of=occ(13, 30).astimezone(plus2)).channels) == {
        "email": perm_email,
        "sms": blocked,
        "call": call_10,
    }
    assert summary(
        ledger.status(L, A, as_of=occ(13, 30), known_at=rec(10, 5).astimezone(plus2)).channels
    ) == {"email": perm_email, "sms": stop, "call": call_10}

    # At the present, each way of asking gives the view's answer: the last row above.
    present = summary(ledger.status(L, A).channels)
    assert present == {"email": perm_email, "call": call_15, "fb": fb_15}
    for kwargs in ({"as_of": now}, {"known_at": now}, {"as_of": now, "known_at": now}):
        assert summary(ledger.status(L, A, **kwargs).channels) == present, kwargs
    assert ledger.status(L, A).dnd is Overall.PARTIAL


def test_a_contact_with_1000_events_answers_past_queries(ledger: DndLedger, clock: Clock) -> None:
    """999 set/clear events on call and sms after the registration, every 50th one late.

    The expected state comes from a plain model: sort by (occurred_at, recording
    order) and replay "set" / "clear" per channel.
    """
    L, A = "loc-1", "busy"
    base = T0 - timedelta(days=2)
    ledger.execute(c.RegisterContact(L, A, occurred_at=base))
    plan: list[tuple[datetime, datetime, str, Channel]] = []  # occurred, recorded, op, channel
    pending: list[c.Command] = []
    for k in range(1, 1000):
        op, ch = (("set", CALL), ("set", SMS), ("clear", CALL), ("clear", SMS))[k % 4]
        occurred = base + timedelta(minutes=k - (25 if k % 50 == 0 else 0))
        if op == "set":
            pending.append(c.SetDnd(L, A, (ch,), "alice", None, occurred))
        else:
            pending.append(c.ClearDnd(L, A, (ch,), "alice", None, False, occurred))
        plan.append((occurred, clock.now, op, ch))
        if len(pending) == 100 or k == 999:
            assert {o.result for o in ledger.execute_many(pending)} == {"appended"}
            pending.clear()
            clock.advance(minutes=1)
    assert len(ledger.history(L, A)) == 1000

    def model(as_of: datetime | None, known_at: datetime | None) -> dict[str, Any]:
        on = {CALL: False, SMS: False}
        since: dict[Channel, datetime] = {}
        chosen = [
            (occurred, seq, op, ch)
            for seq, (occurred, recorded, op, ch) in enumerate(plan)
            if (as_of is None or occurred <= as_of) and (known_at is None or recorded <= known_at)
        ]
        for occurred, _seq, op, ch in sorted(chosen):
            if op == "set" and not on[ch]:
                since[ch] = occurred
            on[ch] = op == "set"
        return {ch.value: ("active", since[ch], "user") for ch in (CALL, SMS) if on[ch]}

    recorded_times = sorted({r for _, r, _, _ in plan})
    for minute in (0, 1, 2, 3, 4, 5, 49, 50, 51, 333, 499, 500, 777, 998, 999, 1000, 2000):
        as_of = base + timedelta(minutes=minute, seconds=30)
        for known_at in (None, recorded_times[0], recorded_times[4], recorded_times[-1]):
            got = summary(ledger.status(L, A, as_of=as_of, known_at=known_at).channels)
            assert got == model(as_of, known_at), (minute, known_at)
    assert summary(ledger.status(L, A).channels) == model(None, None)


# -- the audit trail and the views at the command line ----------------------------------------------
KEY_HEX = "00112233445566778899aabbccddeeff"
CLI_ENV: dict[str, str | None] = {
    "DND_LEDGER_DB": None,
    "DND_LEDGER_POLICY": None,
    "DND_LEDGER_PII_KEY": KEY_HEX,  # fixed, so that the evidence references are known
    "DND_LEDGER_PII_KEY_FILE": None,
}
DAY = "2026-01-05"


def run_cli(db: Path, *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(
        dnd_ledger_cli, ["--db", str(db), *args], env=CLI_ENV, prog_name="dnd-ledger"
    )
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"dnd-ledger {' '.join(args)} crashed") from result.exception
    assert result.exit_code == code, f"exit {result.exit_code}: {result.output}"
    return result


@dataclass(frozen=True)
class Scenario:
    db: Path
    started: datetime
    finished: datetime


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """Ada and Bob share a household phone; Ada also has an email address.

    10:00  Ada is registered by alice (phone P, email E).
    10:30  Bob is registered by alice with the same phone P.
    11:00  P texts STOP: permanent SMS DND for both.
    12:00  alice sets DND on calls for Ada ("asked not to be called").
    12:30  alice tries to clear Ada's SMS DND: refused (permanent), nothing recorded.
    13:00  P texts "please stop texting me": flagged for review, temporary SMS DND for both.
    14:00  support (sam, ticket SUP-1) approves Ada's opt-in on SMS and WhatsApp.
    11:30  carol sets DND on email for Ada, recorded late (request req-7), then retried.
    15:00  alice clears Ada's call DND.
           The STOP webhook is delivered again: a duplicate.
    """
    db = tmp_path_factory.mktemp("audit") / "ledger.db"
    started = datetime.now(UTC)
    at = lambda hm: ["--at", f"{DAY}T{hm}:00Z"]  # noqa: E731
    run_cli(db, "init")
    run_cli(db, "contacts", "add", "loc-1", "ada", "--phone", P, "--email", E,
            "--actor", "alice", *at("10:00"))  # fmt: skip
    run_cli(db, "contacts", "add", "loc-1", "bob", "--phone", P, "--actor", "alice", *at("10:30"))
    run_cli(db, "inbound", "loc-1", "--channel", "sms", "--from", P, "--body", "STOP",
            "--message-sid", "SM-1", *at("11:00"))  # fmt: skip
    run_cli(db, "dnd", "set", "loc-1", "ada", "--channel", "call", "--actor", "alice",
            "--reason", "asked not to be called", *at("12:00"))  # fmt: skip
    run_cli(db, "dnd", "clear", "loc-1", "ada", "--channel", "sms", "--actor", "alice",
            *at("12:30"), code=1)  # fmt: skip
    run_cli(db, "inbound", "loc-1", "--channel", "sms", "--from", P, "--body",
            "please stop texting me", "--message-sid", "SM-2", *at("13:00"))  # fmt: skip
    run_cli(db, "support", "approve-opt-in", "loc-1", "ada", "--channel", "sms", "--channel",
            "whatsapp", "--approver", "sam", "--ticket", "SUP-1", "--evidence",
            "signed web form 2026-01-05", *at("14:00"))  # fmt: skip
    for _ in range(2):
        run_cli(db, "dnd", "set", "loc-1", "ada", "--channel", "email", "--actor", "carol",
                "--request-id", "req-7", *at("11:30"))  # fmt: skip
    run_cli(db, "dnd", "clear", "loc-1", "ada", "--channel", "call", "--actor", "alice",
            *at("15:00"))  # fmt: skip
    out = run_cli(db, "inbound", "loc-1", "--channel", "sms", "--from", P, "--body", "STOP",
                  "--message-sid", "SM-1", *at("11:00"))  # fmt: skip
    assert out.stdout.startswith("duplicate")
    return Scenario(db, started, datetime.now(UTC))


def text_ref(text: str) -> str:
    return Keyring(bytes.fromhex(KEY_HEX)).ref("text", text)


STAMP = DEFAULT_POLICY.stamp
R = "<recorded_at>"
#: The request's key covers its content (command, channel, actor, time): see idempotency.
REQ7 = request_key(Keyring(bytes.fromhex(KEY_HEX)), "req-7", "dnd set",
                   channels={Channel.EMAIL}, actor="carol", reason=None,
                   at=datetime.fromisoformat(f"{DAY}T11:30:00+00:00"))  # fmt: skip
ADA_CSV = f"""\
position,location_id,contact_id,occurred_at,recorded_at,event,source,actor,channels,effect,reason,before,after,idempotency_key,policy_version,evidence
5,loc-1,ada,{DAY}T10:00:00.000000+00:00,{R},Registered,user,alice,,none,,,,,{STAMP},
9,loc-1,ada,{DAY}T11:00:00.000000+00:00,{R},OptOutKeyword,provider,,sms,permanent DND,STOP: opt-out keyword on sms,sms=inactive,sms=permanent,inbound:SM-1,{STAMP},{text_ref("STOP")}
11,loc-1,ada,{DAY}T12:00:00.000000+00:00,{R},DndSetByUser,user,alice,call,temporary DND,user: asked not to be called,call=inactive,call=active,,{STAMP},
13,loc-1,ada,{DAY}T13:00:00.000000+00:00,{R},RevocationSuspected,provider,,sms,temporary DND,review: message contains an opt-out word: flagged for human review,sms=permanent,sms=permanent,inbound:SM-2,{STAMP},{text_ref("please stop texting me")}
15,loc-1,ada,{DAY}T14:00:00.000000+00:00,{R},SupportOptInApproved,support,sam,"sms,whatsapp",clear all DND,"support-opt-in: support-approved opt-in, ticket SUP-1, approved by sam",sms=permanent; whatsapp=inactive,sms=inactive; whatsapp=inactive,,{STAMP},{text_ref("signed web form 2026-01-05")}
16,loc-1,ada,{DAY}T11:30:00.000000+00:00,{R},DndSetByUser,user,carol,email,temporary DND,user: set by carol from the contact record,email=inactive,email=active,{REQ7},{STAMP},
17,loc-1,ada,{DAY}T15:00:00.000000+00:00,{R},DndClearedByUser,user,alice,call,clear temporary DND,user: cleared by alice from the contact record,call=active,call=inactive,,{STAMP},"""

ADA_POSITIONS = [5, 9, 11, 13, 15, 16, 17]
_NONE = {"inactive": 2, "active": 0, "permanent": 0}
STATS = {
    "loc-1": {
        "contacts": 2,
        "overall": {"on": 0, "off": 0, "partial": 2},
        "channels": {
            "email": {"inactive": 1, "active": 1, "permanent": 0},
            "sms": {"inactive": 1, "active": 0, "permanent": 1},
            "call": _NONE,
            "fb": _NONE,
            "gmb": _NONE,
            "whatsapp": _NONE,
        },
        # The 13:00 message's review item, due 2026-01-20 (MLK day does not count): overdue.
        "reviews": {"open": 1, "overdue": 1},
    }
}


def mask_recorded_at(csv_text: str) -> str:
    """The CSV with each row's recorded_at (the fifth field) replaced by a placeholder."""
    head, *rows = csv_text.split("\n")
    return "\n".join([head, *(re.sub(r"^((?:[^,]*,){4})[^,]+,", rf"\g<1>{R},", r) for r in rows)])


def expected_rows() -> list[dict[str, Any]]:
    """The CSV above as the JSON rows: typed position, before/after objects, nulls."""
    rows = []
    for r in csv.DictReader(io.StringIO(ADA_CSV)):
        row: dict[str, Any] = {k: (v if v != "" else None) for k, v in r.items()}
        row["position"] = int(r["position"])
        row["channels"] = r["channels"]
        row["effect"] = r["effect"]
        for side in ("before", "after"):
            pairs = [p.split("=") for p in r[side].split("; ")] if r[side] else []
            row[side] = dict(pairs)
        rows.append(row)
    return rows


class TestAuditAtTheCommandLine:
    def test_csv_is_exact(self, scenario: Scenario) -> None:
        out = run_cli(scenario.db, "audit", "loc-1", "ada", "--format", "csv").stdout
        assert mask_recorded_at(out.rstrip("\n")) == ADA_CSV
        # recorded_at: when the commands ran, in log order; one command, one time.
        recorded = [r["recorded_at"] for r in csv.DictReader(io.StringIO(out))]
        times = [datetime.fromisoformat(t) for t in recorded]
        assert all(scenario.started <= t <= scenario.finished for t in times)
        assert times == sorted(times)
        assert len(set(times)) == len(times)  # each of Ada's rows comes from its own command

    def test_bob_shares_the_household_phone(self, scenario: Scenario) -> None:
        out = run_cli(scenario.db, "audit", "loc-1", "bob", "--format", "csv").stdout
        rows = list(csv.DictReader(io.StringIO(out)))
        assert [(r["position"], r["event"], r["before"], r["after"]) for r in rows] == [
            ("7", "Registered", "", ""),
            ("10", "OptOutKeyword", "sms=inactive", "sms=permanent"),
            ("14", "RevocationSuspected", "sms=permanent", "sms=permanent"),
        ]
        ada = list(csv.DictReader(io.StringIO(ADA_CSV)))
        # The same webhook, the same time of recording and evidence for both contacts.
        for mine, hers in ((rows[1], ada[1]), (rows[2], ada[3])):
            assert (mine["idempotency_key"], mine["evidence"]) == (
                hers["idempotency_key"],
                hers["evidence"],
            )

    def test_json_is_an_array_of_the_same_rows(self, scenario: Scenario) -> None:
        out = run_cli(scenario.db, "audit", "loc-1", "ada", "--format", "json").stdout
        assert out.count("\n") == 1
        rows = json.loads(out)
        assert isinstance(rows, list)
        for row in rows:
            datetime.fromisoformat(row.pop("recorded_at"))
        assert rows == [{k: v for k, v in r.items() if k != "recorded_at"} for r in expected_rows()]

    def test_jsonl_is_one_object_per_line(self, scenario: Scenario) -> None:
        array = json.loads(run_cli(scenario.db, "audit", "loc-1", "ada", "--format", "json").stdout)
        out = run_cli(scenario.db, "audit", "loc-1", "ada", "--format", "jsonl").stdout
        lines = out.rstrip("\n").split("\n")
        assert len(lines) == len(ADA_POSITIONS)
        assert [json.loads(line) for line in lines] == array

    def test_table_has_a_header_a_rule_and_a_row_per_event(self, scenario: Scenario) -> None:
        out = run_cli(scenario.db, "audit", "loc-1", "ada").stdout  # table is the default
        head, rule, *rows = out.rstrip("\n").split("\n")
        assert head.split() == [
            "#",
            "occurred",
            "recorded",
            "contact",
            "event",
            "source",
            "actor",
            "effect",
            "change",
        ]
        assert set(rule.replace(" ", "")) == {"-"}
        assert [int(r.split()[0]) for r in rows] == ADA_POSITIONS
        stop = rows[1].split()
        assert stop[1] == f"{DAY}T11:00:00Z"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stop[2])  # recorded
        assert stop[3:8] == ["ada", "OptOutKeyword", "provider", "-", "permanent"]
        assert re.search(r"  permanent DND +sms=inactive -> sms=permanent$", rows[1])
        assert rows[0].split()[3:] == ["ada", "Registered", "user", "alice", "none", "-"]
        change = "sms=permanent; whatsapp=inactive -> sms=inactive; whatsapp=inactive"
        assert re.search(rf"  clear all DND +{change}$", rows[4])
        assert run_cli(scenario.db, "audit", "loc-1", "ada", "--format", "table").stdout == out

    @pytest.mark.parametrize(
        ("window", "positions"),
        [
            (("--since", f"{DAY}T11:00:00Z", "--until", f"{DAY}T12:00:00Z"), [9, 11, 16]),
            (("--since", f"{DAY}T12:00:00+01:00", "--until", f"{DAY}T13:00:00+01:00"), [9, 11, 16]),
            (("--since", f"{DAY}T14:00:00Z"), [15, 17]),
            (("--until", f"{DAY}T10:59:59Z"), [5]),
            (("--since", f"{DAY}T15:00:00.000001Z"), []),
        ],
    )
    def test_since_and_until_filter_on_occurred_at(
        self, scenario: Scenario, window: tuple[str, ...], positions: list[int]
    ) -> None:
        out = run_cli(scenario.db, "audit", "loc-1", "ada", *window, "--format", "json").stdout
        assert [r["position"] for r in json.loads(out)] == positions

    def test_location_and_whole_log(self, scenario: Scenario) -> None:
        everything = json.loads(run_cli(scenario.db, "audit", "--format", "json").stdout)
        assert [r["position"] for r in everything] == list(range(1, 18))
        assert json.loads(run_cli(scenario.db, "audit", "loc-1", "--format", "json").stdout) == (
            everything
        )
        assert run_cli(scenario.db, "audit", "loc-2", "--format", "json").stdout == "[]\n"
        address_rows = [r for r in everything if r["contact_id"] is None]
        assert [r["event"] for r in address_rows] == [
            "Address.Seen",
            "Address.Claimed",
            "Address.Seen",
            "Address.Claimed",
            "Address.Claimed",
            "Address.OptOutKeyword",
            "Address.RevocationSuspected",
        ]

    def test_projections_status_shows_positions_and_no_lag(self, scenario: Scenario) -> None:
        out = run_cli(scenario.db, "projections", "status", "--json").stdout
        assert json.loads(out) == [
            {"view": v, "position": 17, "head": 17, "lag": 0, "error": None} for v in VIEWS
        ]
        table_out = run_cli(scenario.db, "projections", "status").stdout.split("\n")
        assert table_out[0].split() == ["view", "position", "head", "lag"]
        assert [line.split() for line in table_out[2:6]] == [[v, "17", "17", "0"] for v in VIEWS]

    def test_stats_json_is_exact(self, scenario: Scenario) -> None:
        assert json.loads(run_cli(scenario.db, "stats", "--json").stdout) == STATS
        assert json.loads(run_cli(scenario.db, "stats", "loc-1", "--json").stdout) == STATS
        assert json.loads(run_cli(scenario.db, "stats", "loc-2", "--json").stdout) == {}

    def test_rebuild_gives_identical_output(self, scenario: Scenario, tmp_path: Path) -> None:
        db = tmp_path / "copy.db"
        with sqlite3.connect(scenario.db) as src, sqlite3.connect(db) as dst:
            src.backup(dst)  # a consistent copy, WAL included
        before = {
            fmt: run_cli(scenario.db, "audit", "loc-1", "ada", "--format", fmt).stdout
            for fmt in ("csv", "json", "table")
        }
        for fmt, text in before.items():
            assert run_cli(db, "audit", "loc-1", "ada", "--format", fmt).stdout == text
        for name in ("all", "audit", "status", "addresses", "stats"):
            out = run_cli(db, "projections", "rebuild", *([] if name == "all" else [name])).stdout
            assert re.fullmatch(rf"rebuilt {name}: 17 events in \d+\.\d\ds\n", out), out
            for fmt, text in before.items():
                assert run_cli(db, "audit", "loc-1", "ada", "--format", fmt).stdout == text
            assert json.loads(run_cli(db, "stats", "--json").stdout) == STATS
            status = json.loads(run_cli(db, "projections", "status", "--json").stdout)
            assert {v["position"] for v in status} == {17}
