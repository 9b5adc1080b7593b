"""One contact's or one address's audit rows are read through the events table's index
on their aggregate (AuditTrail.of_aggregate), not through an index of the audit view:
on every backend they are the rows the view's own columns select, in log order; the
view's earlier indexes on contact and address are dropped when a ledger is opened.
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
from tests.conftest import SHARED_DATABASES, TEST_KEY, Clock
from tests.integration.test_audit_trail import ADA_PHONE, L, raw, record_some

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.domain.values import Channel
from dnd_ledger.projections.audit_trail import DND_EVENTS, AuditRecord, AuditTrail
from dnd_ledger.projections.rows import entry_of

SMS = Channel.SMS
BOB_PHONE = "+14155550101"
OLD_INDEXES = (
    "CREATE INDEX dnd_audit_contact ON dnd_audit (location_id, contact_id, position)",
    "CREATE INDEX dnd_audit_address ON dnd_audit (location_id, address_ref, position)"
    " WHERE address_ref IS NOT NULL",
)
INDEXES = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'dnd_audit'"
    " AND sql IS NOT NULL ORDER BY name",
    "postgres": "SELECT indexname FROM pg_indexes WHERE tablename = 'dnd_audit'"
    " AND indexname <> 'dnd_audit_pkey' ORDER BY indexname",
}


def rows(found: list[AuditRecord]) -> list[tuple[Any, ...]]:
    return [r.row() for r in found]


def record_more(ledger: DndLedger, clock: Clock) -> None:
    """What record_some records, and: bob shares ada's phone, a second location has
    its own ada with the same phone (same ids, other aggregates)."""
    record_some(ledger, clock)
    ledger.execute(c.RegisterContact(L, "bob", (ADA_PHONE, BOB_PHONE)))
    clock.advance(minutes=1)
    ledger.execute(c.RegisterContact("loc-2", "ada", (ADA_PHONE,)))
    clock.advance(minutes=1)
    ledger.execute(c.ReceiveInbound("loc-2", SMS, ADA_PHONE, "STOP", "SM9"))
    clock.advance(minutes=1)
    ledger.execute(c.ReceiveInbound(L, SMS, BOB_PHONE, "START", "SM10"))
    ledger.ensure_current()


def test_a_contacts_and_an_addresss_trail_read_through_its_aggregate_are_its_rows(
    ledger: DndLedger, clock: Clock
) -> None:
    record_more(ledger, clock)
    trail = ledger.views.trail
    contacts = ledger.sql.fetchall(
        "SELECT DISTINCT location_id, contact_id FROM dnd_audit WHERE contact_id IS NOT NULL"
    )
    refs = ledger.sql.fetchall(
        "SELECT DISTINCT location_id, address_ref FROM dnd_audit WHERE address_ref IS NOT NULL"
    )
    assert len(contacts) == 3
    assert len(refs) >= 4
    marks = ", ".join("?" * len(DND_EVENTS))
    seen = 0
    for loc, cid in contacts:
        where, params = "a.location_id = ? AND a.contact_id = ?", (loc, cid)
        expected = trail.read(where, params)
        assert expected
        assert rows(trail.of_contact(loc, cid)) == rows(expected)
        assert [r.position for r in expected] == sorted(r.position for r in expected)
        dnd = trail.read(f"{where} AND a.event IN ({marks})", (*params, *DND_EVENTS))
        assert rows(trail.of_contact(loc, cid, f"a.event IN ({marks})", DND_EVENTS)) == rows(dnd)
        last = " ORDER BY a.position DESC LIMIT 1"
        assert rows(trail.of_contact(loc, cid, tail=last)) == rows(expected[-1:])
        # The fold's entries: those of a trail that reads the rows filtered on the view.
        assert dnd
        assert AuditTrail.of(ledger).entries(loc, cid) == [entry_of(r.domain_event) for r in dnd]
        seen += len(expected)
    for loc, ref in refs:
        expected = trail.read("a.location_id = ? AND a.address_ref = ?", (loc, ref))
        assert expected
        assert rows(trail.of_address(loc, ref)) == rows(expected)
        seen += len(expected)
    # Every row is a contact's or an address's: each was read once, through its aggregate.
    assert seen == len(trail.read())
    assert trail.of_contact(L, "nobody") == []
    assert trail.of_address(L, "ph_none") == []
    assert trail.of_contact("loc-3", "ada") == []  # same contact id, another location


def test_the_readers_of_one_contact_or_address_show_the_same_through_the_aggregate(
    ledger: DndLedger, clock: Clock
) -> None:
    record_more(ledger, clock)
    every = ledger.views.audit()
    for loc, cid in ((L, "ada"), (L, "bob"), ("loc-2", "ada")):
        mine = [r for r in every if (r["location_id"], r["contact_id"]) == (loc, cid)]
        assert mine
        assert ledger.views.audit(loc, cid) == mine


def test_a_row_of_another_contact_under_the_aggregate_is_an_error(
    ledger: DndLedger, clock: Clock
) -> None:
    record_more(ledger, clock)
    trail = ledger.views.trail
    first = trail.of_contact(L, "ada")[0].position
    ledger.sql.execute("UPDATE dnd_audit SET contact_id = 'eve' WHERE position = ?", (first,))
    with pytest.raises(RuntimeError, match="not of contact loc-1/ada"):
        trail.of_contact(L, "ada")
    ref = trail.read("a.address_ref IS NOT NULL")[0]
    ledger.sql.execute(
        "UPDATE dnd_audit SET location_id = 'loc-9' WHERE position = ?", (ref.position,)
    )
    with pytest.raises(RuntimeError, match=f"not of address {L}/{ref.address_ref}"):
        trail.of_address(L, str(ref.address_ref))
    bob = trail.of_contact(L, "bob")[-1]
    ledger.sql.execute(
        "UPDATE dnd_audit SET aggregate_id = ? WHERE position = ?", (str(uuid4()), bob.position)
    )
    with pytest.raises(RuntimeError, match=f"position {bob.position} is of"):
        trail.of_contact(L, "bob")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_on_sqlite_an_aggregates_rows_are_found_by_the_events_index(
    ledger: DndLedger, clock: Clock
) -> None:
    record_some(ledger, clock)
    statements: list[tuple[str, tuple[Any, ...]]] = []

    def capture(statement: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        statements.append((statement, params))
        return []

    trail = ledger.views.trail
    trail.of_contact(L, "ada", "a.event = 'ContactLocated'", fetch=capture)
    trail.of_address(L, "ph_x", "a.event <> 'Address.Seen'", fetch=capture)
    for statement, params in statements:
        plan = [r[3] for r in ledger.sql.fetchall(f"EXPLAIN QUERY PLAN {statement}", params)]
        assert plan[0].startswith("SEARCH e USING INDEX")
        assert "(originator_id=?)" in plan[0]
        assert plan[1] == "SEARCH a USING INTEGER PRIMARY KEY (rowid=?)"
        assert not any(step.startswith("SCAN") for step in plan)


@SHARED_DATABASES
def test_the_audit_views_contact_and_address_indexes_are_dropped_on_open(
    db_url: str, clock: Clock
) -> None:
    ledger = DndLedger(db_url, pii_key=TEST_KEY, clock=clock)
    try:
        record_some(ledger, clock)
        expected = rows(ledger.views.trail.of_contact(L, "ada"))
        dialect = ledger.sql.dialect
        assert [r[0] for r in ledger.sql.fetchall(INDEXES[dialect])] == ["dnd_audit_location"]
    finally:
        ledger.close()
    with raw(db_url) as execute:  # as the earlier code left them
        for statement in OLD_INDEXES:
            execute(statement, ())
    with raw(db_url) as execute:
        found = execute(INDEXES[dialect], ())
        listed = [r[0] for r in found.fetchall()]  # type: ignore[attr-defined]
        assert listed == ["dnd_audit_address", "dnd_audit_contact", "dnd_audit_location"]
    again = DndLedger(db_url, pii_key=TEST_KEY, clock=clock)
    try:
        assert [r[0] for r in again.sql.fetchall(INDEXES[dialect])] == ["dnd_audit_location"]
        assert rows(again.views.trail.of_contact(L, "ada")) == expected
        assert not again.can_send(L, "ada", SMS).allowed
    finally:
        again.close()
