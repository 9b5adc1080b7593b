"""Contacts listing, finding, address removal, erasure and reveal, on every backend."""

from __future__ import annotations

import pytest

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.domain.errors import InvalidInput, UnknownContact
from dnd_ledger.domain.values import AddressKind, Channel, DndKind
from dnd_ledger.notary.verify import verify_ledger
from dnd_ledger.projections import contact_views as views
from dnd_ledger.services import contact_admin

L = "loc-1"
PHONE, PHONE2, EMAIL = "+14155550100", "+14155550111", "ada@example.com"
SMS = Channel.SMS


def register(
    ledger: DndLedger,
    contact: str,
    phones: tuple[str, ...] = (PHONE,),
    emails: tuple[str, ...] = (),
) -> None:
    ledger.execute(c.RegisterContact(L, contact, tuple(phones), tuple(emails)))


def stop(ledger: DndLedger, sid: str, phone: str = PHONE, body: str = "STOP") -> None:
    ledger.execute(c.ReceiveInbound(L, SMS, phone, body, sid))


def ref(ledger: DndLedger, phone: str = PHONE) -> str:
    return ledger.keyring.ref(AddressKind.PHONE, phone)


class TestContactViews:
    def test_listing_pages_through_every_contact_once_with_a_cursor(
        self, ledger: DndLedger
    ) -> None:
        ids = [f"c-{i:02d}" for i in range(7)]
        for cid in reversed(ids):
            register(ledger, cid, phones=())
        seen, cursor, pages = [], None, 0
        while True:
            page = views.list_contacts(ledger, L, limit=3, after=cursor)
            seen += [x["contact_id"] for x in page.contacts]
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == ids
        assert pages == 3

    def test_listing_filters_on_overall_dnd_and_on_a_channel_state(self, ledger: DndLedger) -> None:
        register(ledger, "ada")
        register(ledger, "bob", phones=(PHONE2,))
        stop(ledger, "SM1")
        assert [
            x["contact_id"] for x in views.list_contacts(ledger, L, dnd="partial").contacts
        ] == ["ada"]
        assert [x["contact_id"] for x in views.list_contacts(ledger, L, dnd="off").contacts] == [
            "bob"
        ]
        permanent = views.list_contacts(ledger, L, channel="sms", state="permanent")
        assert [x["contact_id"] for x in permanent.contacts] == ["ada"]
        assert permanent.contacts[0]["channels"]["sms"] == "permanent"
        with pytest.raises(InvalidInput):
            views.list_contacts(ledger, L, channel="sms")

    def test_show_names_addresses_by_reference_and_flags_open_reviews(
        self, ledger: DndLedger
    ) -> None:
        register(ledger, "ada", emails=(EMAIL,))
        stop(ledger, "SM1", body="please stop texting me")
        shown = views.show_contact(ledger, L, "ada")
        assert {a["ref"] for a in shown["addresses"]} == {
            ref(ledger),
            ledger.keyring.ref(AddressKind.EMAIL, EMAIL),
        }
        assert shown["channels"]["sms"]["status"] == "active"
        assert [r["channel"] for r in shown["open_reviews"]] == ["sms"]
        assert PHONE not in str(shown)
        assert EMAIL not in str(shown)
        with pytest.raises(UnknownContact):
            views.show_contact(ledger, L, "nobody")

    def test_find_lists_holders_or_the_provider_events_held_for_nobody_yet(
        self, ledger: DndLedger
    ) -> None:
        register(ledger, "ada")
        register(ledger, "bob")
        found = views.find_address(ledger, L, phone=PHONE)
        assert [x["contact_id"] for x in found["contacts"]] == ["ada", "bob"]
        stop(ledger, "SM9", phone=PHONE2)
        held = views.find_address(ledger, L, phone=PHONE2)
        assert held["contacts"] == []
        assert [e["event"] for e in held["provider_events"]] == ["OptOutKeyword"]


