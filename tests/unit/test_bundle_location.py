"""Complete location exports: the signed location index proves a bundle lists every contact."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.conftest import Clock

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.domain.values import Channel
from dnd_ledger.notary import offline
from dnd_ledger.notary.bundle import export_bundle
from dnd_ledger.notary.locations import location_tag, parse_locations
from dnd_ledger.notary.offline import BundleError, encode_bundle, verify_bundle
from dnd_ledger.notary.signed_note import SigningKey, format_vkey, parse_vkey
from dnd_ledger.notary.verify import verify_ledger

KEY = SigningKey("ledger.example/dnd", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
PUBLIC = parse_vkey(format_vkey(KEY.name, KEY.private_key.public_key()))


def populate(app: DndLedger, clock: Clock) -> None:
    """Three contacts in loc-1 (one with two addresses), two in loc-2, checkpoints between."""
    people = [("loc-1", "ada"), ("loc-2", "xia"), ("loc-1", "bob"), ("loc-2", "yan"),
              ("loc-1", "cy")]  # fmt: skip
    for n, (loc, cid) in enumerate(people):
        phone = f"+1415555020{n}"
        emails = (f"{cid}@example.com",) if cid == "bob" else ()
        app.execute(c.RegisterContact(loc, cid, (phone,), emails))
        app.execute(c.ReceiveInbound(loc, Channel.SMS, phone, "STOP", f"SM{n}"))
        app.notary.catch_up()
        clock.advance(minutes=5)


@pytest.fixture
def app(clock: Clock) -> Any:
    ledger = DndLedger("memory:", pii_key=b"k" * 16, clock=clock, signing_key=KEY,
                       checkpoint_every=3)  # fmt: skip
    populate(ledger, clock)
    yield ledger
    ledger.close()


def edit(data: bytes, change: Any) -> bytes:
    doc = json.loads(data)
    change(doc)
    return encode_bundle(doc)


def reason(data: bytes) -> str:
    with pytest.raises(BundleError) as e:
        verify_bundle(data, PUBLIC)
    return str(e.value)


def test_a_location_bundle_proves_it_holds_every_contact_of_the_location(app: DndLedger) -> None:
    bundle = export_bundle(app, "loc-1")
    result = verify_bundle(bundle, PUBLIC)
    assert [x.contact_id for x in result.contacts] == ["ada", "bob", "cy"]
    assert result.location == "loc-1"
    assert result.location_contacts == 3
    assert result.location_addresses == 4  # three phones and bob's email
    report = offline.report(result, None, None)
    assert not any("every contact" in x for x in report["not_proven"])
    text = offline.report_text(report)
    assert "location loc-1: complete; the signed location index lists 3 contacts" in text
    # The index covers every aggregate of every location, as tags, not ids.
    doc = json.loads(bundle)
    assert len(doc["locations"]) == 5 + 6
    assert b"loc-2" not in bundle
    assert {t for _, t in doc["locations"]} == {location_tag("loc-1"), location_tag("loc-2")}


def test_removing_one_contact_from_a_location_bundle_fails(app: DndLedger) -> None:
    bundle = export_bundle(app, "loc-1")

    def drop_bob(doc: dict[str, Any]) -> None:
        doc["contacts"] = [x for x in doc["contacts"] if x["contact_id"] != "bob"]

    why = reason(edit(bundle, drop_bob))
    assert why.startswith("location 'loc-1' has 3 contacts in the signed location index, the "
                          "bundle carries 2: 1 left out, the first registered at leaf ")  # fmt: skip


def test_retagging_a_contact_to_hide_it_breaks_the_signed_index(app: DndLedger) -> None:
    bundle = export_bundle(app, "loc-1")
    bob_tag = location_tag("loc-1")

    def hide_bob(doc: dict[str, Any]) -> None:
        doc["contacts"] = [x for x in doc["contacts"] if x["contact_id"] != "bob"]
        # Re-tag one loc-1 contact entry as loc-2, so the index no longer lists it.
        for entry in doc["locations"]:
            if entry[1] == bob_tag:
                entry[1] = location_tag("loc-2")
                break

    assert reason(edit(bundle, hide_bob)) == (
        "location 'loc-1': the location index is not the one the checkpoint signs"
    )

    def drop_entry(doc: dict[str, Any]) -> None:
        doc["locations"] = doc["locations"][:-1]

    assert "location index entries, the leaves 11 aggregates" in reason(edit(bundle, drop_entry))


def test_a_location_bundle_cannot_claim_another_location(app: DndLedger) -> None:
    bundle = export_bundle(app, "loc-1")

    def claim(doc: dict[str, Any]) -> None:
        doc["location"] = "loc-2"

    assert reason(edit(bundle, claim)) == (
        "contact loc-1/ada is not a contact of location 'loc-2' in the signed location index"
    )

    def unclaim(doc: dict[str, Any]) -> None:
        doc["location"] = None

    assert reason(edit(bundle, unclaim)) == "bundle has a location index but names no location"


def test_a_contact_bundle_claims_no_completeness(app: DndLedger) -> None:
    result = verify_bundle(export_bundle(app, "loc-1", "bob"), PUBLIC)
    assert result.location is None
    report = offline.report(result, None, None)
    assert report["not_proven"][0].startswith("that the bundle lists every contact of a location")


def test_verify_names_a_checkpoint_that_signs_a_misstated_location_index(
    app: DndLedger, clock: Clock
) -> None:
    assert verify_ledger(app, PUBLIC).status == "ok"
    # A notary whose index went wrong (here: its compact range edited) signs a wrong index.
    size = int(app.sql.fetchall("SELECT size FROM dnd_notary_location_tree")[0][0])
    wrong = json.dumps(["00" * 32] * size.bit_count())
    app.sql.execute("UPDATE dnd_notary_location_tree SET hashes = ?", (wrong,))
    app.execute(c.RegisterContact("loc-1", "dee", ("+14155550299",)))
    clock.advance(minutes=5)
    record = app.notary.checkpoint()
    assert record is not None
    assert parse_locations(record.body) is not None
    report = verify_ledger(app, PUBLIC)
    assert [p.kind for p in report.problems] == ["locations"]
    assert report.problems[0].message.startswith(f"checkpoint at size {record.size} (made ")
    assert "an aggregate's location was misstated" in report.problems[0].message
    with pytest.raises(Exception, match="location index does not give the one its checkpoint"):
        export_bundle(app, "loc-1")


def test_a_ledger_notarised_before_the_index_exports_without_claiming_completeness(
    clock: Clock,
) -> None:
    ledger = DndLedger("memory:", pii_key=b"k" * 16, clock=clock, signing_key=KEY)
    try:
        populate(ledger, clock)
        ledger.notary.catch_up()
        ledger.sql.execute("UPDATE dnd_notary_location_tree SET first_leaf = 4")  # as upgraded
        ledger.execute(c.RegisterContact("loc-1", "dee", ("+14155550299",)))
        record = ledger.notary.checkpoint()
        assert record is not None
        assert parse_locations(record.body) is None
        result = verify_bundle(export_bundle(ledger, "loc-1"), PUBLIC)
        assert result.location is None
        assert [x.contact_id for x in result.contacts] == ["ada", "bob", "cy", "dee"]
        assert verify_ledger(ledger, PUBLIC).status == "ok"
    finally:
        ledger.close()
