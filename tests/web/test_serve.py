"""``dnd-ledger serve`` as a real process on a free loopback port, driven over HTTP.

Webhooks are signed with the providers' real algorithms, over the configured
public URL (not the address the server listens on, as behind a proxy). SQLite
runs one process; PostgreSQL runs two worker processes sharing the ledger and
the Mailgun replay cache.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import require_postgres
from tests.web.support import (
    EMAIL,
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
    status_form,
    status_path,
    twilio_request,
    write_config,
)

pytestmark = pytest.mark.slow

EXE = Path(sys.executable).with_name("dnd-ledger")
PUBLIC = "https://ledger.example.test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serving(db: str, config: Path | None, *extra: str, env: dict[str, str] | None = None,
            log: Path) -> Iterator[str]:  # fmt: skip
    """Start ``dnd-ledger serve``, wait for /healthz, yield its base URL, stop it."""
    assert EXE.is_file(), f"console script not installed beside {sys.executable}"
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DND_LEDGER_")} | (
        env or {}
    )
    # Only init creates a ledger; serve refuses a missing one.
    made = subprocess.run([str(EXE), "--db", db, "init"], env=full_env, cwd=log.parent,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert made.returncode == 0, made.stderr
    with log.open("wb") as out:
        with_config = ["--config", str(config)] if config else []
        proc = subprocess.Popen(
            [str(EXE), "--db", db, "serve", *with_config, "--port", str(port),
             "--no-access-log", *extra],
            stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=log.parent,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"serve exited with {proc.returncode}:\n{log.read_text()}")
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"serve did not answer within 30s:\n{log.read_text()}")
                time.sleep(0.1)
            yield base
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert proc.returncode in (0, -signal.SIGINT), log.read_text()


def story(base: str) -> None:
    """Register, STOP over Twilio twice, bounce over Mailgun twice; read it back."""
    with httpx.Client(base_url=base, timeout=10) as http:
        r = http.post(
            f"/v1/locations/{L}/contacts",
            json={"contact_id": "ada", "phones": [PHONE], "emails": [EMAIL]},
            headers=bearer(WRITE),
        )
        assert r.status_code == 200, r.text

        body, headers = twilio_request(inbound_path(), inbound_form("STOP", sid="SMe2e1"),
                                       public_url=PUBLIC)  # fmt: skip
        first = http.post(inbound_path(), content=body, headers=headers)
        second = http.post(inbound_path(), content=body, headers=headers)
        assert (first.status_code, second.status_code) == (200, 200)
        assert first.text == second.text == "<Response/>"
        assert first.headers["content-type"].startswith("text/xml")
        assert [first.headers["x-ledger-result"], second.headers["x-ledger-result"]] == [
            "appended",
            "duplicate",
        ]

        body, headers = twilio_request(status_path(), status_form("SMe2e2", "63014"),
                                       public_url=PUBLIC)  # fmt: skip
        assert http.post(status_path(), content=body, headers=headers).json()["result"] == (
            "appended"
        )

        now = int(time.time())
        signed = mailgun_body(mailgun_event(at=now - 5), timestamp=now)
        json_type = {"Content-Type": "application/json"}
        assert http.post(mailgun_path(), content=signed, headers=json_type).status_code == 200
        replay = http.post(mailgun_path(), content=signed, headers=json_type)
        assert replay.status_code == 403

        forged_body, forged = twilio_request(inbound_path(), inbound_form("START", sid="SMx"),
                                             public_url=f"http://127.0.0.1:{base.rsplit(':')[-1]}")  # fmt: skip
        assert http.post(inbound_path(), content=forged_body, headers=forged).status_code == 403

        status = http.get(f"/v1/locations/{L}/contacts/ada/dnd", headers=bearer(READ)).json()
        assert status["dnd"] == "partial"
        assert status["channels"]["sms"]["status"] == "permanent"
        assert status["channels"]["whatsapp"]["status"] == "permanent"
        assert status["channels"]["email"]["status"] == "active"
        decision = http.get(
            f"/v1/locations/{L}/contacts/ada/can-send",
            params={"channel": "sms", "mode": "manual"},
            headers=bearer(READ),
        ).json()
        assert decision["allowed"] is False
        assert decision["event"] == "OptOutKeyword"

        audit = http.get(
            f"/v1/locations/{L}/audit", params={"contact_id": "ada"}, headers=bearer(READ)
        ).json()
        names = [row["event"] for row in audit]
        assert names.count("OptOutKeyword") == 1  # the same signed request, twice: one event
        assert names.count("MailgunPermanentFailure") == 1
        assert names.count("WhatsAppBlocked63014") == 1
        page = http.get(f"/v1/locations/{L}/contacts/ada/audit.html", headers=bearer(READ))
        assert page.status_code == 200
        assert "permanent DND" in page.text


def test_serve_on_sqlite_end_to_end(tmp_path: Path) -> None:
    config = write_config(tmp_path, public_url=PUBLIC)
    db = str(tmp_path / "ledger.db")
    with serving(db, config, log=tmp_path / "serve.log") as base:
        story(base)
    # The CLI reads what the service wrote.
    out = subprocess.run(
        [str(EXE), "--db", db, "history", L, "ada", "--json"],
        capture_output=True, text=True, check=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("DND_LEDGER_")},
    )  # fmt: skip
    assert out.stdout.count('"OptOutKeyword"') == 1


def test_serve_refuses_placeholder_secrets_as_a_process(tmp_path: Path) -> None:
    config = tmp_path / "ledger.toml"
    config.write_text(
        'public_url = "https://ledger.example.com"\n[locations.loc-1]\n'
        'twilio_auth_token = "<token>"\n'
    )
    out = subprocess.run(
        [str(EXE), "--db", str(tmp_path / "l.db"), "serve", "--config", str(config)],
        capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("DND_LEDGER_")},
    )  # fmt: skip
    assert out.returncode == 1
    assert out.stderr.startswith("Error: ")
    assert "twilio_auth_token is a placeholder" in out.stderr


def test_serve_dev_without_a_config_uses_the_listen_address(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    with serving(str(tmp_path / "ledger.db"), None, "--dev", log=log) as base:
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok", "database": "sqlite"}
        r = httpx.get(f"{base}/v1/locations/{L}/contacts/ada/dnd", headers=bearer(READ))
        assert r.status_code == 401  # no tokens configured: nobody gets in
    text = log.read_text()
    assert f"public URL {base}" in text
    assert "no [[tokens]]" in text


@pytest.mark.postgres
def test_serve_on_postgres_with_two_workers(tmp_path: Path, pg_url: str) -> None:
    require_postgres()
    config = write_config(tmp_path, public_url=PUBLIC)
    key_file = tmp_path / "pii.key"
    env = {"DND_LEDGER_PII_KEY_FILE": str(key_file)}
    with serving(pg_url, config, "--workers", "2", env=env, log=tmp_path / "serve.log") as base:
        story(base)
        # Many replays of one Mailgun token, spread over both workers: all refused.
        now = int(time.time())
        signed = mailgun_body(mailgun_event(at=now, event_id="ev-2"), timestamp=now)
        with httpx.Client(base_url=base, timeout=10) as http:
            codes = [
                http.post(
                    mailgun_path(),
                    content=signed,
                    headers={"Content-Type": "application/json", "Connection": "close"},
                ).status_code
                for _ in range(6)
            ]
        # Keep-alive requests to a worker answer at once: no Nagle/delayed-ACK stall
        # (~40 ms each) on the sockets the supervisor hands its workers.
        with httpx.Client(base_url=base, timeout=10) as http:
            took = []
            for _ in range(15):
                t0 = time.perf_counter()
                assert http.get("/healthz").status_code == 200
                took.append(time.perf_counter() - t0)
    assert codes == [200, 403, 403, 403, 403, 403]
    assert sorted(took)[len(took) // 2] < 0.030, took
    assert "2 workers" in (tmp_path / "serve.log").read_text()
