"""Every route, fuzzed against PostgreSQL (issue 13, items 4 and 5).

Schemathesis generates requests from ``/openapi.json`` (valid and invalid ones:
NUL and other control characters included) and sends them, with tokens, to the
service in process over a PostgreSQL ledger. No answer may be a 500, and every
status code must be one the OpenAPI document lists for the route. Signed
webhooks cannot be generated from the document (the signature is a secret), so a
Hypothesis test signs arbitrary Twilio and Mailgun payloads itself.

Bounded (a few hundred requests) so the run stays well under a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.settings import Settings
from dnd_ledger.web.app import create_app
from tests.conftest import Clock
from tests.web.support import (
    EMAIL,
    PHONE,
    SENDER,
    SUPPORT,
    L,
    bearer,
    inbound_path,
    mailgun_body,
    mailgun_path,
    status_path,
    twilio_request,
)

pytestmark = pytest.mark.postgres
EXAMPLES = 25
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def pg_app(pg_url: str, web_config: Settings, clock: Clock) -> Iterator[FastAPI]:
    ledger = DndLedger(pg_url, pii_key=b"web-test-key-0123456789", clock=clock)
    ledger.execute(c.RegisterContact(L, "ada", phones=(PHONE,), emails=(EMAIL,)))
    try:
        yield create_app(ledger, web_config)
    finally:
        ledger.close()


def _token_for(path: str) -> str:
    return SUPPORT if path.endswith("/opt-in-approvals") else SENDER


def _fuzz(operation: Any, headers: dict[str, str], seen: set[int]) -> None:
    """Send generated requests for one operation; each answer must be documented."""

    @FUZZ
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        response = case.call(headers=headers)
        seen.add(response.status_code)
        case.validate_response(response, checks=[not_a_server_error, status_code_conformance])

    check()


def test_no_route_answers_500_or_an_undocumented_status(pg_app: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", pg_app)
    seen: dict[str, set[int]] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10

    for operation in operations:
        _fuzz(
            operation, bearer(_token_for(operation.path)), seen.setdefault(operation.label, set())
        )
    # The run reached the ledger, not only the door: decisions and refusals came back.
    assert any(200 in codes for codes in seen.values())
    assert any(422 in codes for codes in seen.values())


# -- signed webhooks with arbitrary content ---------------------------------------------------

#: Text that often holds what broke PostgreSQL and terminals: NUL, ESC, BEL, C1, bidi.
HOSTILE = st.sampled_from(["\x00", "\x1b", "\x07", "\x9b", "\u202e", "\u2066", "\r", "\t"])
TEXT = st.text(HOSTILE | st.sampled_from("STOP ") | st.characters(codec="utf-8"), max_size=40)


@FUZZ
@example(body="STOP\x00", sid="SMnul", sender=PHONE, opt_out="STOP\x00")
@given(body=TEXT, sid=TEXT, sender=st.sampled_from([PHONE, "whatsapp:" + PHONE]) | TEXT,
       opt_out=st.none() | TEXT)  # fmt: skip
def test_signed_twilio_inbound_never_fails_on_content(
    pg_app: FastAPI, body: str, sid: str, sender: str, opt_out: str | None
) -> None:
    from fastapi.testclient import TestClient

    form = {"MessageSid": sid, "AccountSid": "AC0123456789", "From": sender,
            "To": "+14155550199", "Body": body}  # fmt: skip
    if opt_out is not None:
        form["OptOutType"] = opt_out
    raw, headers = twilio_request(inbound_path(), form)
    with TestClient(pg_app, raise_server_exceptions=False) as client:
        r = client.post(inbound_path(), content=raw, headers=headers)
        assert r.status_code in (200, 400), r.text
        raw, headers = twilio_request(status_path(), {**form, "MessageStatus": "failed",
                                                      "ErrorCode": "30004", "To": sender})  # fmt: skip
        r = client.post(status_path(), content=raw, headers=headers)
        assert r.status_code in (200, 400), r.text


@FUZZ
@example(token="tok\x00" + "a" * 44, event_id="ev", reason="bounce", recipient=EMAIL)
@example(token="a" * 50, event_id="ev\x00", reason="bounce\x1b", recipient=EMAIL)
@given(token=TEXT.filter(bool), event_id=TEXT, reason=TEXT, recipient=st.just(EMAIL) | TEXT)
def test_signed_mailgun_events_never_fail_on_content(
    pg_app: FastAPI, clock: Clock, token: str, event_id: str, reason: str, recipient: str
) -> None:
    from fastapi.testclient import TestClient

    now = int(clock.now.timestamp())
    event = {"event": "failed", "severity": "permanent", "reason": reason, "id": event_id,
             "timestamp": now, "recipient": recipient}  # fmt: skip
    raw = mailgun_body(event, timestamp=now, token=token)
    with TestClient(pg_app, raise_server_exceptions=False) as client:
        r = client.post(mailgun_path(), content=raw, headers={"Content-Type": "application/json"})
        assert r.status_code in (200, 400, 403, 406), r.text
