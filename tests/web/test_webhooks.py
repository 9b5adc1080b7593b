"""Provider webhooks over HTTP: signatures, duplicates, replays and unusable payloads."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.domain.errors import Conflict
from dnd_ledger.settings import Settings
from dnd_ledger.web.app import create_app
from tests.conftest import Clock
from tests.web.support import (
    EMAIL,
    L2,
    PHONE,
    TWILIO_TOKEN_2,
    L,
    inbound_form,
    inbound_path,
    mailgun_body,
    mailgun_event,
    mailgun_path,
    status_form,
    status_path,
    twilio_request,
)

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def ada(web_ledger: DndLedger) -> str:
    web_ledger.execute(c.RegisterContact(L, "ada", phones=(PHONE,), emails=(EMAIL,)))
    return "ada"


def head(ledger: DndLedger) -> int:
    return ledger.projector.head()


def channel(ledger: DndLedger, name: str, contact: str = "ada") -> str:
    return ledger.status(L, contact).to_json()["channels"][name]["status"]


def events(ledger: DndLedger, name: str, contact: str = "ada") -> int:
    return sum(1 for h in ledger.history(L, contact) if h.event == name)


# -- Twilio inbound ------------------------------------------------------------------------


def test_signed_stop_is_recorded_and_answered_with_empty_twiml(
    client: TestClient, web_ledger: DndLedger, ada: str
) -> None:
    body, headers = twilio_request(inbound_path(), inbound_form("STOP"))
    r = client.post(inbound_path(), content=body, headers=headers)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/xml")
    assert r.text == "<Response/>"
    assert r.headers["x-ledger-result"] == "appended"
    assert channel(web_ledger, "sms") == "permanent"


def test_the_same_signed_inbound_sent_twice_appends_once(
    client: TestClient, web_ledger: DndLedger, ada: str
) -> None:
    body, headers = twilio_request(inbound_path(), inbound_form("STOP", sid="SM0002"))
    first = client.post(inbound_path(), content=body, headers=headers)
    after_first = head(web_ledger)
    second = client.post(inbound_path(), content=body, headers=headers)
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.text == "<Response/>"
    assert [first.headers["x-ledger-result"], second.headers["x-ledger-result"]] == [
        "appended",
        "duplicate",
    ]
    assert head(web_ledger) == after_first
    assert events(web_ledger, "OptOutKeyword") == 1


def test_whatsapp_inbound_lands_on_the_whatsapp_channel(
    client: TestClient, web_ledger: DndLedger, ada: str
) -> None:
    form = inbound_form("STOP", sid="SM0003", sender=f"whatsapp:{PHONE}")
    body, headers = twilio_request(inbound_path(), form)
    assert client.post(inbound_path(), content=body, headers=headers).status_code == 200
    assert channel(web_ledger, "whatsapp") == "permanent"
    assert channel(web_ledger, "sms") == "inactive"


@pytest.mark.parametrize(
    "case",
    ["missing", "other-token", "tampered-body", "url-uvicorn-sees", "other-location-token"],
)
def test_a_bad_or_missing_twilio_signature_is_403_and_appends_nothing(
    client: TestClient, web_ledger: DndLedger, ada: str, case: str
) -> None:
    form = inbound_form("STOP", sid="SM0004")
    body, headers = twilio_request(inbound_path(), form)
    if case == "missing":
        del headers["X-Twilio-Signature"]
    elif case == "other-token":
        _, headers = twilio_request(inbound_path(), form, auth_token="f" * 32)
    elif case == "tampered-body":
        body, _ = twilio_request(inbound_path(), inbound_form("HELLO", sid="SM0004"))
    elif case == "url-uvicorn-sees":
        # Signed over the URL this process sees, not the public one the provider called.
        _, headers = twilio_request(inbound_path(), form, public_url="http://testserver")
    else:
        _, headers = twilio_request(inbound_path(), form, auth_token=TWILIO_TOKEN_2)
    before = head(web_ledger)
    r = client.post(inbound_path(), content=body, headers=headers)
    assert r.status_code == 403
    assert "signature" in r.json()["detail"].lower()
    assert head(web_ledger) == before
    assert channel(web_ledger, "sms") == "inactive"


def test_the_signature_covers_the_query_string(
    client: TestClient, web_ledger: DndLedger, ada: str
) -> None:
    path = inbound_path() + "?source=sms-app&x=1"
    body, headers = twilio_request(path, inbound_form("STOP", sid="SM0005"))
    assert client.post(path, content=body, headers=headers).status_code == 200
    _, unsigned_query = twilio_request(inbound_path(), inbound_form("STOP", sid="SM0006"))
    body6, _ = twilio_request(path, inbound_form("STOP", sid="SM0006"))
    assert client.post(path, content=body6, headers=unsigned_query).status_code == 403


def test_a_public_url_with_a_path_prefix_is_signed_in_full(
    web_ledger: DndLedger, web_config: Settings, ada: str
) -> None:
    prefixed = "https://proxy.example.test/ledger"
    app = create_app(web_ledger, web_config, public_url=prefixed)
    with TestClient(app) as client:
        body, headers = twilio_request(inbound_path(), inbound_form("STOP"), public_url=prefixed)
        assert client.post(inbound_path(), content=body, headers=headers).status_code == 200


def test_a_location_without_twilio_secrets_is_404(client: TestClient) -> None:
    path = inbound_path("loc-unknown")
    body, headers = twilio_request(path, inbound_form("STOP"))
    r = client.post(path, content=body, headers=headers)
    assert r.status_code == 404
    assert "loc-unknown" in r.json()["detail"]


def test_a_signed_but_unusable_twilio_form_is_400(
    client: TestClient, web_ledger: DndLedger
) -> None:
    form = inbound_form("STOP")
    del form["MessageSid"]
    body, headers = twilio_request(inbound_path(), form)
    before = head(web_ledger)
    r = client.post(inbound_path(), content=body, headers=headers)
    assert r.status_code == 400
    assert "MessageSid" in r.json()["detail"]
    assert head(web_ledger) == before


def test_an_oversized_webhook_is_413(client: TestClient) -> None:
    body, headers = twilio_request(inbound_path(), inbound_form("x" * 70_000))
    assert client.post(inbound_path(), content=body, headers=headers).status_code == 413


def test_an_inbound_from_an_unknown_address_is_kept_for_later(
    client: TestClient, web_ledger: DndLedger
) -> None:
    body, headers = twilio_request(inbound_path(), inbound_form("STOP", sid="SM0007"))
    assert client.post(inbound_path(), content=body, headers=headers).status_code == 200
    web_ledger.execute(c.RegisterContact(L, "late", phones=(PHONE,)))
    assert channel(web_ledger, "sms", "late") == "permanent"


def test_location_two_checks_its_own_twilio_token(
    client: TestClient, web_ledger: DndLedger
) -> None:
    web_ledger.execute(c.RegisterContact(L2, "bob", phones=(PHONE,)))
    path = inbound_path(L2)
    body, headers = twilio_request(path, inbound_form("STOP"), auth_token=TWILIO_TOKEN_2)
    assert client.post(path, content=body, headers=headers).status_code == 200
    assert web_ledger.status(L2, "bob").to_json()["channels"]["sms"]["status"] == "permanent"


# -- Twilio status callback ----------------------------------------------------------------


def test_a_status_callback_with_a_contact_error_is_recorded_once(
    client: TestClient, web_ledger: DndLedger, ada: str
) -> None:
    body, headers = twilio_request(status_path(), status_form("SM0100", "30004"))
    r = client.post(status_path(), content=body, headers=headers)
    assert r.status_code == 200
    assert r.json()["result"] == "appended"
    assert channel(web_ledger, "sms") == "permanent"
    again = client.post(status_path(), content=body, headers=headers)
    assert again.status_code == 200
    assert again.json()["result"] == "duplicate"
    assert events(web_ledger, "CarrierError30004") == 1


def test_a_status_callback_without_an_error_is_ignored(
    client: TestClient, web_ledger: DndLedger, ada: str
) -> None:
    body, headers = twilio_request(status_path(), status_form("SM0101", None, "delivered"))
    before = head(web_ledger)
    r = client.post(status_path(), content=body, headers=headers)
    assert r.status_code == 200
    assert r.json()["result"] == "ignored"
    assert head(web_ledger) == before


def test_a_forged_status_callback_is_403(
    client: TestClient, web_ledger: DndLedger, ada: str
) -> None:
    body, headers = twilio_request(status_path(), status_form("SM0102", "30004"))
    headers["X-Twilio-Signature"] = "AAAA" + headers["X-Twilio-Signature"][4:]
    assert client.post(status_path(), content=body, headers=headers).status_code == 403
    assert channel(web_ledger, "sms") == "inactive"


# -- Mailgun -------------------------------------------------------------------------------


def now_ts(clock: Clock) -> int:
    return int(clock.now.timestamp())


def test_a_signed_mailgun_bounce_is_recorded(
    client: TestClient, web_ledger: DndLedger, clock: Clock, ada: str
) -> None:
    body = mailgun_body(mailgun_event(at=now_ts(clock) - 60), timestamp=now_ts(clock))
    r = client.post(mailgun_path(), content=body, headers=JSON)
    assert r.status_code == 200
    assert r.json()["result"] == "appended"
    assert channel(web_ledger, "email") == "active"


def test_a_replayed_mailgun_token_is_403_and_appends_once(
    client: TestClient, web_ledger: DndLedger, clock: Clock, ada: str
) -> None:
    body = mailgun_body(mailgun_event(at=now_ts(clock)), timestamp=now_ts(clock), token="t" * 50)
    assert client.post(mailgun_path(), content=body, headers=JSON).status_code == 200
    after_first = head(web_ledger)
    replay = client.post(mailgun_path(), content=body, headers=JSON)
    assert replay.status_code == 403
    assert "already used" in replay.json()["detail"]
    # The same signature with another event body is refused just the same.
    other = mailgun_event("complained", at=now_ts(clock), severity=None, reason=None)
    forged = mailgun_body(other, timestamp=now_ts(clock), token="t" * 50)
    assert client.post(mailgun_path(), content=forged, headers=JSON).status_code == 403
    assert head(web_ledger) == after_first
    assert events(web_ledger, "MailgunPermanentFailure") == 1


def test_a_stale_mailgun_timestamp_is_403_and_does_not_use_up_the_token(
    client: TestClient, web_ledger: DndLedger, clock: Clock, ada: str
) -> None:
    stale = mailgun_body(
        mailgun_event(at=now_ts(clock)), timestamp=now_ts(clock) - 3600, token="s" * 50
    )
    r = client.post(mailgun_path(), content=stale, headers=JSON)
    assert r.status_code == 403
    assert "timestamp" in r.json()["detail"]
    assert channel(web_ledger, "email") == "inactive"
    fresh = mailgun_body(mailgun_event(at=now_ts(clock)), timestamp=now_ts(clock), token="s" * 50)
    assert client.post(mailgun_path(), content=fresh, headers=JSON).status_code == 200


@pytest.mark.parametrize(
    ("case", "status"),
    [("bad-key", 403), ("no-signature", 403), ("not-json", 400), ("form-body", 400)],
)
def test_a_bad_or_missing_mailgun_signature_is_403(
    client: TestClient, web_ledger: DndLedger, clock: Clock, ada: str, case: str, status: int
) -> None:
    """A body that is not JSON cannot carry a signature: 400 says so (issue 13, item 5)."""
    event = mailgun_event(at=now_ts(clock))
    body = mailgun_body(event, timestamp=now_ts(clock), key="key-" + "9" * 32)
    if case == "no-signature":
        body = b'{"event-data": {"event": "failed"}}'
    elif case == "not-json":
        body = b"this is not json"
    elif case == "form-body":
        body = b"event=failed&recipient=ada%40example.com"
    before = head(web_ledger)
    r = client.post(mailgun_path(), content=body, headers=JSON)
    assert r.status_code == status
    assert r.json()["detail"]
    assert head(web_ledger) == before


@pytest.mark.parametrize(
    "event",
    [
        {"event": "failed", "id": "ev-9", "timestamp": 1.0e9, "recipient": EMAIL},  # no severity
        {"event": "complained", "id": "ev-9", "timestamp": 1.0e9},  # no recipient
        {"event": "failed", "severity": "permanent", "timestamp": 1.0e9, "recipient": EMAIL},
    ],
)
def test_a_signed_mailgun_payload_that_can_never_be_processed_is_406(
    client: TestClient, web_ledger: DndLedger, clock: Clock, event: dict[str, Any]
) -> None:
    before = head(web_ledger)
    r = client.post(
        mailgun_path(), content=mailgun_body(event, timestamp=now_ts(clock)), headers=JSON
    )
    assert r.status_code == 406
    assert r.json()["detail"].startswith("unusable Mailgun payload")
    assert head(web_ledger) == before


def test_a_mailgun_event_the_ledger_refuses_is_406(
    client: TestClient, web_ledger: DndLedger, clock: Clock, ada: str
) -> None:
    future = mailgun_event(at=now_ts(clock) + 86_400)  # a day ahead of the ledger's clock
    r = client.post(
        mailgun_path(), content=mailgun_body(future, timestamp=now_ts(clock)), headers=JSON
    )
    assert r.status_code == 406
    assert channel(web_ledger, "email") == "inactive"


def test_a_mailgun_event_without_consent_signal_is_ignored(
    client: TestClient, web_ledger: DndLedger, clock: Clock
) -> None:
    delivered = mailgun_event("delivered", at=now_ts(clock), severity=None, reason=None)
    before = head(web_ledger)
    r = client.post(
        mailgun_path(), content=mailgun_body(delivered, timestamp=now_ts(clock)), headers=JSON
    )
    assert r.status_code == 200
    assert r.json()["result"] == "ignored"
    assert head(web_ledger) == before


def test_a_location_without_a_mailgun_key_is_404(client: TestClient, clock: Clock) -> None:
    body = mailgun_body(mailgun_event(at=now_ts(clock)), timestamp=now_ts(clock))
    assert client.post(mailgun_path(L2), content=body, headers=JSON).status_code == 404


@pytest.mark.parametrize("failure", [RuntimeError("database went away"), Conflict("collided")])
def test_a_mailgun_event_that_could_not_be_stored_is_accepted_on_retry(
    web_ledger: DndLedger,
    web_config: Settings,
    clock: Clock,
    ada: str,
    monkeypatch: pytest.MonkeyPatch,
    failure: Exception,
) -> None:
    body = mailgun_body(mailgun_event(at=now_ts(clock)), timestamp=now_ts(clock), token="r" * 50)
    real = web_ledger.execute
    calls: list[Any] = []

    def failing_once(command: Any) -> Any:
        calls.append(command)
        if len(calls) == 1:
            raise failure
        return real(command)

    monkeypatch.setattr(web_ledger, "execute", failing_once)
    app = create_app(web_ledger, web_config)
    with TestClient(app, raise_server_exceptions=False) as client:
        first = client.post(mailgun_path(), content=body, headers=JSON)
        assert first.status_code == (503 if isinstance(failure, Conflict) else 500)
        assert channel(web_ledger, "email") == "inactive"
        retry = client.post(mailgun_path(), content=body, headers=JSON)
        assert retry.status_code == 200
        assert retry.json()["result"] == "appended"
    assert channel(web_ledger, "email") == "active"
