"""The JSON API: tokens and roles, every route's answers and refusals, parity with the CLI."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from dnd_ledger import commands as cmd
from dnd_ledger.application import DndLedger
from dnd_ledger.cli.main import cli
from dnd_ledger.domain.values import Channel, EmailSignal
from tests.conftest import T0, Clock
from tests.web.support import (
    EMAIL,
    L2,
    LOC2_READ,
    PHONE,
    READ,
    SENDER,
    SUPPORT,
    WRITE,
    L,
    bearer,
)

BASE = f"/v1/locations/{L}"
ADA = f"{BASE}/contacts/ada"
CHANNELS = ["email", "sms", "call", "fb", "gmb", "whatsapp"]


@pytest.fixture
def ada(web_ledger: DndLedger) -> str:
    web_ledger.execute(cmd.RegisterContact(L, "ada", phones=(PHONE,), emails=(EMAIL,)))
    return "ada"


def stop(ledger: DndLedger, sid: str = "SM1") -> None:
    ledger.execute(cmd.ReceiveInbound(L, Channel.SMS, PHONE, "STOP", sid))


def run_cli(ledger: DndLedger, *args: str) -> Any:
    """The CLI's JSON for the same database (and key) the service uses."""
    env = {"DND_LEDGER_PII_KEY": b"web-test-key-0123456789".hex(), "DND_LEDGER_POLICY": None}
    db = ledger.db.path
    result = CliRunner().invoke(cli, ["--db", db, *args], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


# -- tokens and roles ----------------------------------------------------------------------

ROUTES: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("POST", f"{BASE}/contacts", {"contact_id": "ada"}, "write"),
    ("POST", f"{ADA}/dnd", {"action": "set", "channels": ["sms"], "actor": "al"}, "write"),
    (
        "POST",
        f"{ADA}/opt-in-approvals",
        {"channels": ["sms"], "approver": "sam", "ticket": "T-1", "evidence": "form"},
        "support",
    ),
    ("GET", f"{ADA}/dnd", None, "read"),
    ("GET", f"{ADA}/can-send?channel=sms", None, "read"),
    (
        "POST",
        "/v1/can-send:batch",
        {"items": [{"location_id": L, "contact_id": "ada", "channel": "sms"}]},
        "read",
    ),
    ("GET", f"{BASE}/audit", None, "read"),
]
ROLE_TOKEN = {"read": READ, "write": WRITE, "support": SUPPORT}


@pytest.mark.parametrize(("method", "url", "body", "role"), ROUTES)
def test_every_api_route_needs_a_known_token_with_its_role(
    client: TestClient, ada: str, method: str, url: str, body: dict[str, Any] | None, role: str
) -> None:
    missing = client.request(method, url, json=body)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "bearer token" in missing.json()["detail"]
    unknown = client.request(method, url, json=body, headers=bearer("not-a-token"))
    assert unknown.status_code == 401
    assert unknown.json()["detail"] == "unknown bearer token"
    basic = client.request(method, url, json=body, headers={"Authorization": "Basic eDp5"})
    assert basic.status_code == 401
    for other, token in ROLE_TOKEN.items():
        if other == role:
            continue
        wrong = client.request(method, url, json=body, headers=bearer(token))
        assert wrong.status_code == 403, (other, wrong.text)
        assert f"'{role}' role" in wrong.json()["detail"]
    right = client.request(method, url, json=body, headers=bearer(ROLE_TOKEN[role]))
    assert right.status_code == 200, right.text


def test_a_token_limited_to_a_location_is_403_elsewhere(
    client: TestClient, web_ledger: DndLedger, ada: str
) -> None:
    web_ledger.execute(cmd.RegisterContact(L2, "bob", phones=(PHONE,)))
    h = bearer(LOC2_READ)
    assert client.get(f"/v1/locations/{L2}/contacts/bob/dnd", headers=h).status_code == 200
    r = client.get(f"{ADA}/dnd", headers=h)
    assert r.status_code == 403
    assert "location" in r.json()["detail"]
    items = [
        {"location_id": L2, "contact_id": "bob", "channel": "sms"},
        {"location_id": L, "contact_id": "ada", "channel": "sms"},
    ]
    assert client.post("/v1/can-send:batch", json={"items": items}, headers=h).status_code == 403


