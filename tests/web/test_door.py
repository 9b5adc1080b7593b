"""What every request meets at the door (issue 13): body caps, strict input, honest statuses.

Items 1 (bodies bounded before anything else), 3/4 (control characters and NUL
never reach the database, on PostgreSQL too), 5 (every status code is in the
OpenAPI document), 7 (query times), 11 (no personal data in replies) and 12
(``Cache-Control: no-store``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.settings import Settings, load_config
from dnd_ledger.web.app import create_app
from tests.conftest import Clock
from tests.web.support import (
    EMAIL,
    LOC2_READ,
    PHONE,
    READ,
    WRITE,
    L,
    bearer,
    inbound_form,
    inbound_path,
    mailgun_body,
    mailgun_event,
    mailgun_path,
    twilio_request,
    write_config,
)

JSON = {"Content-Type": "application/json"}
CONTACTS = f"/v1/locations/{L}/contacts"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def door_ledger(
    request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
) -> Iterator[DndLedger]:
    url = str(tmp_path / "l.db") if request.param == "sqlite" else request.getfixturevalue("pg_url")
    ledger = DndLedger(url, pii_key=b"web-test-key-0123456789", clock=clock)
    ledger.execute(c.RegisterContact(L, "ada", phones=(PHONE,), emails=(EMAIL,)))
    try:
        yield ledger
    finally:
        ledger.close()


@pytest.fixture
def door(door_ledger: DndLedger, web_config: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(door_ledger, web_config), raise_server_exceptions=False) as client:
        yield client


def head(ledger: DndLedger) -> int:
    return ledger.projector.head()


# -- item 1: bodies are bounded -------------------------------------------------------------


def test_a_body_without_a_token_is_refused_from_its_headers(door: TestClient) -> None:
    r = door.post(CONTACTS, content=b"x" * (3 * 1024 * 1024), headers=JSON)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    # Before: an unparsable body without a token was answered from the body (422).
    assert door.post(CONTACTS, content=b"{nope", headers=JSON).status_code == 401


def test_api_bodies_over_the_cap_are_413(door: TestClient, door_ledger: DndLedger) -> None:
    before = head(door_ledger)
    big = json.dumps({"contact_id": "bob", "actor": "a" * (1024 * 1024)}).encode()
    r = door.post(CONTACTS, content=big, headers={**JSON, **bearer(WRITE)})
    assert r.status_code == 413
    assert r.json() == {"detail": "the body is over the 1048576-byte limit"}

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams
        yield b'{"contact_id": "bob", "actor": "'
        for _ in range(300):
            yield b"a" * 4096
        yield b'"}'

    r = door.post(CONTACTS, content=chunks(), headers={**JSON, **bearer(WRITE)})
    assert r.status_code == 413
    assert head(door_ledger) == before


def test_the_body_cap_comes_from_the_config(tmp_path: Path, door_ledger: DndLedger) -> None:
    config = load_config(write_config(tmp_path, max_body_bytes="2048"))
    with TestClient(create_app(door_ledger, config)) as client:
        body = json.dumps({"contact_id": "bob", "actor": "a" * 3000}).encode()
        r = client.post(CONTACTS, content=body, headers={**JSON, **bearer(WRITE)})
        assert r.status_code == 413
        small = client.post(CONTACTS, json={"contact_id": "bob"}, headers=bearer(WRITE))
        assert small.status_code == 200


def test_a_webhook_body_over_64_kb_is_413(door: TestClient) -> None:
    body, headers = twilio_request(inbound_path(), inbound_form("x" * 70_000))
    assert door.post(inbound_path(), content=body, headers=headers).status_code == 413


def test_an_oversized_batch_is_counted_before_its_items_are_validated(door: TestClient) -> None:
    item = {"location_id": L, "contact_id": "ada", "channel": "sms"}
    items = [item] * 1000 + [{"location_id": L, "contact_id": "ada", "channel": "bogus"}]
    r = door.post("/v1/can-send:batch", json={"items": items}, headers=bearer(READ))
    assert r.status_code == 422
    assert r.json()["detail"] == "items: 1001 checks, over the limit of 1000"


# -- items 3/4: control characters and NUL -------------------------------------------------


def test_a_stop_with_nul_over_twilio_is_recorded(door: TestClient, door_ledger: DndLedger) -> None:
    body, headers = twilio_request(inbound_path(), inbound_form("STOP\x00", sid="SMnul1"))
    r = door.post(inbound_path(), content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["x-ledger-result"] == "appended"
    assert door_ledger.can_send(L, "ada", c.Channel.SMS).allowed is False


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "set", "channels": ["sms"], "actor": "al\x00ice"}, "actor"),
        ({"action": "set", "channels": ["sms"], "actor": "alice", "reason": "r\x1b[2J"}, "reason"),
        ({"action": "set", "channels": ["sms"], "actor": "a", "request_id": "r\x00"}, "request_id"),
        ({"action": "set", "channels": ["sms"], "actor": "a", "reason": "\u202eevil"}, "reason"),
    ],
)
def test_control_characters_in_json_fields_are_422(
    door: TestClient, door_ledger: DndLedger, body: dict[str, object], field: str
) -> None:
    before = head(door_ledger)
    r = door.post(f"{CONTACTS}/ada/dnd", json=body, headers=bearer(WRITE))
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(f"{field} contains a")
    assert head(door_ledger) == before


def test_control_characters_in_urls_are_422(door: TestClient) -> None:
    for url in (
        f"{CONTACTS}/a%00b/can-send?channel=sms",
        f"{CONTACTS}/ada%1b/dnd",
        f"/v1/locations/{L}/audit?contact_id=a%00",
        "/v1/locations/l%00/webhooks/mailgun",
    ):
        r = door.get(url, headers=bearer(READ)) if "webhooks" not in url else door.post(url)
        assert r.status_code == 422, (url, r.text)
        assert "control character" in r.json()["detail"]


def test_one_nul_item_does_not_fail_a_batch(door: TestClient) -> None:
    items = [
        {"location_id": L, "contact_id": "a\x00", "channel": "sms"},
        {"location_id": L, "contact_id": "ada", "channel": "sms"},
    ]
    r = door.post("/v1/can-send:batch", json={"items": items}, headers=bearer(READ))
    assert r.status_code == 200, r.text
    first, second = r.json()["results"]
    assert first["error"]["status"] == 422
    assert second["decision"]["allowed"] is True


def test_nul_in_a_mailgun_token_or_event_id_is_refused(
    door: TestClient, door_ledger: DndLedger, clock: Clock
) -> None:
    now = int(clock.now.timestamp())
    before = head(door_ledger)
    bad_token = mailgun_body(mailgun_event(at=now), timestamp=now, token="tok\x00en" + "a" * 40)
    assert door.post(mailgun_path(), content=bad_token, headers=JSON).status_code == 403
    bad_id = mailgun_body(mailgun_event(at=now, event_id="ev\x00"), timestamp=now)
    assert door.post(mailgun_path(), content=bad_id, headers=JSON).status_code == 406
    assert head(door_ledger) == before


# -- item 5: statuses the OpenAPI document promises ---------------------------------------


def test_an_unparsable_json_body_is_422(door: TestClient) -> None:
    for raw in (b"{bad", b"\xff\xfe"):
        r = door.post(CONTACTS, content=raw, headers={**JSON, **bearer(WRITE)})
        assert r.status_code == 422, r.text


def test_a_405_names_every_method_of_the_path(door: TestClient) -> None:
    r = door.put(f"{CONTACTS}/ada/dnd", headers=bearer(READ))
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, POST"


def test_provider_payload_problems_say_what_is_wrong(door: TestClient) -> None:
    fields = [*inbound_form("STOP").items(), *((f"x{i}", "1") for i in range(1001))]
    body, headers = twilio_request(inbound_path(), fields)
    r = door.post(inbound_path(), content=body, headers=headers)
    assert r.status_code == 400
    assert "more than 1000 form fields" in r.json()["detail"]
    deep = b"[" * 5000 + b"]" * 5000
    r = door.post(mailgun_path(), content=deep, headers=JSON)
    assert r.status_code == 400
    assert "too deep" in r.json()["detail"]


def test_every_route_documents_its_statuses(door: TestClient) -> None:
    paths = door.get("/openapi.json").json()["paths"]
    posts = {
        CONTACTS.replace(L, "{location_id}"): {"401", "403", "413", "422", "503"},
        "/v1/can-send:batch": {"401", "403", "413", "422"},
        "/v1/locations/{location_id}/webhooks/twilio/inbound": {"400", "403", "404", "413", "422"},
        "/v1/locations/{location_id}/webhooks/twilio/status": {"400", "403", "404", "413", "422"},
        "/v1/locations/{location_id}/webhooks/mailgun": {"400", "403", "404", "406", "413", "422"},
    }
    for path, codes in posts.items():
        assert codes <= set(paths[path]["post"]["responses"]), path


def test_every_bearer_route_documents_401_and_403(door: TestClient) -> None:
    """A route that takes a token can refuse it: 401 (none, unknown) and 403 (role or
    location), so its OpenAPI entry lists both, as schemathesis checks without a token."""
    paths = door.get("/openapi.json").json()["paths"]
    undocumented = [
        (method.upper(), path, sorted({"401", "403", "422"} - set(op["responses"])))
        for path, ops in paths.items()
        for method, op in ops.items()
        if op.get("security") and not {"401", "403", "422"} <= set(op["responses"])
    ]
    assert undocumented == []
    changes = f"/v1/locations/{L}/changes"
    assert door.get(changes).status_code == 401
    assert door.get(changes, headers=bearer(LOC2_READ)).status_code == 403


# -- item 7: query times -------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["0001-01-01T00:00:00%2B01:00", "9999-12-31T23:59:59-14:00", "12345", "2026-11-02T09:00:00",
     "tomorrow", "2026-13-01T00:00:00Z"],
)  # fmt: skip
def test_out_of_range_bare_or_naive_query_times_are_422(door: TestClient, value: str) -> None:
    for url in (
        f"/v1/locations/{L}/audit?since={value}",
        f"/v1/locations/{L}/audit?until={value}",
        f"{CONTACTS}/ada/dnd?as_of={value}",
        f"{CONTACTS}/ada/can-send?channel=sms&known_at={value}",
    ):
        r = door.get(url, headers=bearer(READ))
        assert r.status_code == 422, (url, r.text)
        assert value not in r.text


def test_good_query_times_still_work(door: TestClient) -> None:
    r = door.get(f"{CONTACTS}/ada/dnd?as_of=2026-11-02T10:00:00%2B01:00", headers=bearer(READ))
    assert r.status_code == 200
    assert r.json()["as_of"].startswith("2026-11-02T09:00:00")


# -- item 11 and 12 ------------------------------------------------------------------------


def test_refusals_do_not_echo_personal_data(door: TestClient) -> None:
    r = door.post(CONTACTS, json={"contact_id": "bob", "phones": ["+1415555XYZ"]},
                  headers=bearer(WRITE))  # fmt: skip
    assert r.status_code == 422
    assert "1415555" not in r.text
    assert r.json()["detail"].startswith("phone number is not")


def test_authenticated_json_and_exports_are_not_cached(door: TestClient) -> None:
    for url in (
        f"{CONTACTS}/ada/dnd",
        f"{CONTACTS}/ada/can-send?channel=sms",
        f"/v1/locations/{L}/audit?format=csv",
        f"/v1/locations/{L}/audit?format=json",
        f"{CONTACTS}/nobody/dnd",
    ):
        r = door.get(url, headers=bearer(READ))
        assert r.headers["cache-control"] == "no-store", url
    r = door.post(CONTACTS, json={"contact_id": "bob"}, headers=bearer(WRITE))
    assert r.headers["cache-control"] == "no-store"
