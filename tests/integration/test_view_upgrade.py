"""A ledger whose status view has the earlier layout (one row per contact and channel
in ``dnd_status_channels``) is upgraded when opened: the view is rebuilt from the log,
and until it is, queries fail closed."""

from __future__ import annotations

from typing import Any

import pytest
from tests.conftest import SHARED_DATABASES, Clock, open_together, poison_opt_outs, raw

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.domain.errors import LedgerUnavailable
from dnd_ledger.domain.values import Channel
from dnd_ledger.projections.schema import VIEWS
from dnd_ledger.projections.status_row import LAYOUT, META_NAME

KEY = b"test-key-0123456789abcdef"
ADA_PHONE, BOB_PHONE = "+14155550100", "+14155550101"
SMS, EMAIL = Channel.SMS, Channel.EMAIL

#: The status view's tables as the earlier layout made them.
OLD_SCHEMA = (
    "CREATE TABLE dnd_status_contacts ("
    " aggregate_id TEXT PRIMARY KEY, location_id TEXT NOT NULL, contact_id TEXT NOT NULL,"
    " overall TEXT NOT NULL, version INTEGER NOT NULL, last_occurred TEXT,"
    " state TEXT NOT NULL, UNIQUE (location_id, contact_id))",
    "CREATE TABLE dnd_status_channels ("
    " location_id TEXT NOT NULL, contact_id TEXT NOT NULL, channel TEXT NOT NULL,"
    " status TEXT NOT NULL, since TEXT, code TEXT, message TEXT,"
    " cause_event TEXT, cause_event_id TEXT, overall TEXT NOT NULL,"
    " PRIMARY KEY (location_id, contact_id, channel))",
)
STATUS_ROWS = "SELECT * FROM dnd_status_contacts ORDER BY aggregate_id"
AUDIT_ROWS = "SELECT * FROM dnd_audit ORDER BY position"
STATS_ROWS = "SELECT * FROM dnd_stats WHERE count <> 0 ORDER BY 1, 2, 3"


def make_old_ledger(db_url: str, clock: Clock) -> dict[str, list[tuple[Any, ...]]]:
    """A ledger with an opted-out contact (ada, sms) and one without DND (bob), whose
    status view is then put back into the earlier layout, with rows that lie: they say
    ada has no DND. Its views' positions stay at the log's head, as the earlier code
    left them. Returns the views' rows as the current code made them."""
    ledger = DndLedger(db_url, pii_key=KEY, clock=clock)
    try:
        ledger.execute(c.RegisterContact("loc-1", "ada", (ADA_PHONE,)))
        ledger.execute(c.RegisterContact("loc-1", "bob", (BOB_PHONE,)))
        ledger.execute(c.ReceiveInbound("loc-1", SMS, ADA_PHONE, "STOP", "SM1"))
        assert not ledger.can_send("loc-1", "ada", SMS).allowed
        expected = {
            "status": ledger.sql.fetchall(STATUS_ROWS),
            "audit": ledger.sql.fetchall(AUDIT_ROWS),
            "stats": ledger.sql.fetchall(STATS_ROWS),
        }
        rows = ledger.sql.fetchall(
            "SELECT aggregate_id, location_id, contact_id, overall, version, last_occurred,"
            " state FROM dnd_status_contacts"
        )
        head = ledger.projector.head()
        assert ledger.projector.positions() == dict.fromkeys(VIEWS, head)
    finally:
        ledger.close()
    with raw(db_url) as execute:
        execute("DROP TABLE dnd_status_contacts", ())
        for statement in OLD_SCHEMA:
            execute(statement, ())
        for row in rows:
            execute("INSERT INTO dnd_status_contacts VALUES (?, ?, ?, 'off', ?, ?, ?)",
                    (*row[:3], *row[4:]))  # fmt: skip
            for ch in Channel:
                execute(
                    "INSERT INTO dnd_status_channels (location_id, contact_id, channel, status,"
                    " overall) VALUES (?, ?, ?, 'inactive', 'off')",
                    (row[1], row[2], ch.value),
                )
        execute("DELETE FROM dnd_meta WHERE name = ?", (META_NAME,))
    return expected


