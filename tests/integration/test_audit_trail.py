"""The audit trail reads what an audit row shows of its event from the stored event.

``dnd_audit`` keeps only the position, aggregate, version, whom the event concerns,
its name and before/after; the trail joins it to the events table and decodes the
event (projections/audit_trail.py). On every backend: contact and address events,
after an erasure of personal data, after a rebuild, and on a ledger whose audit
view still has the earlier, wide layout.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.conftest import SHARED_DATABASES, TEST_KEY, Clock, raw

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.domain.values import AddressKind, Channel
from dnd_ledger.projections.audit_trail import RECORD_FIELDS, AuditTrail
from dnd_ledger.projections.contact_views import find_address
from dnd_ledger.projections.rows import event_fields
from dnd_ledger.projections.schema import VIEWS
from dnd_ledger.projections.status_row import LAYOUT, META_NAME
from dnd_ledger.services import contact_admin

L = "loc-1"
ADA_PHONE, ADA_EMAIL, STRANGER = "+14155550100", "ada@example.com", "+14155550199"
SMS, EMAIL = Channel.SMS, Channel.EMAIL
SLIM = [
    "position", "aggregate_id", "version", "location_id", "contact_id", "address_ref",
    "event", "before", "after",
]  # fmt: skip


def record_some(ledger: DndLedger, clock: Clock) -> None:
    """ada (a phone and an email) opts out by STOP, is opted back in on email by
    support; a stranger's number sends STOP too (an address nobody holds)."""
    ledger.execute(c.RegisterContact(L, "ada", (ADA_PHONE,), (ADA_EMAIL,)))
    clock.advance(minutes=1)
    ledger.execute(c.ReceiveInbound(L, SMS, ADA_PHONE, "STOP", "SM1"))
    clock.advance(minutes=1)
    ledger.execute(c.ReceiveInbound(L, SMS, STRANGER, "STOP", "SM2"))
    clock.advance(minutes=1)
    ledger.execute(c.SetDnd(L, "ada", (EMAIL,), "agent-7", reason="asked on the phone"))
    clock.advance(minutes=1)
    ledger.execute(c.ApproveOptIn(L, "ada", (EMAIL,), "sup-1", "T-1", "said yes on a call"))
    ledger.ensure_current()


def trail(ledger: DndLedger) -> list[tuple[Any, ...]]:
    return [r.row() for r in ledger.views.trail.read()]


def by_event(ledger: DndLedger) -> dict[str, dict[str, Any]]:
    """The last row of each event name, as a dict of every field."""
    return {row[8]: dict(zip(RECORD_FIELDS, row, strict=True)) for row in trail(ledger)}


def test_every_row_is_its_stored_events_fields_at_its_position(
    ledger: DndLedger, clock: Clock
) -> None:
    record_some(ledger, clock)
    stored = ledger.recorder.select_notifications(start=1, limit=1000)
    records = ledger.views.trail.read()
    assert [r.position for r in records] == [n.id for n in stored]
    for n, r in zip(stored, records, strict=True):
        event = ledger.mapper.to_domain_event(n)
        assert (r.aggregate_id, r.version) == (str(event.originator_id), event.originator_version)
        assert r.fields == event_fields(event)
    assert ledger.sql.fetchall("SELECT * FROM dnd_audit WHERE position = 1")[0][:1] == (1,)
    assert len(ledger.sql.fetchall("SELECT * FROM dnd_audit WHERE position = 1")[0]) == len(SLIM)


