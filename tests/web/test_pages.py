"""The audit page and its sign-in: what a compliance officer sees, and who may see it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from http.cookies import SimpleCookie

import pytest
from fastapi.testclient import TestClient

from dnd_ledger import commands as cmd
from dnd_ledger.application import DndLedger
from dnd_ledger.domain.values import Channel
from dnd_ledger.settings import Settings, load_config
from dnd_ledger.web.app import create_app
from dnd_ledger.web.auth import SESSION_COOKIE, TokenBook
from tests.conftest import Clock
from tests.web.support import EMAIL, L2, LOC2_READ, PHONE, READ, SENDER, WRITE, L, bearer

PAGE = f"/v1/locations/{L}/contacts/ada/audit.html"


@pytest.fixture
def client(web_ledger: DndLedger, web_config: Settings) -> Iterator[TestClient]:
    """Over https, as a browser would reach the public URL: Secure cookies come back."""
    with TestClient(create_app(web_ledger, web_config), base_url="https://testserver") as c:
        yield c


@pytest.fixture
def story(web_ledger: DndLedger, clock: Clock) -> None:
    web_ledger.execute(cmd.RegisterContact(L, "ada", phones=(PHONE,), emails=(EMAIL,)))
    clock.advance(minutes=30)
    web_ledger.execute(cmd.ReceiveInbound(L, Channel.SMS, PHONE, "STOP", "SM1"))
    clock.advance(hours=3)
    # A late webhook: it occurred two hours before the ledger recorded it.
    web_ledger.execute(
        cmd.SetDnd(L, "ada", (Channel.CALL,), "alice", reason="asked by phone",
                   occurred_at=clock.now.replace(hour=clock.now.hour - 2))
    )  # fmt: skip


def sign_in(client: TestClient, token: str, next_url: str = PAGE) -> str:
    r = client.post("/v1/sign-in", data={"token": token, "next": next_url}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return r.headers["set-cookie"]


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_page_shows_six_channels_and_the_timeline(client: TestClient, story: None) -> None:
    r = client.get(PAGE, headers=bearer(READ))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    text = text_of(r.text)
    for label in ("Email", "SMS", "Calls and voicemail", "Facebook Messenger",
                  "Google Business messages", "WhatsApp"):  # fmt: skip
        assert label in text
    assert "permanent DND" in text
    assert "temporary DND" in text
    assert "Do-Not-Disturb: partial" in text
    for column in ("Occurred", "Recorded", "Event", "Source", "Actor", "Effect"):
        assert column in text
    for event in ("Registered", "OptOutKeyword", "DndSetByUser"):
        assert event in text
    assert "2026-11-02 09:30:00 UTC" in text  # STOP occurred (and was recorded) then
    assert "sms: no DND → permanent DND" in text
    assert "key inbound:SM1" in text
    assert "alice" in text
    assert "provider" in text
    assert "late" in text  # the set-by-user event was recorded hours after it occurred
    assert "<script" not in r.text


def test_the_page_is_safe_to_render(client: TestClient, web_ledger: DndLedger) -> None:
    web_ledger.execute(cmd.RegisterContact(L, "<i>x", emails=(EMAIL,)))
    r = client.get(f"/v1/locations/{L}/contacts/%3Ci%3Ex/audit.html", headers=bearer(READ))
    assert r.status_code == 200
    assert "<i>x" not in r.text
    assert "&lt;i&gt;x" in r.text
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src" not in csp  # no scripts at all
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-frame-options"] == "DENY"


def test_without_credentials_the_page_offers_a_sign_in_form(
    client: TestClient, story: None
) -> None:
    r = client.get(PAGE)
    assert r.status_code == 401
    assert '<form class="card" method="post" action="/v1/sign-in">' in r.text
    assert f'name="next" value="{PAGE}"' in r.text
    assert 'type="password"' in r.text
    assert "OptOutKeyword" not in r.text


def test_signing_in_sets_a_strict_http_only_cookie_and_returns_to_the_page(
    client: TestClient, story: None
) -> None:
    r = client.post("/v1/sign-in", data={"token": READ, "next": PAGE}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == PAGE
    assert READ not in r.headers["location"]
    cookie = SimpleCookie()
    cookie.load(r.headers["set-cookie"])
    morsel = cookie[SESSION_COOKIE]
    assert morsel["httponly"]
    assert morsel["samesite"] == "strict"
    assert morsel["secure"]  # the public URL is https
    assert morsel["path"] == "/"
    assert READ not in morsel.value
    page = client.get(PAGE)  # the client keeps the cookie
    assert page.status_code == 200
    assert "OptOutKeyword" in page.text
    assert "signed in as reader" in text_of(page.text)
    csv = client.get(f"/v1/locations/{L}/audit?contact_id=ada&format=csv")
    assert csv.status_code == 200  # the page's download link works with the session
    assert "OptOutKeyword" in csv.text


def test_the_cookie_is_not_secure_behind_an_http_public_url(
    web_ledger: DndLedger, web_config: Settings, story: None
) -> None:
    app = create_app(web_ledger, web_config, public_url="http://127.0.0.1:8000")
    with TestClient(app) as client:
        assert "secure" not in sign_in(client, READ).lower()


@pytest.mark.parametrize(
    ("token", "status", "message"),
    [
        ("wrong", 401, "unknown bearer token"),
        (WRITE, 403, "does not have the &#39;read&#39; role"),
    ],
)
def test_sign_in_refusals(
    client: TestClient, story: None, token: str, status: int, message: str
) -> None:
    r = client.post("/v1/sign-in", data={"token": token, "next": PAGE}, follow_redirects=False)
    assert r.status_code == status
    assert "set-cookie" not in r.headers
    assert message in r.text
    assert f'value="{PAGE}"' in r.text


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/x", "/v1/locations/a/audit", "/\\evil"]
)
def test_sign_in_only_returns_to_audit_pages(client: TestClient, target: str) -> None:
    r = client.post("/v1/sign-in", data={"token": READ, "next": target}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/"


def test_a_tampered_or_expired_session_is_refused(
    client: TestClient, web_config: Settings, story: None
) -> None:
    book: TokenBook = client.app.state.web.tokens  # type: ignore[attr-defined]
    token = book.from_token(READ)
    good = book.new_session(token)
    assert book.from_session(good) == token
    sid, name, expires, mac = good.split(".")[1:]
    forged = f"v2.{sid}.{name}.{int(expires) + 3600}.{mac}"
    unknown = TokenBook(web_config).new_session(token)  # signed, but never stored
    expired = book.new_session(token, now=0)
    for bad in (forged, expired, unknown, "v2.x.y.z.w", good + "x", ""):
        assert book.from_session(bad) is None
        client.cookies.set(SESSION_COOKIE, bad)
        assert client.get(PAGE).status_code == 401


def test_a_session_dies_with_its_token(
    web_ledger: DndLedger, web_config: Settings, story: None, tmp_path: object
) -> None:
    with TestClient(create_app(web_ledger, web_config)) as client:
        book: TokenBook = client.app.state.web.tokens  # type: ignore[attr-defined]
        cookie = book.new_session(book.from_token(READ))
        client.cookies.set(SESSION_COOKIE, cookie)
        assert client.get(PAGE).status_code == 200
    # The same file without the reader token: the cookie opens nothing any more.
    fewer = web_config.model_copy(
        update={"tokens": tuple(t for t in web_config.tokens if t.name != "reader")}
    )
    with TestClient(create_app(web_ledger, fewer)) as client:
        client.cookies.set(SESSION_COOKIE, cookie)
        assert client.get(PAGE).status_code == 401


def test_sign_out_clears_the_cookie(client: TestClient, story: None) -> None:
    sign_in(client, READ)
    assert client.get(PAGE).status_code == 200
    r = client.post("/v1/sign-out", follow_redirects=False)
    assert r.status_code == 303
    assert (
        'dnd_ledger_session=""' in r.headers["set-cookie"] or "Max-Age=0" in r.headers["set-cookie"]
    )
    client.cookies.clear()
    assert client.get(PAGE).status_code == 401


def test_bearer_refusals_on_the_page(
    client: TestClient, web_ledger: DndLedger, story: None
) -> None:
    assert client.get(PAGE, headers=bearer("wrong")).status_code == 401
    assert client.get(PAGE, headers=bearer(WRITE)).status_code == 403
    assert client.get(PAGE, headers=bearer(LOC2_READ)).status_code == 403
    assert client.get(PAGE, headers=bearer(SENDER)).status_code == 200


def test_an_unknown_contact_page_is_404(client: TestClient) -> None:
    r = client.get(f"/v1/locations/{L}/contacts/nobody/audit.html", headers=bearer(READ))
    assert r.status_code == 404
    assert "not registered" in r.text
    assert r.headers["content-type"].startswith("text/html")


def test_the_index_finds_a_contact_page(client: TestClient) -> None:
    index = client.get("/")
    assert index.status_code == 200
    assert 'action="/v1/audit-page"' in index.text
    r = client.get(
        "/v1/audit-page", params={"location_id": L2, "contact_id": "a b&c"}, follow_redirects=False
    )
    assert r.status_code == 303
    assert r.headers["location"] == f"/v1/locations/{L2}/contacts/a%20b%26c/audit.html"
    assert client.get("/v1/sign-in").status_code == 200


def test_the_issue_example_config_runs_under_dev(
    web_ledger: DndLedger, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    monkeypatch.delenv("DND_LEDGER_PUBLIC_URL", raising=False)
    path = Path(str(tmp_path)) / "example.toml"
    path.write_text(
        'public_url = "https://ledger.example.com"\n'
        "[locations.loc-1]\n"
        'twilio_auth_token = "0123456789abcdef0123456789abcdef"\n'
        'mailgun_signing_key = "key-0123456789abcdef0123456789abcdef"\n'
        "[[tokens]]\n"
        'name = "sender-service"\n'
        'sha256 = "<hex SHA-256 of the bearer token>"\n'
        'roles = ["read", "write"]\n'
    )
    config = load_config(path)
    with TestClient(create_app(web_ledger, config, dev=True)) as client:
        assert client.get("/healthz").status_code == 200
        # The placeholder hash matches no token, not even the placeholder text itself.
        r = client.get(PAGE, headers=bearer("<hex SHA-256 of the bearer token>"))
        assert r.status_code == 401