# -- register ----------------------------------------------------------------------------


def test_register_a_contact_then_repeat_it(client: TestClient, web_ledger: DndLedger) -> None:
    body = {"contact_id": "c-42", "phones": [PHONE], "emails": [EMAIL], "request_id": "r-1"}
    r = client.post(f"{BASE}/contacts", json=body, headers=bearer(WRITE))
    assert r.status_code == 200
    assert r.json() == {"result": "appended", "events": ["Registered"], "contacts": ["c-42"]}
    again = client.post(f"{BASE}/contacts", json=body, headers=bearer(WRITE))
    assert again.json()["result"] == "duplicate"
    assert web_ledger.contact_addresses(L, "c-42")["phones"]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"contact_id": "c-1", "phones": ["555-0100"]}, "E.164"),
        ({"contact_id": "c-1", "phone": [PHONE]}, "body.phone: Extra inputs are not permitted"),
        ({"contact_id": ""}, "body.contact_id"),
        ({"contact_id": "c-1", "occurred_at": "2026-11-02T09:00:00"}, "with a time zone"),
        ({"phones": [PHONE]}, "body.contact_id: Field required"),
    ],
)
def test_invalid_registrations_are_422_with_a_clear_detail(
    client: TestClient, web_ledger: DndLedger, body: dict[str, Any], where: str
) -> None:
    r = client.post(f"{BASE}/contacts", json=body, headers=bearer(WRITE))
    assert r.status_code == 422
    assert isinstance(r.json()["detail"], str)
    assert where in r.json()["detail"]
    assert web_ledger.projector.head() == 0


def test_a_body_that_is_not_json_is_422(client: TestClient) -> None:
    r = client.post(
        f"{BASE}/contacts",
        content=b"{nope",
        headers={**bearer(WRITE), "Content-Type": "application/json"},
    )
    assert r.status_code == 422
    assert "JSON" in r.json()["detail"]


def test_validation_errors_never_echo_the_input(client: TestClient) -> None:
    r = client.post(
        f"{BASE}/contacts", json={"contact_id": "c", "phones": 15550100}, headers=bearer(WRITE)
    )
    assert r.status_code == 422
    assert "15550100" not in r.text


# -- set / clear / approve -----------------------------------------------------------------


def test_set_and_clear_temporary_dnd(client: TestClient, web_ledger: DndLedger, ada: str) -> None:
    body = {"action": "set", "channels": ["email", "call"], "actor": "alice", "request_id": "q7"}
    r = client.post(f"{ADA}/dnd", json=body, headers=bearer(WRITE))
    assert r.json() == {"result": "appended", "events": ["DndSetByUser"], "contacts": ["ada"]}
    assert client.post(f"{ADA}/dnd", json=body, headers=bearer(WRITE)).json()["result"] == (
        "duplicate"
    )
    assert web_ledger.status(L, "ada").channels[Channel.CALL].status.value == "active"
    clear = {"action": "clear", "channels": "all", "actor": "alice", "reason": "asked again"}
    r = client.post(f"{ADA}/dnd", json=clear, headers=bearer(WRITE))
    assert r.json()["events"] == ["DndClearedByUser"]
    assert web_ledger.status(L, "ada").dnd.value == "off"


def test_set_all_channels(client: TestClient, web_ledger: DndLedger, ada: str) -> None:
    body = {"action": "set", "channels": "all", "actor": "alice"}
    assert client.post(f"{ADA}/dnd", json=body, headers=bearer(WRITE)).status_code == 200
    assert web_ledger.status(L, "ada").dnd.value == "on"


