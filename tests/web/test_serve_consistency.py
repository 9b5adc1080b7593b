"""Read-your-writes across real processes: once a write is acknowledged, no worker and
no new connection answers from before it (``serve`` processes, the CLI as a writer)."""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import require_postgres
from tests.web.support import (
    READ,
    WRITE,
    L,
    bearer,
    inbound_form,
    inbound_path,
    twilio_request,
    write_config,
)
from tests.web.test_serve import EXE, PUBLIC, serving

pytestmark = pytest.mark.slow

CONTACTS = 50


def phone(i: int) -> str:
    return f"+1415555{i:04d}"


def can_send(http: httpx.Client, who: str, channel: str, new_connection: bool) -> bool:
    headers = bearer(READ) | ({"Connection": "close"} if new_connection else {})
    r = http.get(
        f"/v1/locations/{L}/contacts/{who}/can-send", params={"channel": channel}, headers=headers
    )
    assert r.status_code == 200, r.text
    allowed: bool = r.json()["allowed"]
    return allowed


def hammer(clients: list[httpx.Client], pool: ThreadPoolExecutor, who: str, channel: str) -> int:
    """Many can-sends at once, over kept-alive connections and new ones: how many allowed."""
    jobs = [
        pool.submit(can_send, http, who, channel, new)
        for http in clients
        for new in (False, True, False)
    ]
    return sum(job.result() for job in jobs)


def register_and_warm(base: str, clients: list[httpx.Client], pool: ThreadPoolExecutor) -> None:
    with httpx.Client(base_url=base, timeout=10) as http:
        for i in range(CONTACTS):
            r = http.post(
                f"/v1/locations/{L}/contacts",
                json={"contact_id": f"c{i}", "phones": [phone(i)]},
                headers=bearer(WRITE),
            )
            assert r.status_code == 200, r.text
    for i in range(CONTACTS):  # every worker now remembers "allowed" for most contacts
        assert hammer(clients, pool, f"c{i}", "sms") == 3 * len(clients)


@pytest.mark.postgres
def test_no_worker_answers_allowed_after_an_acknowledged_stop_or_dnd_set(
    tmp_path: Path, pg_url: str
) -> None:
    require_postgres()
    config = write_config(tmp_path, public_url=PUBLIC)
    env = {"DND_LEDGER_PII_KEY_FILE": str(tmp_path / "pii.key")}
    log = tmp_path / "serve.log"
    with serving(pg_url, config, "--workers", "4", env=env, log=log) as base:
        clients = [httpx.Client(base_url=base, timeout=20) for _ in range(8)]
        pool = ThreadPoolExecutor(max_workers=16)
        try:
            register_and_warm(base, clients, pool)
            allowed_after_stop = allowed_after_set = 0
            writer = clients[0]
            for i in range(CONTACTS):
                body, headers = twilio_request(
                    inbound_path(), inbound_form("STOP", sid=f"SMstop{i}", sender=phone(i)),
                    public_url=PUBLIC,
                )  # fmt: skip
                r = writer.post(inbound_path(), content=body, headers=headers)
                assert r.status_code == 200
                assert r.headers["x-ledger-result"] == "appended"
                allowed_after_stop += hammer(clients, pool, f"c{i}", "sms")

                assert hammer(clients, pool, f"c{i}", "email") == 3 * len(clients)
                r = writer.post(
                    f"/v1/locations/{L}/contacts/c{i}/dnd",
                    json={"action": "set", "channels": ["email"], "actor": "alice"},
                    headers=bearer(WRITE),
                )
                assert r.status_code == 200, r.text
                allowed_after_set += hammer(clients, pool, f"c{i}", "email")
        finally:
            pool.shutdown()
            for http in clients:
                http.close()
    assert (allowed_after_stop, allowed_after_set) == (0, 0)
    assert "4 workers" in log.read_text()


def test_a_cli_stop_is_seen_by_the_service_once_the_cli_has_exited(tmp_path: Path) -> None:
    config = write_config(tmp_path, public_url=PUBLIC)
    db = str(tmp_path / "ledger.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DND_LEDGER_")}
    with serving(db, config, log=tmp_path / "serve.log") as base:
        clients = [httpx.Client(base_url=base, timeout=20) for _ in range(2)]
        pool = ThreadPoolExecutor(max_workers=4)
        try:
            with httpx.Client(base_url=base, timeout=10) as http:
                for i in range(3):
                    r = http.post(
                        f"/v1/locations/{L}/contacts",
                        json={"contact_id": f"c{i}", "phones": [phone(i)]},
                        headers=bearer(WRITE),
                    )
                    assert r.status_code == 200
            for i in range(3):
                assert hammer(clients, pool, f"c{i}", "sms") == 6  # remembered: allowed
                subprocess.run(
                    [str(EXE), "--db", db, "inbound", L, "--channel", "sms", "--from", phone(i),
                     "--body", "STOP", "--message-sid", f"SMcli{i}"],
                    check=True, capture_output=True, env=env, timeout=60,
                )  # fmt: skip
                assert hammer(clients, pool, f"c{i}", "sms") == 0
        finally:
            pool.shutdown()
            for http in clients:
                http.close()
