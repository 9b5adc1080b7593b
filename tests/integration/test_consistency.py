"""Read-your-writes in every process, and fail closed when the views cannot be shown
current (DESIGN §2.6). Every test runs on every backend where it means something."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from tests.conftest import SHARED_DATABASES, Clock, poison_opt_outs

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.domain.errors import InvalidInput, LedgerUnavailable
from dnd_ledger.domain.values import Channel, DndKind

KEY = b"test-key-0123456789abcdef"
P = "+14155550100"
SMS = Channel.SMS


@SHARED_DATABASES
class TestReadYourWritesAcrossProcesses:
    def test_an_opt_out_written_elsewhere_is_seen_by_the_next_query(
        self, two_ledgers: tuple[DndLedger, DndLedger]
    ) -> None:
        writer, reader = two_ledgers
        writer.execute(c.RegisterContact("loc-1", "ada", (P,)))
        assert reader.can_send("loc-1", "ada", SMS).allowed  # read, and remembered
        assert reader.status("loc-1", "ada").dnd.value == "off"
        writer.execute(c.ReceiveInbound("loc-1", SMS, P, "STOP", "SM1"))
        # No refresh, no waiting: the write was acknowledged, so the next query sees it.
        assert not reader.can_send("loc-1", "ada", SMS).allowed
        assert reader.status("loc-1", "ada").channels[SMS].status is DndKind.PERMANENT
        assert [r["event"] for r in reader.views.audit("loc-1", "ada")][-1] == "OptOutKeyword"

    def test_a_dnd_set_elsewhere_is_seen_at_once_and_so_is_its_clear(
        self, two_ledgers: tuple[DndLedger, DndLedger], clock: Clock
    ) -> None:
        writer, reader = two_ledgers
        writer.execute(c.RegisterContact("loc-1", "ada", (P,)))
        for _ in range(3):
            assert reader.can_send("loc-1", "ada", Channel.EMAIL).allowed
            writer.execute(c.SetDnd("loc-1", "ada", (Channel.EMAIL,), "alice"))
            assert not reader.can_send("loc-1", "ada", Channel.EMAIL).allowed
            clock.advance(minutes=1)
            writer.execute(c.ClearDnd("loc-1", "ada", (Channel.EMAIL,), "alice"))
            clock.advance(minutes=1)

    def test_events_stored_without_views_are_applied_before_the_next_answer(
        self, two_ledgers: tuple[DndLedger, DndLedger], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        writer, reader = two_ledgers
        writer.execute(c.RegisterContact("loc-1", "ada", (P,)))
        assert reader.can_send("loc-1", "ada", SMS).allowed
        # The writer cannot write its view rows (as when a view table is locked): its
        # events are stored all the same, and the reader applies them before answering.
        monkeypatch.setattr(writer.projector, "apply_own", _refuse)
        writer.execute(c.ReceiveInbound("loc-1", SMS, P, "STOP", "SM1"))
        assert writer.projector.head() > min(writer.projector.positions().values())
        assert not reader.can_send("loc-1", "ada", SMS).allowed
        assert min(reader.projector.positions().values()) == reader.projector.head()

    def test_a_first_read_of_a_contact_applies_events_stored_without_views(
        self, two_ledgers: tuple[DndLedger, DndLedger], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The reader holds no row of the contact: on a SQLite file the row is read in
        the statement that checks whether anyone committed, and someone did."""
        writer, reader = two_ledgers
        writer.execute(c.RegisterContact("loc-1", "ada", (P,)))
        writer.execute(c.RegisterContact("loc-1", "bob", ("+14155550101",)))
        assert reader.can_send("loc-1", "bob", SMS).allowed  # a passed check, on another row
        monkeypatch.setattr(writer.projector, "apply_own", _refuse)
        writer.execute(c.ReceiveInbound("loc-1", SMS, P, "STOP", "SM1"))
        reader.views.clear()
        assert not reader.can_send("loc-1", "ada", SMS).allowed
        assert min(reader.projector.positions().values()) == reader.projector.head()
        assert reader.can_send("loc-1", "bob", SMS).allowed
        assert not reader.can_send("loc-1", "ada", SMS).allowed  # now from the probe


def _refuse(*_args: Any) -> None:
    raise RuntimeError("view table locked")