def test_clearing_permanent_dnd_is_409_naming_the_cause(
    client: TestClient, web_ledger: DndLedger, ada: str
) -> None:
    stop(web_ledger)
    before = web_ledger.projector.head()
    body = {"action": "clear", "channels": ["sms"], "actor": "alice"}
    r = client.post(f"{ADA}/dnd", json=body, headers=bearer(WRITE))
    assert r.status_code == 409
    detail = r.json()["detail"]
    assert "permanent DND" in detail
    assert "OptOutKeyword" in detail
    assert "STOP" in detail
    assert web_ledger.projector.head() == before


def test_clearing_a_bounce_needs_the_suppression_attestation(
    client: TestClient, web_ledger: DndLedger, ada: str
) -> None:
    web_ledger.execute(
        cmd.ReportEmailEvent(L, EMAIL, EmailSignal.FAILED_PERMANENT, "tok-1", reason="bounce")
    )
    body: dict[str, Any] = {"action": "clear", "channels": ["email"], "actor": "alice"}
    r = client.post(f"{ADA}/dnd", json=body, headers=bearer(WRITE))
    assert r.status_code == 409
    assert "suppression" in r.json()["detail"]
    body["suppression_removed"] = True
    assert client.post(f"{ADA}/dnd", json=body, headers=bearer(WRITE)).status_code == 200
    assert web_ledger.status(L, "ada").channels[Channel.EMAIL].status.value == "inactive"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            {"action": "set", "channels": ["sms"], "actor": "a", "suppression_removed": True},
            "clear",
        ),
        ({"action": "set", "channels": ["pager"], "actor": "a"}, "body.channels"),
        ({"action": "set", "channels": [], "actor": "a"}, "no channel"),
        ({"action": "toggle", "channels": ["sms"], "actor": "a"}, "body.action"),
        ({"action": "set", "channels": ["sms"]}, "body.actor: Field required"),
        ({"action": "set", "channels": ["sms"], "actor": "  "}, "actor is required"),
    ],
)
def test_invalid_dnd_changes_are_422(
    client: TestClient, ada: str, body: dict[str, Any], detail: str
) -> None:
    r = client.post(f"{ADA}/dnd", json=body, headers=bearer(WRITE))
    assert r.status_code == 422
    assert detail in r.json()["detail"]


def test_dnd_for_an_unknown_contact_is_404(client: TestClient) -> None:
    body = {"action": "set", "channels": ["sms"], "actor": "alice"}
    r = client.post(f"{BASE}/contacts/nobody/dnd", json=body, headers=bearer(WRITE))
    assert r.status_code == 404
    assert "not registered" in r.json()["detail"]


def test_support_approved_opt_in_lifts_permanent_dnd(
    client: TestClient, web_ledger: DndLedger, ada: str
) -> None:
    stop(web_ledger)
    body = {
        "channels": ["sms"],
        "approver": "sam",
        "ticket": "SUP-981",
        "evidence": "signed web form 2026-11-02",
        "request_id": "sup-1",
    }
    r = client.post(f"{ADA}/opt-in-approvals", json=body, headers=bearer(SUPPORT))
    assert r.status_code == 200
    assert r.json()["events"] == ["SupportOptInApproved"]
    assert web_ledger.can_send(L, "ada", Channel.SMS).allowed
    again = client.post(f"{ADA}/opt-in-approvals", json=body, headers=bearer(SUPPORT))
    assert again.json()["result"] == "duplicate"


def test_an_opt_in_without_evidence_is_422(client: TestClient, ada: str) -> None:
    body = {"channels": ["sms"], "approver": "sam", "ticket": "SUP-1"}
    r = client.post(f"{ADA}/opt-in-approvals", json=body, headers=bearer(SUPPORT))
    assert r.status_code == 422
    assert "evidence" in r.json()["detail"]


def test_an_opt_in_for_an_unknown_contact_is_404(client: TestClient) -> None:
    body = {"channels": "all", "approver": "sam", "ticket": "T", "evidence": "e"}
    r = client.post(f"{BASE}/contacts/x/opt-in-approvals", json=body, headers=bearer(SUPPORT))
    assert r.status_code == 404


# -- status and can-send: the CLI's JSON, exactly -------------------------------------------


