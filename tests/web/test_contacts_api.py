"""The contacts routes: roles, paging, addresses in bodies, erasure and reveal."""

from __future__ import annotations

from fastapi.testclient import TestClient

from dnd_ledger.application import DndLedger
from dnd_ledger.domain.values import AddressKind
from tests.web.support import EMAIL, L2, LOC2_READ, PHONE, READ, SENDER, SUPPORT, WRITE, L, bearer

BASE = f"/v1/locations/{L}"


def register(client: TestClient, contact_id: str, phones: list[str], emails: list[str]) -> None:
    r = client.post(
        f"{BASE}/contacts",
        json={"contact_id": contact_id, "phones": phones, "emails": emails},
        headers=bearer(WRITE),
    )
    assert r.status_code == 200, r.text


def test_list_pages_with_the_cursor_and_needs_the_read_role(client: TestClient) -> None:
    for cid in ("c-1", "c-2", "c-3"):
        register(client, cid, [], [])
    assert client.get(f"{BASE}/contacts", headers=bearer(WRITE)).status_code == 403
    assert client.get(f"{BASE}/contacts", headers=bearer(LOC2_READ)).status_code == 403
    first = client.get(f"{BASE}/contacts", params={"limit": 2}, headers=bearer(READ)).json()
    assert [c["contact_id"] for c in first["contacts"]] == ["c-1", "c-2"]
    rest = client.get(
        f"{BASE}/contacts", params={"limit": 2, "after": first["next_cursor"]}, headers=bearer(READ)
    ).json()
    assert [c["contact_id"] for c in rest["contacts"]] == ["c-3"]
    assert rest["next_cursor"] is None
    bad = client.get(f"{BASE}/contacts", params={"dnd": "maybe"}, headers=bearer(READ))
    assert bad.status_code == 422


def test_show_and_find_name_addresses_by_reference_only(
    client: TestClient, web_ledger: DndLedger
) -> None:
    register(client, "ada", [PHONE], [EMAIL])
    shown = client.get(f"{BASE}/contacts/ada", headers=bearer(READ))
    assert shown.status_code == 200
    assert PHONE not in shown.text
    assert EMAIL not in shown.text
    found = client.post(f"{BASE}/contacts:find", json={"phone": PHONE}, headers=bearer(READ))
    assert [c["contact_id"] for c in found.json()["contacts"]] == ["ada"]
    assert found.json()["ref"] == web_ledger.keyring.ref(AddressKind.PHONE, PHONE)
    assert client.get(f"{BASE}/contacts/nobody", headers=bearer(READ)).status_code == 404
    both = client.post(
        f"{BASE}/contacts:find", json={"phone": PHONE, "email": EMAIL}, headers=bearer(READ)
    )
    assert both.status_code == 422


def test_remove_address_needs_write_and_keeps_the_dnd(client: TestClient) -> None:
    register(client, "ada", [PHONE], [])
    body = {"phones": [PHONE], "actor": "alice", "reason": "number changed"}
    path = f"{BASE}/contacts/ada/address-removals"
    assert client.post(path, json=body, headers=bearer(READ)).status_code == 403
    r = client.post(path, json=body, headers=bearer(SENDER))
    assert r.status_code == 200, r.text
    assert r.json()["events"] == ["AddressRemoved"]
    again = client.post(path, json=body, headers=bearer(SENDER))
    assert again.status_code == 422
    assert PHONE not in again.text


def test_erasure_and_reveal_are_for_support_tokens_only(
    client: TestClient, web_ledger: DndLedger
) -> None:
    register(client, "ada", [PHONE], [EMAIL])
    ref = web_ledger.keyring.ref(AddressKind.EMAIL, EMAIL)
    assert client.get(f"{BASE}/pii/{ref}", headers=bearer(READ)).status_code == 403
    assert client.get(f"{BASE}/pii/{ref}", headers=bearer(SENDER)).status_code == 403
    revealed = client.get(f"{BASE}/pii/{ref}", headers=bearer(SUPPORT))
    assert revealed.json() == {"ref": ref, "value": EMAIL}
    other = client.get(f"/v1/locations/{L2}/pii/{ref}", headers=bearer(SUPPORT))
    assert other.status_code == 404  # not this location's value
    body = {"actor": "dpo", "reason": "erasure request T-77"}
    path = f"{BASE}/contacts/ada/erasure"
    assert client.post(path, json=body, headers=bearer(WRITE)).status_code == 403
    erased = client.post(path, json=body, headers=bearer(SUPPORT))
    assert erased.status_code == 200, erased.text
    assert ref in erased.json()["erased_refs"]
    assert client.get(f"{BASE}/pii/{ref}", headers=bearer(SUPPORT)).status_code == 404
    status = client.get(f"{BASE}/contacts/ada/dnd", headers=bearer(READ))
    assert status.status_code == 200
