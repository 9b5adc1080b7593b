"""Sessions end at sign-out for every worker, and cookie forms refuse other sites (item 6).

Sessions live in the ledger's database, so every test here runs on SQLite and
PostgreSQL; "two workers" are two ledgers (two connections) over one database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.settings import Settings
from dnd_ledger.web.app import create_app
from dnd_ledger.web.auth import SESSION_COOKIE
from tests.conftest import SHARED_DATABASES, Clock
from tests.web.support import PHONE, PUBLIC_URL, READ, L

PAGE = f"/v1/locations/{L}/contacts/ada/audit.html"
SAME = {"Origin": PUBLIC_URL}


KEY = b"web-test-key-0123456789"


#: Sessions are a table every worker shares: each test runs on both shared databases.
pytestmark = SHARED_DATABASES


@pytest.fixture
def web_ledger(db_url: str, clock: Clock) -> Iterator[DndLedger]:
    """The ledger of these tests, on each backend (overrides the SQLite-only one)."""
    app = DndLedger(db_url, pii_key=KEY, clock=clock)
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def ada(web_ledger: DndLedger) -> None:
    web_ledger.execute(c.RegisterContact(L, "ada", phones=(PHONE,)))


def browser(ledger: DndLedger, config: Settings) -> TestClient:
    return TestClient(create_app(ledger, config), base_url="https://testserver")


def sign_in(client: TestClient) -> str:
    r = client.post("/v1/sign-in", data={"token": READ, "next": PAGE}, headers=SAME,
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text
    cookie = client.cookies.get(SESSION_COOKIE)
    assert cookie
    return cookie


@pytest.fixture
def two_workers(
    web_ledger: DndLedger, web_config: Settings, db_url: str, clock: Clock
) -> Iterator[tuple[TestClient, TestClient]]:
    """Two apps over one ledger database, each with its own connections, as two
    ``serve --workers`` processes share it."""
    other = DndLedger(db_url, pii_key=KEY, clock=clock)
    try:
        with browser(web_ledger, web_config) as a, browser(other, web_config) as b:
            yield a, b
    finally:
        other.close()


def test_sign_out_ends_the_session_for_every_worker(
    two_workers: tuple[TestClient, TestClient], ada: None
) -> None:
    a, b = two_workers
    cookie = sign_in(a)
    b.cookies.set(SESSION_COOKIE, cookie)
    assert a.get(PAGE).status_code == 200
    assert b.get(PAGE).status_code == 200  # the other worker knows the session

    r = b.post("/v1/sign-out", headers=SAME, follow_redirects=False)
    assert r.status_code == 303
    # The old cookie, replayed anywhere, opens nothing any more (before: 8 more hours).
    for client in (a, b):
        client.cookies.set(SESSION_COOKIE, cookie)
        assert client.get(PAGE).status_code == 401
        assert client.get(f"/v1/locations/{L}/audit?format=csv").status_code == 401


def test_sessions_are_stored_only_as_hashes(
    web_ledger: DndLedger, web_config: Settings, ada: None
) -> None:
    with browser(web_ledger, web_config) as client:
        cookie = sign_in(client)
    session_id = cookie.split(".")[1]
    stored = web_ledger.sql.fetchall("SELECT id, token_name FROM dnd_web_sessions")
    assert len(stored) == 1
    assert stored[0][1] == "reader"
    assert session_id not in stored[0][0]


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "https://evil.example"}, {"Origin": "null"},
     {"Referer": "https://evil.example/login"}, {"Origin": "http://ledger.example.test"}],
)  # fmt: skip
def test_cross_site_sign_in_and_sign_out_are_refused(
    web_ledger: DndLedger, web_config: Settings, ada: None, headers: dict[str, str]
) -> None:
    with browser(web_ledger, web_config) as client:
        r = client.post("/v1/sign-in", data={"token": READ, "next": PAGE}, headers=headers,
                        follow_redirects=False)  # fmt: skip
        assert r.status_code == 403
        assert "set-cookie" not in r.headers
        cookie = sign_in(client)
        r = client.post("/v1/sign-out", headers=headers, follow_redirects=False)
        assert r.status_code == 403
        client.cookies.set(SESSION_COOKIE, cookie)
        assert client.get(PAGE).status_code == 200  # a forced sign-out did not happen


def test_same_origin_by_referer_is_accepted(
    web_ledger: DndLedger, web_config: Settings, ada: None
) -> None:
    with browser(web_ledger, web_config) as client:
        r = client.post("/v1/sign-in", data={"token": READ, "next": PAGE},
                        headers={"Referer": f"{PUBLIC_URL}/v1/sign-in"}, follow_redirects=False)  # fmt: skip
        assert r.status_code == 303
