"""Running it as a service: the request log, /metrics and the offline docs pages."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from dnd_ledger.application import DndLedger
from dnd_ledger.settings import load_config
from dnd_ledger.web import request_log
from dnd_ledger.web.app import create_app
from tests.conftest import require_postgres
from tests.web.support import (
    PHONE,
    READ,
    TWILIO_TOKEN,
    WRITE,
    L,
    bearer,
    inbound_form,
    inbound_path,
    sha256,
    twilio_request,
    write_config,
)
from tests.web.test_serve import PUBLIC, serving

METRICS_TOKEN = "metrics-token-0123456789"


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    handler = Lines()
    request_log.LOGGER.addHandler(handler)
    try:
        yield handler.lines
    finally:
        request_log.LOGGER.removeHandler(handler)


def app_client(tmp_path: Path, ledger: DndLedger, **extra: str) -> TestClient:
    return TestClient(create_app(ledger, load_config(write_config(tmp_path, **extra))))


def register(client: TestClient) -> None:
    r = client.post(
        f"/v1/locations/{L}/contacts",
        json={"contact_id": "ada", "phones": [PHONE]},
        headers=bearer(WRITE),
    )
    assert r.status_code == 200, r.text


def test_one_json_line_per_request_naming_the_route_template_and_the_token(
    client: TestClient, log_lines: list[str]
) -> None:
    register(client)
    r = client.get(f"/v1/locations/{L}/contacts/ada/can-send?channel=sms", headers=bearer(READ))
    assert r.status_code == 200
    assert len(log_lines) == 2
    write, read = (json.loads(line) for line in log_lines)
    assert write["route"] == "/v1/locations/{location_id}/contacts"
    assert read["route"] == "/v1/locations/{location_id}/contacts/{contact_id}/can-send"
    assert (read["method"], read["status"], read["location"], read["token"]) == (
        "GET", 200, L, "reader",
    )  # fmt: skip
    assert read["reason"] is None
    assert read["duration_ms"] >= 0
    assert set(read) == {
        "time", "method", "route", "status", "duration_ms", "location", "token", "reason",
    }  # fmt: skip
    for line in log_lines:  # the raw path (contact id), the token and the phone stay out
        for secret in ("ada", READ, WRITE, PHONE, PHONE[1:]):
            assert secret not in line


def test_a_refused_webhook_logs_why_and_nothing_of_the_message(
    client: TestClient, log_lines: list[str]
) -> None:
    register(client)
    body, headers = twilio_request(inbound_path(), inbound_form("STOP please"))
    headers["X-Twilio-Signature"] = "forged" + headers["X-Twilio-Signature"][6:]
    assert client.post(inbound_path(), content=body, headers=headers).status_code == 403
    refused = json.loads(log_lines[-1])
    assert refused["status"] == 403
    assert refused["route"] == "/v1/locations/{location_id}/webhooks/twilio/inbound"
    assert "X-Twilio-Signature" in refused["reason"]
    assert "STOP please" not in log_lines[-1]
    assert TWILIO_TOKEN not in log_lines[-1]
    missing = client.get(f"/v1/locations/{L}/contacts/ada/can-send?channel=sms")
    assert missing.status_code == 401
    assert "bearer token" in json.loads(log_lines[-1])["reason"]


def test_text_format_and_turning_the_log_off(tmp_path: Path, web_ledger: DndLedger,
                                             log_lines: list[str]) -> None:  # fmt: skip
    with app_client(tmp_path, web_ledger, log_format='"text"') as c:
        assert c.get("/healthz").status_code == 200
    assert re.fullmatch(
        r"time=\S+ method=GET route=/healthz status=200 duration_ms=\S+", log_lines[-1]
    )
    log_lines.clear()
    with app_client(tmp_path, web_ledger, request_log="false") as c:
        assert c.get("/healthz").status_code == 200
    assert log_lines == []


def metric(text: str, sample: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text ``text`` (0 when absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(sample):
            continue
        head, _, value = line.rpartition(" ")
        found = dict(re.findall(r'(\w+)="([^"]*)"', head))
        if head.split("{")[0] == sample and found == labels:
            return float(value)
    return 0.0


def test_metrics_count_requests_webhooks_and_report_view_lag(
    tmp_path: Path, web_ledger: DndLedger
) -> None:
    with app_client(tmp_path, web_ledger) as c:
        before = c.get("/metrics").text
        register(c)
        body, headers = twilio_request(inbound_path(), inbound_form("STOP"))
        assert c.post(inbound_path(), content=body, headers=headers).status_code == 200
        headers["X-Twilio-Signature"] = "x" + headers["X-Twilio-Signature"][1:]
        assert c.post(inbound_path(), content=body, headers=headers).status_code == 403
        ask = f"/v1/locations/{L}/contacts/ada/can-send"
        for channel in ("sms", "sms", "email"):  # the fast path answers these
            assert c.get(f"{ask}?channel={channel}", headers=bearer(READ)).status_code == 200
        at = "2030-01-01T12:00:00Z"  # FastAPI's route answers this one (a purpose)
        r = c.get(f"{ask}?channel=email&purpose=marketing&at={at}", headers=bearer(READ))
        assert r.status_code == 200
        batch = {"items": [{"location_id": L, "contact_id": "ada", "channel": "sms"}]}
        assert c.post("/v1/can-send:batch", json=batch, headers=bearer(READ)).status_code == 200
        r = c.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    route = "/v1/locations/{location_id}/contacts"
    for name, labels, grew in [
        ("dnd_ledger_requests_total", {"route": route, "method": "POST", "status": "200"}, 1),
        ("dnd_ledger_webhooks_total", {"provider": "twilio", "outcome": "accepted"}, 1),
        ("dnd_ledger_webhooks_total", {"provider": "twilio", "outcome": "refused"}, 1),
        ("dnd_ledger_request_duration_seconds_count", {"route": route, "method": "POST"}, 1),
        ("dnd_ledger_decisions_total", {"channel": "sms", "result": "blocked"}, 3),
        ("dnd_ledger_decisions_total", {"channel": "email", "result": "allowed"}, 2),
        (
            "dnd_ledger_requests_total",
            {
                "route": "/v1/locations/{location_id}/contacts/{contact_id}/can-send",
                "method": "GET",
                "status": "200",
            },
            4,
        ),
    ]:
        assert metric(text, name, **labels) - metric(before, name, **labels) == grew, name
    assert metric(text, "dnd_ledger_view_lag_events", view="status") == 0
    assert metric(text, "dnd_ledger_database_up") == 1
    assert PHONE not in text
    assert "ada" not in text


def test_metrics_behind_a_bearer_token_when_one_is_configured(
    tmp_path: Path, web_ledger: DndLedger
) -> None:
    with app_client(tmp_path, web_ledger, metrics_token_sha256=f'"{sha256(METRICS_TOKEN)}"') as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers=bearer(READ)).status_code == 401
        assert c.get("/metrics", headers=bearer(METRICS_TOKEN)).status_code == 200
    with app_client(tmp_path, web_ledger, metrics="false") as c:
        assert c.get("/metrics").status_code == 404


def test_docs_pages_load_their_assets_from_the_service_under_a_csp(client: TestClient) -> None:
    for page, inline_scripts in (("/docs", 1), ("/redoc", 0)):
        r = client.get(page)
        assert r.status_code == 200
        assert "https://" not in r.text  # nothing from elsewhere: no CDN, no fonts
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp
        assert csp.count("'sha256-") == inline_scripts
        assets = re.findall(r'(?:src|href)="(/docs-assets/[^"]+)"', r.text)
        assert len(assets) >= 2
        for asset in assets:
            got = client.get(asset)
            assert got.status_code == 200, asset
            assert len(got.content) > 1000, asset
    assert client.get("/openapi.json").status_code == 200


def test_docs_off(tmp_path: Path, web_ledger: DndLedger) -> None:
    with app_client(tmp_path, web_ledger, docs="false") as c:
        for page in ("/docs", "/redoc", "/openapi.json", "/docs-assets/swagger-ui.css"):
            assert c.get(page).status_code == 404, page


@pytest.mark.slow
@pytest.mark.postgres
def test_metrics_sum_every_worker_and_the_log_is_json_on_stderr(
    tmp_path: Path, pg_url: str
) -> None:
    require_postgres()
    config = write_config(tmp_path, public_url=PUBLIC)
    env = {"DND_LEDGER_PII_KEY_FILE": str(tmp_path / "pii.key")}
    log = tmp_path / "serve.log"
    with serving(pg_url, config, "--workers", "2", "--access-log", env=env, log=log) as base:
        n = 40
        for _ in range(n):  # new connections: spread over both workers
            r = httpx.get(f"{base}/healthz", headers={"Connection": "close"}, timeout=10)
            assert r.status_code == 200
        deadline = time.monotonic() + 10
        while True:  # each worker writes its samples as it counts them
            text = httpx.get(f"{base}/metrics", timeout=10).text
            got = metric(text, "dnd_ledger_requests_total", route="/healthz", method="GET",
                         status="200")  # fmt: skip
            if got >= n or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    # The readiness probes of serving() count too: at least the n requests sent here.
    assert got >= n
    routes = {json.loads(line).get("route") for line in log.read_text().splitlines()
            if line.startswith("{")}  # fmt: skip
    assert "/healthz" in routes


def test_decisions_the_ledger_could_not_make_are_counted_as_unavailable(
    tmp_path: Path, web_ledger: DndLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dnd_ledger.domain.errors import LedgerUnavailable

    with app_client(tmp_path, web_ledger) as c:
        register(c)
        before = c.get("/metrics").text

        def stale() -> None:
            raise LedgerUnavailable("the views are behind the log", lag=3)

        # Views that cannot be shown current: no read confirms them, and the check fails.
        monkeypatch.setattr(web_ledger.freshness, "confirms", lambda _values: False)
        monkeypatch.setattr(web_ledger.freshness, "ensure", stale)
        ask = f"/v1/locations/{L}/contacts/ada/can-send?channel=sms"
        assert c.get(ask, headers=bearer(READ)).status_code == 503
        batch = {"items": [{"location_id": L, "contact_id": "ada", "channel": "sms"}]}
        assert c.post("/v1/can-send:batch", json=batch, headers=bearer(READ)).status_code == 200
        monkeypatch.undo()
        text = c.get("/metrics").text
    labels = {"channel": "sms", "result": "unavailable"}
    assert (
        metric(text, "dnd_ledger_decisions_total", **labels)
        - metric(before, "dnd_ledger_decisions_total", **labels)
        == 2
    )
    allowed = {"channel": "sms", "result": "allowed"}
    assert metric(text, "dnd_ledger_decisions_total", **allowed) == metric(
        before, "dnd_ledger_decisions_total", **allowed
    )


def test_metrics_report_the_change_feed_lag(tmp_path: Path, web_ledger: DndLedger) -> None:
    with app_client(tmp_path, web_ledger) as c:
        register(c)
        body, headers = twilio_request(inbound_path(), inbound_form("STOP"))
        assert c.post(inbound_path(), content=body, headers=headers).status_code == 200
        behind = metric(c.get("/metrics").text, "dnd_ledger_change_feed_lag_events", name="feed")
        page = c.get(f"/v1/locations/{L}/changes", headers=bearer(READ))
        assert page.status_code == 200
        assert page.json()["changes"]  # reading the feed derives it up to the log
        after = metric(c.get("/metrics").text, "dnd_ledger_change_feed_lag_events", name="feed")
    assert behind > 0
    assert after == 0