def test_dnd_status_is_the_status_json_of_the_cli(
    client: TestClient, web_ledger: DndLedger, ada: str
) -> None:
    stop(web_ledger)
    when = "2026-11-02T09:30:00+00:00"
    r = client.get(f"{ADA}/dnd", params={"as_of": when, "known_at": when}, headers=bearer(READ))
    assert r.status_code == 200
    expected = json.loads(run_cli(web_ledger, "status", L, "ada", "--as-of", when,
                                  "--known-at", when, "--json"))  # fmt: skip
    assert r.json() == expected
    assert list(r.json()["channels"]) == CHANNELS
    assert r.json()["channels"]["sms"]["status"] == "permanent"


def test_dnd_status_now(client: TestClient, web_ledger: DndLedger, ada: str) -> None:
    r = client.get(f"{ADA}/dnd", headers=bearer(READ))
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"location_id", "contact_id", "dnd", "channels", "as_of", "known_at"}
    assert body["dnd"] == "off"
    assert body["as_of"] == T0.isoformat()  # the ledger's clock


def test_status_in_the_past_sees_what_was_known_then(
    client: TestClient, web_ledger: DndLedger, ada: str, clock: Clock
) -> None:
    clock.advance(hours=1)
    stop(web_ledger)
    earlier = "2026-11-02T09:30:00Z"  # registered at 09:00, STOP at 10:00
    r = client.get(f"{ADA}/dnd", params={"as_of": earlier}, headers=bearer(READ))
    assert r.json()["channels"]["sms"]["status"] == "inactive"
    # Before the registration the contact was unknown: 404, not "no DND".
    before = client.get(
        f"{ADA}/dnd", params={"as_of": "2026-11-02T08:59:00Z"}, headers=bearer(READ)
    )
    assert before.status_code == 404
    assert "not registered" in before.json()["detail"]


@pytest.mark.parametrize(
    "query",
    ["as_of=2026-11-02T09:00:00", "as_of=yesterday", "known_at=2026-13-01T00:00:00Z"],
)
def test_status_with_a_bad_time_is_422(client: TestClient, ada: str, query: str) -> None:
    r = client.get(f"{ADA}/dnd?{query}", headers=bearer(READ))
    assert r.status_code == 422
    assert r.json()["detail"].startswith("query.")


def test_status_of_an_unknown_contact_is_404(client: TestClient) -> None:
    r = client.get(f"{BASE}/contacts/nobody/dnd", headers=bearer(READ))
    assert r.status_code == 404
    assert r.json() == {"detail": "contact 'nobody' is not registered in location 'loc-1'"}


@pytest.mark.parametrize(
    ("query", "cli_args"),
    [
        ("channel=sms", ["--channel", "sms"]),
        ("channel=sms&mode=manual", ["--channel", "sms", "--manual"]),
        ("channel=email&mode=automated", ["--channel", "email", "--automated"]),
        ("channel=call&direction=inbound", ["--channel", "call", "--inbound"]),
        (
            "channel=sms&as_of=2026-11-02T09:00:00Z",
            ["--channel", "sms", "--as-of", "2026-11-02T09:00:00Z"],
        ),
    ],
)
def test_can_send_is_the_can_send_json_of_the_cli(
    client: TestClient, web_ledger: DndLedger, ada: str, query: str, cli_args: list[str]
) -> None:
    stop(web_ledger)
    r = client.get(f"{ADA}/can-send?{query}", headers=bearer(READ))
    assert r.status_code == 200
    assert r.json() == json.loads(run_cli(web_ledger, "can-send", L, "ada", *cli_args, "--json"))


def test_can_send_blocked_after_stop(client: TestClient, web_ledger: DndLedger, ada: str) -> None:
    stop(web_ledger)
    body = client.get(f"{ADA}/can-send?channel=sms&mode=manual", headers=bearer(READ)).json()
    assert body["allowed"] is False
    assert body["status"] == "permanent"
    assert body["event"] == "OptOutKeyword"
    assert body["code"] == "STOP"