class TestFailClosed:
    """Runs on every backend (memory, SQLite, PostgreSQL)."""

    def test_a_projection_failure_is_recorded_never_skipped_and_decisions_fail_closed(
        self, ledger: DndLedger, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        ledger.execute(c.RegisterContact("loc-1", "ada", (P,)))
        ledger.execute(c.RegisterContact("loc-1", "bob", ("+14155550101",)))
        assert ledger.can_send("loc-1", "ada", SMS).allowed
        poison_opt_outs(monkeypatch)
        ledger.execute(c.ReceiveInbound("loc-1", SMS, P, "STOP", "SM1"))  # stored
        for query in (
            lambda: ledger.can_send("loc-1", "ada", SMS),
            lambda: ledger.can_send("loc-1", "bob", SMS),  # another contact: no answer either
            lambda: ledger.status("loc-1", "ada"),
            lambda: ledger.ensure_current(),
        ):
            with pytest.raises(LedgerUnavailable, match="could not be applied") as caught:
                query()
            assert caught.value.lag is not None
            assert caught.value.lag > 0
        found = ledger.projector.error()
        assert found is not None
        position, error, _at = found
        assert error == "OverflowError: date value out of range"
        assert position > min(ledger.projector.positions().values())  # not skipped

        monkeypatch.undo()  # fixed: the views resume
        assert not ledger.can_send("loc-1", "ada", SMS).allowed
        assert ledger.can_send("loc-1", "bob", SMS).allowed
        assert ledger.projector.error() is None

    def test_a_database_that_does_not_answer_fails_closed(
        self, ledger: DndLedger, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        ledger.execute(c.RegisterContact("loc-1", "ada", (P,)))
        assert ledger.can_send("loc-1", "ada", SMS).allowed  # now remembered

        def gone(*_args: Any) -> Any:
            raise ConnectionError("server closed the connection")

        monkeypatch.setattr(ledger.views, "read", gone)
        with pytest.raises(LedgerUnavailable, match="ConnectionError"):
            ledger.can_send("loc-1", "ada", SMS)  # never from memory alone


class TestTimesAtTheDoor:
    """Nothing that can be stored can stall the views: out-of-range times are refused."""

    BAD = (
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),  # UTC is before year 1
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-14))),
        datetime(1969, 12, 31, 23, 59, tzinfo=UTC),  # before 1970: a client bug
    )

    @pytest.mark.parametrize("when", BAD, ids=["year-1+01", "year-9999-14", "1969"])
    def test_every_command_refuses_an_out_of_range_occurred_at(
        self, ledger: DndLedger, when: datetime
    ) -> None:
        ledger.execute(c.RegisterContact("loc-1", "ada", (P,), ("ada@example.com",)))
        head = ledger.projector.head()
        commands: list[c.Command] = [
            c.RegisterContact("loc-1", "eve", (P,), occurred_at=when),
            c.SetDnd("loc-1", "ada", (SMS,), "alice", occurred_at=when),
            c.ClearDnd("loc-1", "ada", (SMS,), "alice", occurred_at=when),
            c.ApproveOptIn("loc-1", "ada", (SMS,), "sam", "T-1", "form", occurred_at=when),
            c.ReceiveInbound("loc-1", SMS, P, "STOP", "SM9", occurred_at=when),
            c.ImportLegacy("loc-1", "old", True, (P,), occurred_at=when),
        ]
        for command in commands:
            with pytest.raises(InvalidInput, match="occurred_at"):
                ledger.execute(command)
        assert ledger.projector.head() == head  # nothing appended
        assert ledger.can_send("loc-1", "ada", SMS).allowed

    @pytest.mark.parametrize("when", BAD[:2], ids=["year-1+01", "year-9999-14"])
    def test_queries_refuse_times_outside_the_range(
        self, ledger: DndLedger, when: datetime
    ) -> None:
        ledger.execute(c.RegisterContact("loc-1", "ada", (P,)))
        with pytest.raises(InvalidInput, match="outside the range"):
            ledger.status("loc-1", "ada", as_of=when)
        with pytest.raises(InvalidInput, match="outside the range"):
            ledger.can_send("loc-1", "ada", SMS, known_at=when)
        with pytest.raises(InvalidInput, match="outside the range"):
            ledger.views.audit("loc-1", since=when)

    def test_times_are_stored_in_utc_so_views_equal_a_rebuild(
        self, ledger: DndLedger, clock: Clock
    ) -> None:
        plus2 = timezone(timedelta(hours=2))
        ledger.execute(c.RegisterContact("loc-1", "ada", (P,)))
        clock.advance(hours=2)
        ledger.execute(c.SetDnd("loc-1", "ada", (SMS,), "alice"))
        late = (clock.now - timedelta(hours=1)).astimezone(plus2)  # a late event, +02:00
        ledger.execute(c.ReceiveInbound("loc-1", SMS, P, "STOP", "SM1", occurred_at=late))
        before = _view_rows(ledger)
        ledger.projector.rebuild(["status", "addresses"])
        assert _view_rows(ledger) == before
        assert all("+02:00" not in str(row) for rows in before.values() for row in rows)


def _view_rows(ledger: DndLedger) -> dict[str, list[tuple[Any, ...]]]:
    tables = ("dnd_status_contacts", "dnd_audit", "dnd_address_index")
    return {t: ledger.sql.fetchall(f"SELECT * FROM {t} ORDER BY 1, 2, 3") for t in tables}


@pytest.mark.postgres
def test_a_locked_view_table_fails_decisions_closed_until_it_is_released(
    pg_url: str, clock: Clock
) -> None:
    import psycopg

    ledger = DndLedger(pg_url, pii_key=KEY, clock=clock, view_deadline=3)
    try:
        ledger.execute(c.RegisterContact("loc-1", "ada", (P,)))
        assert ledger.can_send("loc-1", "ada", SMS).allowed
        with psycopg.connect(pg_url) as other:
            other.execute("LOCK TABLE dnd_status_contacts IN ACCESS EXCLUSIVE MODE")
            # The STOP is stored: its view rows wait for the lock, then give way.
            ledger.execute(c.ReceiveInbound("loc-1", SMS, P, "STOP", "SM1"))
            assert ledger.projector.head() > min(ledger.projector.positions().values())
            for _ in range(2):
                with pytest.raises(LedgerUnavailable) as caught:
                    ledger.can_send("loc-1", "ada", SMS)
                assert caught.value.lag is not None
                assert caught.value.lag > 0
            other.rollback()  # the lock is released
        decision = ledger.can_send("loc-1", "ada", SMS)
        assert not decision.allowed
        assert decision.event == "OptOutKeyword"
        assert ledger.projector.error() is None
    finally:
        ledger.close()