class TestRemoveAddress:
    def test_dnd_from_the_address_stays_but_later_signals_no_longer_reach_the_contact(
        self, ledger: DndLedger
    ) -> None:
        register(ledger, "ada", phones=(PHONE, PHONE2))
        stop(ledger, "SM1")
        out = ledger.execute(c.RemoveAddress(L, "ada", "alice", phones=(PHONE,), reason="moved"))
        assert out.events == ("AddressRemoved",)
        assert ledger.status(L, "ada").channels[SMS].status is DndKind.PERMANENT
        assert views.find_address(ledger, L, phone=PHONE)["contacts"] == []
        ledger.execute(c.ReceiveInbound(L, Channel.WHATSAPP, PHONE, "STOP", "SM2"))
        assert ledger.status(L, "ada").channels[Channel.WHATSAPP].status is DndKind.INACTIVE
        assert [a["ref"] for a in views.show_contact(ledger, L, "ada")["addresses"]] == [
            ref(ledger, PHONE2)
        ]

    def test_an_address_the_contact_lacks_is_refused_without_echoing_it(
        self, ledger: DndLedger
    ) -> None:
        register(ledger, "ada")
        before = ledger.projector.head()
        with pytest.raises(InvalidInput) as e:
            ledger.execute(c.RemoveAddress(L, "ada", "alice", phones=(PHONE2,)))
        assert PHONE2 not in str(e.value)
        assert ref(ledger, PHONE2) in str(e.value)
        assert ledger.projector.head() == before

    def test_a_repeated_request_id_appends_once(self, ledger: DndLedger) -> None:
        register(ledger, "ada")
        command = c.RemoveAddress(L, "ada", "alice", phones=(PHONE,), request_id="r-1")
        assert ledger.execute(command).result == "appended"
        assert ledger.execute(command).result == "duplicate"


class TestErasure:
    def test_erasure_deletes_own_values_keeps_shared_ones_and_stays_suppressed(
        self, ledger: DndLedger
    ) -> None:
        register(ledger, "ada", phones=(PHONE,), emails=(EMAIL,))
        register(ledger, "bob", phones=(PHONE,))
        stop(ledger, "SM1")
        email_ref = ledger.keyring.ref(AddressKind.EMAIL, EMAIL)
        result = contact_admin.erase(ledger, L, "ada", "support-1", "GDPR request T-9")
        assert email_ref in result.erased_refs
        assert contact_admin.reveal(ledger, email_ref) is None
        assert {k.ref for k in result.kept} >= {ref(ledger)}
        assert all(k.for_contacts == ("bob",) for k in result.kept)
        assert contact_admin.reveal(ledger, ref(ledger)) == PHONE  # bob still has it
        assert ledger.status(L, "ada").channels[SMS].status is DndKind.PERMANENT
        events = [h.event for h in ledger.history(L, "ada")]
        assert events[-1] == "PersonalDataErased"
        assert EMAIL not in str(ledger.history(L, "ada")[-1].detail)
        # The last sharer to be erased takes the shared number with them.
        contact_admin.erase(ledger, L, "bob", "support-1", "GDPR request T-10")
        assert contact_admin.reveal(ledger, ref(ledger)) is None
        assert ledger.status(L, "bob").channels[SMS].status is DndKind.PERMANENT

    def test_verify_still_passes_after_erasure(self, ledger: DndLedger) -> None:
        register(ledger, "ada")
        stop(ledger, "SM1")
        contact_admin.erase(ledger, L, "ada", "support-1", "GDPR")
        ledger.notary.catch_up()
        ledger.notary.checkpoint()
        report = verify_ledger(ledger, None)
        assert report.problem_count == 0, report.problems
        assert report.events == ledger.projector.head()

    def test_erasing_an_unknown_contact_records_nothing(self, ledger: DndLedger) -> None:
        before = ledger.projector.head()
        with pytest.raises(UnknownContact):
            contact_admin.erase(ledger, L, "nobody", "support-1", "GDPR")
        assert ledger.projector.head() == before

    def test_reveal_refuses_what_is_not_a_reference(self, ledger: DndLedger) -> None:
        with pytest.raises(InvalidInput):
            contact_admin.reveal(ledger, "+14155550100")


class TestViewsRebuild:
    def test_a_rebuild_gives_the_same_address_index_after_removals(self, ledger: DndLedger) -> None:
        register(ledger, "ada", phones=(PHONE, PHONE2))
        register(ledger, "bob", phones=(PHONE,))
        stop(ledger, "SM1")
        ledger.execute(c.RemoveAddress(L, "ada", "alice", phones=(PHONE,)))
        register(ledger, "ada", phones=(PHONE,))  # and back again
        ledger.execute(c.RemoveAddress(L, "bob", "alice", phones=(PHONE,)))
        contact_admin.erase(ledger, L, "bob", "support-1", "GDPR")
        query = "SELECT location_id, ref, contact_id FROM dnd_address_index ORDER BY 1, 2, 3"
        before = ledger.sql.fetchall(query)
        status = ledger.sql.fetchall(
            "SELECT contact_id, overall FROM dnd_status_contacts ORDER BY 1"
        )
        ledger.projector.rebuild(["status", "addresses", "audit", "stats"])
        assert ledger.sql.fetchall(query) == before
        assert (
            ledger.sql.fetchall("SELECT contact_id, overall FROM dnd_status_contacts ORDER BY 1")
            == status
        )
        assert [(r[2]) for r in before] == ["ada", "ada"]