def test_contact_and_address_events_show_what_they_did(ledger: DndLedger, clock: Clock) -> None:
    record_some(ledger, clock)
    rows = by_event(ledger)
    phone_ref = ledger.keyring.ref(AddressKind.PHONE, ADA_PHONE)
    email_ref = ledger.keyring.ref(AddressKind.EMAIL, ADA_EMAIL)

    registered = rows["Registered"]
    assert (registered["contact_id"], registered["address_ref"]) == ("ada", None)
    assert registered["source"] == "user"
    assert registered["effect"] == "none"
    assert registered["effect_data"] == "{}"
    assert registered["detail"] == f'{{"emails":["{email_ref}"],"phones":["{phone_ref}"]}}'
    assert registered["occurred_at"] == "2026-11-02T09:00:00.000000+00:00"

    stop = rows["OptOutKeyword"]
    assert (stop["contact_id"], stop["channels"], stop["effect"]) == ("ada", "sms", "permanent DND")
    assert (stop["before"], stop["after"]) == ('{"sms":"inactive"}', '{"sms":"permanent"}')
    assert stop["idempotency_key"] == "inbound:SM1"
    assert stop["source"] == "provider"
    assert str(stop["evidence"]).startswith("tx_")
    assert stop["occurred_at"] == "2026-11-02T09:01:00.000000+00:00"

    set_dnd = rows["DndSetByUser"]
    assert (set_dnd["actor"], set_dnd["channels"]) == ("agent-7", "email")
    assert set_dnd["effect"] == "temporary DND"

    approved = rows["SupportOptInApproved"]
    assert (approved["actor"], approved["effect"]) == ("sup-1", "clear all DND")
    assert approved["evidence"].startswith("tx_")
    assert (approved["before"], approved["after"]) == ('{"email":"active"}', '{"email":"inactive"}')

    # An address's events: no contact, the address's reference, an event name prefixed.
    claimed = [r for r in trail(ledger) if r[8] == "Address.Claimed"]
    assert {(r[4], r[5], r[19]) for r in claimed} == {
        (None, phone_ref, '{"contact_id":"ada"}'),
        (None, email_ref, '{"contact_id":"ada"}'),
    }
    stranger_ref = ledger.keyring.ref(AddressKind.PHONE, STRANGER)
    signals = [r for r in trail(ledger) if r[5] == stranger_ref and r[8] == "Address.OptOutKeyword"]
    assert len(signals) == 1
    signal = dict(zip(RECORD_FIELDS, signals[0], strict=True))
    assert (signal["contact_id"], signal["channels"], signal["effect"]) == (
        None,
        "sms",
        "permanent DND",
    )
    assert signal["idempotency_key"] == "inbound:SM2"
    assert (signal["before"], signal["after"]) == ("{}", "{}")

    # The readers built on the trail: the audit export, find, the place of a contact.
    exported = ledger.views.audit(L, "ada")
    assert [r["event"] for r in exported] == [
        "Registered", "OptOutKeyword", "DndSetByUser", "SupportOptInApproved",
    ]  # fmt: skip
    assert exported[1]["reason"] == "STOP: opt-out keyword on sms"
    assert ledger.views.audit(L, "ada", since=clock.now) == exported[-1:]
    found = find_address(ledger, L, phone=STRANGER)
    assert [(p["event"], p["code"]) for p in found["provider_events"]] == [
        ("OptOutKeyword", "STOP")
    ]


def test_after_erasure_the_trail_still_reads_and_shows_no_personal_value(
    ledger: DndLedger, clock: Clock
) -> None:
    record_some(ledger, clock)
    before = trail(ledger)
    evidence = by_event(ledger)["SupportOptInApproved"]["evidence"]
    body = by_event(ledger)["OptOutKeyword"]["evidence"]
    assert ledger.reveal(evidence) == "said yes on a call"
    assert contact_admin.belongs_to(ledger, L, evidence)
    assert contact_admin.belongs_to(ledger, L, body)
    assert not contact_admin.belongs_to(ledger, "loc-2", evidence)

    contact_admin.erase(ledger, L, "ada", "support-1", "GDPR request T-9")
    ledger.ensure_current()
    after = trail(ledger)
    assert after[: len(before)] == before  # earlier rows read exactly as before
    erased = dict(zip(RECORD_FIELDS, after[-1], strict=True))
    assert erased["event"] == "PersonalDataErased"
    assert erased["actor"] == "support-1"
    assert ledger.reveal(evidence) is None
    for row in after:
        text = repr(row)
        assert ADA_PHONE not in text
        assert ADA_EMAIL not in text
        assert "said yes on a call" not in text
    # The reference is still the location's (its events name it), its value gone.
    assert contact_admin.belongs_to(ledger, L, evidence)
    assert contact_admin.reveal(ledger, evidence) is None
    assert not ledger.can_send(L, "ada", SMS).allowed


def test_a_rebuild_reads_the_same_trail(ledger: DndLedger, clock: Clock) -> None:
    record_some(ledger, clock)
    before = trail(ledger)
    exported = ledger.views.audit()
    ledger.projector.rebuild(list(VIEWS))
    assert trail(ledger) == before
    assert ledger.views.audit() == exported


