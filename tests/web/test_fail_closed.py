"""HTTP: no decision from views that may be stale (503), readiness, and times at the door."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from tests.conftest import poison_opt_outs
from tests.web.support import (
    PHONE,
    READ,
    WRITE,
    L,
    bearer,
    inbound_form,
    inbound_path,
    twilio_request,
)

CAN_SEND = f"/v1/locations/{L}/contacts/ada/can-send"
DND = f"/v1/locations/{L}/contacts/ada/dnd"


@pytest.fixture
def stuck(client: TestClient, web_ledger: DndLedger, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ada's STOP is stored (a signed webhook, 200) but the views cannot apply it."""
    web_ledger.execute(c.RegisterContact(L, "ada", (PHONE,)))
    web_ledger.execute(c.RegisterContact(L, "bob", ("+14155550101",)))
    poison_opt_outs(monkeypatch)
    body, headers = twilio_request(inbound_path(), inbound_form("STOP", sid="SM0001"))
    assert client.post(inbound_path(), content=body, headers=headers).status_code == 200


@pytest.mark.usefixtures("stuck")
class TestWhenTheViewsAreStuck:
    def test_can_send_and_status_answer_503_naming_the_cause_and_the_lag(
        self, client: TestClient
    ) -> None:
        for url in (CAN_SEND + "?channel=sms", DND, f"/v1/locations/{L}/contacts/bob/dnd"):
            r = client.get(url, headers=bearer(READ))
            assert r.status_code == 503, url
            assert "allowed" not in r.json()
            assert "could not be applied" in r.json()["detail"]
            assert r.json()["lag"] > 0
            assert r.headers["retry-after"] == "1"

    def test_every_batch_item_carries_an_error_instead_of_a_decision(
        self, client: TestClient
    ) -> None:
        items = [{"location_id": L, "contact_id": who, "channel": "sms"} for who in ("ada", "bob")]
        r = client.post("/v1/can-send:batch", json={"items": items}, headers=bearer(READ))
        assert r.status_code == 200
        for result in r.json()["results"]:
            assert "decision" not in result
            assert result["error"]["status"] == 503

    def test_readyz_says_not_ready_with_the_lag_and_the_stuck_event(
        self, client: TestClient
    ) -> None:
        r = client.get("/readyz")
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "unavailable"
        assert body["lag"] > 0
        assert "OverflowError" in body["error"]
        assert body["stuck_at"]["error"] == "OverflowError: date value out of range"
        assert client.get("/healthz").status_code == 200  # alive, just not ready

    def test_the_audit_page_says_the_ledger_is_unavailable(self, client: TestClient) -> None:
        r = client.get(f"/v1/locations/{L}/contacts/ada/audit.html", headers=bearer(READ))
        assert r.status_code == 503
        assert "The ledger is unavailable" in r.text
        assert client.get(f"/v1/locations/{L}/audit", headers=bearer(READ)).status_code == 503


def test_readyz_is_ready_when_the_views_are_at_the_head(
    client: TestClient, web_ledger: DndLedger
) -> None:
    web_ledger.execute(c.RegisterContact(L, "ada", (PHONE,)))
    r = client.get("/readyz")
    assert (r.status_code, r.json()) == (200, {"status": "ready", "lag": 0, "error": None})


class TestTimesAtTheHttpDoor:
    @pytest.fixture(autouse=True)
    def _ada(self, web_ledger: DndLedger) -> None:
        web_ledger.execute(c.RegisterContact(L, "ada", (PHONE,)))

    @pytest.mark.parametrize(
        "query",
        [
            "known_at=4",
            "as_of=0.5",
            "as_of=1700000000",
            "known_at=0001-01-01T00:00:00%2B01:00",
            "as_of=9999-12-31T23:59:59-14:00",
            "as_of=2026-11-02T10:00:00",  # no zone
        ],
    )
    def test_a_query_time_that_is_not_an_aware_in_range_iso_time_is_422(
        self, client: TestClient, query: str
    ) -> None:
        for url in (f"{CAN_SEND}?channel=sms&{query}", f"{DND}?{query}"):
            r = client.get(url, headers=bearer(READ))
            assert r.status_code == 422, (url, r.text)

    @pytest.mark.parametrize(
        "query", ["since=0001-01-01T00:00:00%2B01:00", "until=9999-12-31T23:59:59-14:00", "until=0"]
    )
    def test_audit_bounds_out_of_range_are_422(self, client: TestClient, query: str) -> None:
        r = client.get(f"/v1/locations/{L}/audit?{query}", headers=bearer(READ))
        assert r.status_code == 422, r.text

    @pytest.mark.parametrize(
        "occurred_at", [0, 1700000000, "0001-01-01T00:00:00+01:00", "1969-07-20T20:17:00Z"]
    )
    def test_a_write_with_an_unusable_occurred_at_is_422_and_appends_nothing(
        self, client: TestClient, web_ledger: DndLedger, occurred_at: object
    ) -> None:
        head = web_ledger.projector.head()
        r = client.post(
            f"/v1/locations/{L}/contacts",
            json={"contact_id": "eve", "phones": [PHONE], "occurred_at": occurred_at},
            headers=bearer(WRITE),
        )
        assert r.status_code == 422, r.text
        r = client.post(
            DND,
            json={"action": "set", "channels": ["sms"], "actor": "a", "occurred_at": occurred_at},
            headers=bearer(WRITE),
        )
        assert r.status_code == 422, r.text
        assert web_ledger.projector.head() == head