@pytest.mark.parametrize(
    ("query", "where"),
    [
        ("", "query.channel: Field required"),
        ("channel=pager", "query.channel"),
        ("channel=sms&mode=sometimes", "query.mode"),
        ("channel=sms&direction=sideways", "query.direction"),
    ],
)
def test_can_send_with_bad_parameters_is_422(
    client: TestClient, ada: str, query: str, where: str
) -> None:
    r = client.get(f"{ADA}/can-send?{query}", headers=bearer(READ))
    assert r.status_code == 422
    assert where in r.json()["detail"]


def test_can_send_for_an_unknown_contact_is_404(client: TestClient) -> None:
    r = client.get(f"{BASE}/contacts/nobody/can-send?channel=sms", headers=bearer(READ))
    assert r.status_code == 404


# -- batch ---------------------------------------------------------------------------------


def test_batch_answers_each_triple_in_order(
    client: TestClient, web_ledger: DndLedger, ada: str
) -> None:
    stop(web_ledger)
    items = [
        {"location_id": L, "contact_id": "ada", "channel": "sms"},
        {"location_id": L, "contact_id": "ada", "channel": "email", "mode": "manual"},
        {"location_id": L, "contact_id": "nobody", "channel": "sms"},
        {"location_id": L, "contact_id": "ada", "channel": "call", "direction": "inbound"},
    ]
    r = client.post("/v1/can-send:batch", json={"items": items}, headers=bearer(READ))
    assert r.status_code == 200
    results = r.json()["results"]
    assert [(x["contact_id"], x["channel"]) for x in results] == [
        ("ada", "sms"), ("ada", "email"), ("nobody", "sms"), ("ada", "call"),
    ]  # fmt: skip
    assert results[0]["decision"] == web_ledger.can_send(L, "ada", Channel.SMS).to_json()
    assert results[0]["decision"]["allowed"] is False
    assert results[1]["decision"]["allowed"] is True
    assert results[1]["decision"]["mode"] == "manual"
    assert results[2]["error"]["status"] == 404
    assert "decision" not in results[2]
    assert results[3]["decision"]["direction"] == "inbound"


def test_batch_takes_a_thousand_triples_and_no_more(
    client: TestClient, web_ledger: DndLedger, ada: str
) -> None:
    item = {"location_id": L, "contact_id": "ada", "channel": "sms"}
    ok = client.post("/v1/can-send:batch", json={"items": [item] * 1000}, headers=bearer(READ))
    assert ok.status_code == 200
    assert len(ok.json()["results"]) == 1000
    over = client.post("/v1/can-send:batch", json={"items": [item] * 1001}, headers=bearer(READ))
    assert over.status_code == 422
    assert "1000" in over.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"items": []},
        {},
        {"items": [{"location_id": L, "contact_id": "ada"}]},
        {"items": [{"location_id": L, "contact_id": "ada", "channel": "pager"}]},
    ],
)
def test_a_malformed_batch_is_422(client: TestClient, body: dict[str, Any]) -> None:
    r = client.post("/v1/can-send:batch", json=body, headers=bearer(READ))
    assert r.status_code == 422
    assert r.json()["detail"].startswith("body")


# -- audit export --------------------------------------------------------------------------


def _story(ledger: DndLedger) -> None:
    ledger.execute(cmd.RegisterContact(L, "ada", phones=(PHONE,), emails=(EMAIL,)))
    stop(ledger)
    ledger.execute(cmd.SetDnd(L, "ada", (Channel.CALL,), "alice", reason="asked"))
    ledger.execute(cmd.RegisterContact(L, "bob", phones=("+14155550111",)))


def test_audit_json_is_the_cli_audit_json(client: TestClient, web_ledger: DndLedger) -> None:
    _story(web_ledger)
    r = client.get(f"{BASE}/audit", params={"contact_id": "ada"}, headers=bearer(READ))
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == json.loads(run_cli(web_ledger, "audit", L, "ada", "--format", "json"))
    assert [row["event"] for row in r.json()] == ["Registered", "OptOutKeyword", "DndSetByUser"]