#: The audit view as the earlier layout made it: every field of the event copied.
WIDE_AUDIT = (
    "CREATE TABLE dnd_audit ("
    " position BIGINT PRIMARY KEY, aggregate_id TEXT NOT NULL, version INTEGER NOT NULL,"
    " location_id TEXT NOT NULL, contact_id TEXT, address_ref TEXT,"
    " occurred_at TEXT NOT NULL, recorded_at TEXT NOT NULL, event TEXT NOT NULL,"
    " source TEXT, actor TEXT, channels TEXT NOT NULL, effect TEXT NOT NULL,"
    " effect_data TEXT NOT NULL, before TEXT NOT NULL, after TEXT NOT NULL,"
    " idempotency_key TEXT, policy_version TEXT, evidence TEXT, detail TEXT NOT NULL)"
)
AUDIT_COLUMNS = {
    "sqlite": "SELECT name FROM pragma_table_info('dnd_audit') ORDER BY cid",
    "postgres": "SELECT column_name FROM information_schema.columns"
    " WHERE table_name = 'dnd_audit' ORDER BY ordinal_position",
}


@SHARED_DATABASES
def test_a_wide_audit_view_is_dropped_and_its_trail_rebuilt_from_the_log(
    db_url: str, clock: Clock
) -> None:
    ledger = DndLedger(db_url, pii_key=TEST_KEY, clock=clock)
    try:
        record_some(ledger, clock)
        expected, exported = trail(ledger), ledger.views.audit()
        head = ledger.projector.head()
    finally:
        ledger.close()
    # As the earlier code left it: a wide table with its rows, the earlier layout's name.
    with raw(db_url) as execute:
        execute("DROP TABLE dnd_audit", ())
        execute(WIDE_AUDIT, ())
        execute(
            f"INSERT INTO dnd_audit VALUES ({', '.join('?' * len(RECORD_FIELDS))})",
            (1, "x", 1, L, "ada", None, "2000-01-01T00:00:00.000000+00:00",
             "2000-01-01T00:00:00.000000+00:00", "Lies", None, None, "", "none", "{}", "{}",
             "{}", None, None, None, "{}"),
        )  # fmt: skip
        execute("UPDATE dnd_meta SET value = ? WHERE name = ?", ("one-row-per-contact", META_NAME))

    ledger = DndLedger(db_url, pii_key=TEST_KEY, clock=clock)
    try:
        dialect = ledger.sql.dialect
        assert [r[0] for r in ledger.sql.fetchall(AUDIT_COLUMNS[dialect])] == SLIM
        assert ledger.projector.positions()["audit"] == 0  # to be rebuilt from the log
        assert ledger.projector.head() == head
        assert not ledger.can_send(L, "ada", SMS).allowed  # catches up first
        assert trail(ledger) == expected
        assert ledger.views.audit() == exported
        meta = ledger.sql.fetchone("SELECT value FROM dnd_meta WHERE name = ?", (META_NAME,))
        assert meta == (LAYOUT,)
    finally:
        ledger.close()
    # A fresh rebuild of the upgraded ledger reads the same.
    again = DndLedger(db_url, pii_key=TEST_KEY, clock=clock)
    try:
        again.projector.rebuild(list(VIEWS))
        assert trail(again) == expected
    finally:
        again.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_on_sqlite_the_position_is_the_audit_tables_rowid(db_url: str, clock: Clock) -> None:
    ledger = DndLedger(db_url, pii_key=TEST_KEY, clock=clock)
    try:
        record_some(ledger, clock)
        rows = ledger.sql.fetchall("SELECT rowid, position FROM dnd_audit ORDER BY rowid")
        assert len(rows) == ledger.projector.head()
        assert all(rowid == position for rowid, position in rows)
        (ddl,) = ledger.sql.fetchone(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'dnd_audit'"
        ) or ("",)
        assert "position INTEGER PRIMARY KEY" in ddl
    finally:
        ledger.close()


def test_a_history_read_again_decodes_only_the_events_stored_since(
    ledger: DndLedger, clock: Clock
) -> None:
    record_some(ledger, clock)
    trail_ = ledger.views.trail
    decoded: list[int] = []
    decode = trail_.decode

    def counting(*stored: Any) -> Any:
        decoded.append(stored[1])
        return decode(*stored)

    trail_.decode = counting
    first = trail_.entries(L, "ada")
    assert len(decoded) == len(first) == 3  # the STOP, the SetDnd, the support opt-in
    clock.advance(minutes=1)
    ledger.execute(c.ClearDnd(L, "ada", (EMAIL,), "agent-7"))
    ledger.ensure_current()
    decoded.clear()
    again = trail_.entries(L, "ada")
    assert again[:3] == first
    assert [e.event for e in again[3:]] == ["DndClearedByUser"]
    assert len(decoded) == 1
    # The same entries a trail without a cache reads.
    assert AuditTrail.of(ledger).entries(L, "ada") == again
