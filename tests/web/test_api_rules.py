"""HTTP routes of the consent rules: the opt-out confirmation text and can-send by purpose."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from dnd_ledger import commands as cmd
from dnd_ledger.application import DndLedger
from dnd_ledger.domain.values import Channel
from tests.conftest import Clock
from tests.web.support import PHONE, READ, SUPPORT, WRITE, L, bearer

BASE = f"/v1/locations/{L}"
CONFIRM = {"channel": "sms", "to": PHONE, "message_sid": "SM-conf"}


@pytest.fixture
def stopped(web_ledger: DndLedger) -> DndLedger:
    web_ledger.execute(cmd.RegisterContact(L, "ada", phones=(PHONE,)))
    web_ledger.execute(cmd.ReceiveInbound(L, Channel.SMS, PHONE, "STOP", "SM1"))
    return web_ledger


def test_recording_a_confirmation_needs_the_write_role(
    client: TestClient, stopped: DndLedger
) -> None:
    url = f"{BASE}/confirmations"
    assert client.post(url, json=CONFIRM).status_code == 401
    for token in (READ, SUPPORT):
        r = client.post(url, json=CONFIRM, headers=bearer(token))
        assert r.status_code == 403, r.text
        assert "'write' role" in r.json()["detail"]
    r = client.post(url, json=CONFIRM, headers=bearer(WRITE))
    assert r.status_code == 200, r.text
    assert r.json() == {"result": "appended", "events": ["OptOutConfirmationSent"],
                        "contacts": ["ada"]}  # fmt: skip


def test_a_second_confirmation_is_409(client: TestClient, stopped: DndLedger) -> None:
    url = f"{BASE}/confirmations"
    assert client.post(url, json=CONFIRM, headers=bearer(WRITE)).status_code == 200
    again = client.post(url, json={**CONFIRM, "message_sid": "SM-2"}, headers=bearer(WRITE))
    assert again.status_code == 409
    assert "only one is allowed" in again.json()["detail"]


def test_can_send_takes_a_purpose(client: TestClient, stopped: DndLedger, clock: Clock) -> None:
    url = f"{BASE}/contacts/ada/can-send?channel=sms"
    clock.advance(minutes=4)
    plain = client.get(url, headers=bearer(READ)).json()
    confirm = client.get(f"{url}&purpose=opt-out-confirmation", headers=bearer(READ)).json()
    assert (plain["allowed"], confirm["allowed"]) == (False, True)
    assert confirm["rule"] == "confirmation.within-window"
    bad = client.get(f"{url}&purpose=spam", headers=bearer(READ))
    assert bad.status_code == 422
    item = {"location_id": L, "contact_id": "ada", "channel": "sms"}
    items = [item, {**item, "purpose": "opt-out-confirmation"}]
    r = client.post("/v1/can-send:batch", json={"items": items}, headers=bearer(READ))
    assert [x["decision"]["allowed"] for x in r.json()["results"]] == [False, True]
    clock.advance(minutes=2)
    late = client.get(f"{url}&purpose=opt-out-confirmation", headers=bearer(READ)).json()
    assert (late["allowed"], late["rule"]) == (False, "confirmation.window-passed")


@pytest.fixture
def flagged(web_ledger: DndLedger) -> DndLedger:
    web_ledger.execute(cmd.RegisterContact(L, "ada", phones=(PHONE,)))
    web_ledger.execute(cmd.ReceiveInbound(L, Channel.SMS, PHONE, "please stop texting me", "SM7"))
    return web_ledger


def test_reviews_are_listed_and_resolved_by_support(
    client: TestClient, flagged: DndLedger, clock: Clock
) -> None:
    listed = client.get(f"{BASE}/reviews", headers=bearer(READ))
    assert listed.status_code == 200
    [item] = listed.json()
    assert (item["item"], item["contacts"], item["overdue"]) == ("SM7", ["ada"], False)
    assert client.get(f"{BASE}/reviews?overdue=true", headers=bearer(READ)).json() == []
    url = f"{BASE}/reviews/SM7/resolution"
    body = {"as": "not-revocation", "actor": "rita", "note": "asked about a parcel"}
    assert client.post(url, json=body, headers=bearer(WRITE)).status_code == 403
    r = client.post(url, json=body, headers=bearer(SUPPORT))
    assert r.status_code == 200, r.text
    assert r.json()["events"] == ["RevocationDismissed"]
    assert flagged.can_send(L, "ada", Channel.SMS).allowed
    again = client.post(url, json={**body, "as": "revocation"}, headers=bearer(SUPPORT))
    assert again.status_code == 409
    unknown = client.post(f"{BASE}/reviews/SM8/resolution", json=body, headers=bearer(SUPPORT))
    assert unknown.status_code == 404
    assert client.get(f"{BASE}/reviews", headers=bearer(READ)).json() == []


def test_a_resolution_without_a_note_is_422(client: TestClient, flagged: DndLedger) -> None:
    body = {"as": "revocation", "actor": "rita"}
    r = client.post(f"{BASE}/reviews/SM7/resolution", json=body, headers=bearer(SUPPORT))
    assert r.status_code == 422


def test_can_send_and_batch_take_purpose_marketing_and_at(
    client: TestClient, web_ledger: DndLedger
) -> None:
    web_ledger.execute(cmd.RegisterContact(L, "fl", phones=("+13055550100",)))
    url = f"{BASE}/contacts/fl/can-send?channel=sms&purpose=marketing"
    late = client.get(f"{url}&at=2026-12-03T01:01:00Z", headers=bearer(READ)).json()
    assert (late["allowed"], late["rule"]) == (False, "quiet-hours.US-FL")
    early = client.get(f"{url}&at=2026-12-03T00:59:00Z", headers=bearer(READ)).json()
    assert early["allowed"] is True
    item = {"location_id": L, "contact_id": "fl", "channel": "sms", "purpose": "marketing"}
    items = [{**item, "at": "2026-12-03T01:01:00Z"}, {**item, "at": "2026-12-03T00:59:00Z"}]
    r = client.post("/v1/can-send:batch", json={"items": items}, headers=bearer(READ))
    assert [x["decision"]["allowed"] for x in r.json()["results"]] == [False, True]