def check_upgraded(ledger: DndLedger, expected: dict[str, list[tuple[Any, ...]]]) -> None:
    decision = ledger.can_send("loc-1", "ada", SMS)
    assert not decision.allowed
    assert decision.event == "OptOutKeyword"
    assert ledger.can_send("loc-1", "ada", EMAIL).allowed
    assert ledger.can_send("loc-1", "bob", SMS).allowed
    assert ledger.status("loc-1", "ada").channels[SMS].event == "OptOutKeyword"
    assert not ledger.sql.table_exists("dnd_status_channels")
    assert ledger.sql.fetchall(STATUS_ROWS) == expected["status"]
    assert ledger.sql.fetchall(AUDIT_ROWS) == expected["audit"]
    assert ledger.sql.fetchall(STATS_ROWS) == expected["stats"]
    assert ledger.projector.positions() == dict.fromkeys(VIEWS, ledger.projector.head())
    meta = ledger.sql.fetchone("SELECT value FROM dnd_meta WHERE name = ?", (META_NAME,))
    assert meta == (LAYOUT,)


@SHARED_DATABASES
def test_an_old_status_view_is_dropped_and_rebuilt_from_the_log_on_open(
    db_url: str, clock: Clock
) -> None:
    expected = make_old_ledger(db_url, clock)
    ledger = DndLedger(db_url, pii_key=KEY, clock=clock)
    try:
        # Opened: the old table is gone, the status view empty, and the positions of the
        # views that advance together (status, audit, stats) are reset; addresses stay.
        assert not ledger.sql.table_exists("dnd_status_channels")
        assert ledger.sql.fetchall("SELECT COUNT(*) FROM dnd_status_contacts") == [(0,)]
        positions = ledger.projector.positions()
        head = ledger.projector.head()
        assert positions == {"status": 0, "audit": 0, "stats": 0, "addresses": head}
        # The first query catches the views up from the log, then decides.
        check_upgraded(ledger, expected)
        assert ledger.views.stats()["loc-1"]["channel:sms"] == {"permanent": 1, "inactive": 1}
    finally:
        ledger.close()
    # Opening it again changes nothing.
    again = DndLedger(db_url, pii_key=KEY, clock=clock)
    try:
        assert again.projector.positions() == dict.fromkeys(VIEWS, again.projector.head())
        check_upgraded(again, expected)
    finally:
        again.close()


@SHARED_DATABASES
def test_until_the_rebuilt_view_has_caught_up_decisions_fail_closed(
    db_url: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = make_old_ledger(db_url, clock)
    with monkeypatch.context() as patched:
        poison_opt_outs(patched)  # the rebuild cannot get past ada's STOP
        ledger = DndLedger(db_url, pii_key=KEY, clock=clock, view_deadline=2)
        try:
            for contact in ("ada", "bob"):
                with pytest.raises(LedgerUnavailable):
                    ledger.can_send("loc-1", contact, SMS)
            assert ledger.projector.positions()["status"] < ledger.projector.head()
        finally:
            ledger.close()
    ledger = DndLedger(db_url, pii_key=KEY, clock=clock)
    try:
        check_upgraded(ledger, expected)
    finally:
        ledger.close()


@SHARED_DATABASES
def test_processes_opening_an_old_ledger_together_upgrade_it_once(
    db_url: str, clock: Clock
) -> None:
    expected = make_old_ledger(db_url, clock)
    opened, errors = open_together(3, db_url, KEY, clock)
    try:
        assert errors == []
        for ledger in opened:
            check_upgraded(ledger, expected)
    finally:
        for ledger in opened:
            ledger.close()


#: How the earlier version wrote a contact's status row (its other rows went to
#: dnd_status_channels).
OLD_CONTACT_UPSERT = (
    "INSERT INTO dnd_status_contacts (aggregate_id, location_id, contact_id, overall, version,"
    " last_occurred, state) VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (aggregate_id) DO UPDATE SET overall = excluded.overall,"
    " version = excluded.version, last_occurred = excluded.last_occurred, state = excluded.state"
)


@SHARED_DATABASES
def test_a_process_of_the_earlier_version_cannot_write_the_new_status_rows(
    db_url: str, clock: Clock
) -> None:
    """The channel columns have no default: a row that does not say every channel's
    state is refused, new or existing, so a process still running the earlier code
    fails its batch (and its queries fail closed) instead of leaving stale channels."""
    ledger = DndLedger(db_url, pii_key=KEY, clock=clock)
    try:
        ledger.execute(c.RegisterContact("loc-1", "ada", (ADA_PHONE,)))
        (row,) = ledger.sql.fetchall(
            "SELECT aggregate_id, location_id, contact_id, overall, version, last_occurred,"
            " state FROM dnd_status_contacts"
        )
        for values in (row, ("new-id", "loc-1", "bob", *row[3:])):
            with (
                pytest.raises(Exception, match=r"(?i)not.null"),
                ledger.sql.transaction() as cursor,
            ):
                cursor.execute(ledger.sql.q(OLD_CONTACT_UPSERT), values)
        assert ledger.sql.fetchall(STATUS_ROWS)[0][:7] == row
    finally:
        ledger.close()
