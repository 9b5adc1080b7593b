"""``serve --workers 4`` on PostgreSQL under 64 concurrent connections: every request
answered, and the processes together hold no more database connections than the
documented bound, ``workers * (DND_LEDGER_PG_POOL + WRITE_CONNECTIONS)``."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from dnd_ledger.pg_reads import WRITE_CONNECTIONS
from tests.conftest import PG_ADMIN_URL, require_postgres
from tests.web.support import READ, WRITE, L, bearer, write_config
from tests.web.test_serve import PUBLIC, serving

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

WORKERS, POOL, CLIENTS, EACH, CONTACTS = 4, 3, 64, 25, 20


def connections_to(dbname: str) -> int:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (dbname,)
        ).fetchone()
    return int(row[0]) if row else 0


def test_four_workers_at_64_connections_answer_all_within_the_pool_bound(
    tmp_path: Path, pg_url: str
) -> None:
    require_postgres()
    config = write_config(tmp_path, public_url=PUBLIC)
    env = {"DND_LEDGER_PII_KEY_FILE": str(tmp_path / "pii.key"), "DND_LEDGER_PG_POOL": str(POOL)}
    dbname = pg_url.rsplit("/", 1)[1]
    log = tmp_path / "serve.log"
    with serving(pg_url, config, "--workers", str(WORKERS), env=env, log=log) as base:
        with httpx.Client(base_url=base, timeout=30) as http:
            for i in range(CONTACTS):
                r = http.post(f"/v1/locations/{L}/contacts", json={"contact_id": f"c{i}"},
                              headers=bearer(WRITE))  # fmt: skip
                assert r.status_code == 200, r.text
        most = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                most[0] = max(most[0], connections_to(dbname))
                done.wait(0.05)

        start = threading.Barrier(CLIENTS)

        def client(k: int) -> list[int]:
            with httpx.Client(base_url=base, timeout=30) as http:
                start.wait()
                return [
                    http.get(f"/v1/locations/{L}/contacts/c{(k + j) % CONTACTS}/can-send",
                             params={"channel": "sms"}, headers=bearer(READ)).status_code
                    for j in range(EACH)
                ]  # fmt: skip

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
                statuses = [s for got in pool.map(client, range(CLIENTS)) for s in got]
        finally:
            done.set()
            sampler.join()
    assert statuses.count(200) == CLIENTS * EACH, {s: statuses.count(s) for s in set(statuses)}
    assert 0 < most[0] <= WORKERS * (POOL + WRITE_CONNECTIONS)
