"""A request that could be read two ways gets no decision: it is refused (422).

Found by trying the service as a client would: with a STOP on sms, a repeated
``channel`` or ``direction`` once answered for the last value ("allowed" for email, or
for inbound), and a misspelt ``purpose`` was dropped, skipping its rules.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

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

ASK = f"/v1/locations/{L}/contacts/ada/can-send"


@pytest.fixture
def stopped(client: TestClient) -> TestClient:
    r = client.post(f"/v1/locations/{L}/contacts", json={"contact_id": "ada", "phones": [PHONE]},
                    headers=bearer(WRITE))  # fmt: skip
    assert r.status_code == 200
    body, headers = twilio_request(inbound_path(), inbound_form("STOP"))
    assert client.post(inbound_path(), content=body, headers=headers).status_code == 200
    assert client.get(f"{ASK}?channel=sms", headers=bearer(READ)).json()["allowed"] is False
    return client


@pytest.mark.parametrize(
    "query",
    [
        "channel=sms&channel=email",
        "channel=email&channel=sms",
        "channel=sms&direction=outbound&direction=inbound",
        "channel=sms&mode=manual&mode=automated",
        "channel=sms&purpose=opt-out-confirmation&purpose=marketing",
    ],
)
def test_a_repeated_query_parameter_is_refused(stopped: TestClient, query: str) -> None:
    r = stopped.get(f"{ASK}?{query}", headers=bearer(READ))
    assert r.status_code == 422, r.text
    assert "more than once" in r.json()["detail"]
    assert "allowed" not in r.json()


@pytest.mark.parametrize("query", ["channel=sms&foo=1", "channel=sms&purpse=marketing"])
def test_an_unknown_query_parameter_is_refused(stopped: TestClient, query: str) -> None:
    r = stopped.get(f"{ASK}?{query}", headers=bearer(READ))
    assert r.status_code == 422, r.text
    assert "is not a parameter of can-send" in r.json()["detail"]


def test_a_repeated_key_in_a_batch_item_is_refused(stopped: TestClient) -> None:
    item = f'{{"location_id": "{L}", "contact_id": "ada", "channel": "sms", "channel": "email"}}'
    body = f'{{"items": [{item}]}}'
    r = stopped.post("/v1/can-send:batch", content=body,
                     headers={**bearer(READ), "Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 422, r.text
    assert "appears twice" in r.json()["detail"]
    assert "results" not in r.json()


def test_a_path_that_is_not_utf8_is_refused(stopped: TestClient) -> None:
    r = stopped.get(f"/v1/locations/{L}/contacts/ad%FFa/can-send?channel=sms", headers=bearer(READ))
    assert r.status_code == 422, r.text
    assert "UTF-8" in r.json()["detail"]