def test_audit_jsonl_and_csv(client: TestClient, web_ledger: DndLedger) -> None:
    _story(web_ledger)
    jsonl = client.get(f"{BASE}/audit?format=jsonl", headers=bearer(READ))
    assert jsonl.headers["content-type"] == "application/x-ndjson"
    lines = jsonl.text.splitlines()
    assert jsonl.text.endswith("\n")
    assert [json.loads(x) for x in lines] == client.get(
        f"{BASE}/audit", headers=bearer(READ)
    ).json()
    got = client.get(f"{BASE}/audit?format=csv&contact_id=ada", headers=bearer(READ))
    assert got.headers["content-type"] == "text/csv; charset=utf-8"
    assert 'filename="audit-loc-1-ada.csv"' in got.headers["content-disposition"]
    assert got.text == run_cli(web_ledger, "audit", L, "ada", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(got.text)))
    assert rows[1]["event"] == "OptOutKeyword"
    assert rows[1]["after"] == "sms=permanent"


def test_audit_since_and_until(client: TestClient, web_ledger: DndLedger, clock: Any) -> None:
    _story(web_ledger)
    clock.advance(hours=2)
    web_ledger.execute(cmd.SetDnd(L, "ada", (Channel.FB,), "alice"))
    cut = (T0.replace(hour=10)).isoformat()
    since = client.get(f"{BASE}/audit", params={"since": cut}, headers=bearer(READ)).json()
    until = client.get(f"{BASE}/audit", params={"until": cut}, headers=bearer(READ)).json()
    assert [r["event"] for r in since] == ["DndSetByUser"]
    assert "DndSetByUser" in [r["event"] for r in until]
    assert len(since) + len(until) == len(client.get(f"{BASE}/audit", headers=bearer(READ)).json())


@pytest.mark.parametrize(
    ("query", "status"),
    [("contact_id=nobody", 404), ("format=xml", 422), ("since=2026-11-02T09:00:00", 422)],
)
def test_audit_refusals(client: TestClient, ada: str, query: str, status: int) -> None:
    r = client.get(f"{BASE}/audit?{query}", headers=bearer(READ))
    assert r.status_code == status
    assert r.json()["detail"]


# -- service -------------------------------------------------------------------------------


def test_healthz_needs_no_token(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


def test_healthz_is_503_when_the_database_fails(
    client: TestClient, web_ledger: DndLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> int:
        raise OSError("disk on fire")

    monkeypatch.setattr(web_ledger.projector, "head", broken)
    r = client.get("/healthz")
    assert r.status_code == 503
    assert "database unavailable" in r.json()["detail"]


def test_openapi_documents_every_route(client: TestClient) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    spec = client.get("/openapi.json").json()
    paths = set(spec["paths"])
    assert {
        "/v1/locations/{location_id}/webhooks/twilio/inbound",
        "/v1/locations/{location_id}/webhooks/twilio/status",
        "/v1/locations/{location_id}/webhooks/mailgun",
        "/v1/locations/{location_id}/contacts",
        "/v1/locations/{location_id}/contacts/{contact_id}/dnd",
        "/v1/locations/{location_id}/contacts/{contact_id}/opt-in-approvals",
        "/v1/locations/{location_id}/contacts/{contact_id}/can-send",
        "/v1/can-send:batch",
        "/v1/locations/{location_id}/audit",
        "/healthz",
    } <= paths
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


def test_an_unknown_route_is_a_json_404(client: TestClient) -> None:
    r = client.get("/v1/nothing-here")
    assert r.status_code == 404
    assert r.json() == {"detail": "Not Found"}


def test_a_sender_token_with_read_and_write_does_both(client: TestClient, ada: str) -> None:
    h = bearer(SENDER)
    body = {"action": "set", "channels": ["gmb"], "actor": "svc"}
    assert client.post(f"{ADA}/dnd", json=body, headers=h).status_code == 200
    assert client.get(f"{ADA}/can-send?channel=gmb", headers=h).json()["allowed"] is False
