"""The decision routes' fast path answers exactly as the FastAPI routes behind it.

Each request goes to two apps on one ledger: the service as built, and the same
service with the fast routes removed (the FastAPI routes alone). Status, body
bytes and the headers a client acts on must be the same, for the well-formed
requests the fast path answers and for every kind of refusal it hands on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from dnd_ledger import commands as cmd
from dnd_ledger.application import DndLedger
from dnd_ledger.domain.values import Channel
from dnd_ledger.settings import Settings
from dnd_ledger.web import bare_asgi, fastpath, front
from dnd_ledger.web.app import create_app
from tests.conftest import poison_opt_outs
from tests.web.support import L2, LOC2_READ, PHONE, READ, WRITE, L, bearer

BASE = f"/v1/locations/{L}/contacts"
BATCH = "/v1/can-send:batch"
JSON_READ = {"Content-Type": "application/json", **bearer(READ)}
HEADERS = ("content-type", "www-authenticate", "retry-after", "allow", "cache-control")


def without_fast_routes(app: FastAPI) -> FastAPI:
    app.router.routes[:] = [r for r in app.router.routes if not isinstance(r, fastpath._FastRoute)]
    return app


@pytest.fixture
def pair(web_ledger: DndLedger, web_config: Settings) -> Iterator[tuple[TestClient, TestClient]]:
    web_ledger.execute(cmd.RegisterContact(L, "ada", phones=(PHONE,)))
    web_ledger.execute(cmd.RegisterContact(L, "bob", phones=("+14155550101",)))
    web_ledger.execute(cmd.SetDnd(L, "bob", (Channel.EMAIL,), "alice"))
    web_ledger.execute(cmd.ReceiveInbound(L, Channel.SMS, PHONE, "STOP", "SM1"))
    fast = create_app(web_ledger, web_config)
    slow = without_fast_routes(create_app(web_ledger, web_config))
    with TestClient(fast) as f, TestClient(slow) as s:
        yield f, s


def items(*triples: tuple[str, str, str], **extra: Any) -> dict[str, Any]:
    return {
        "items": [
            {"location_id": loc, "contact_id": who, "channel": ch, **extra}
            for loc, who, ch in triples
        ]
    }


GETS: list[tuple[str, dict[str, str]]] = [
    (f"{BASE}/ada/can-send?channel=sms", bearer(READ)),
    (f"{BASE}/ada/can-send?channel=email&mode=manual", bearer(READ)),
    (f"{BASE}/ada/can-send?channel=sms&mode=manual&direction=inbound", bearer(READ)),
    (f"{BASE}/bob/can-send?channel=email", bearer(READ)),
    (f"{BASE}/bob/can-send?direction=outbound&channel=call", bearer(READ)),
    (f"{BASE}/nobody/can-send?channel=sms", bearer(READ)),
    (f"{BASE}/ada/can-send", bearer(READ)),
    (f"{BASE}/ada/can-send?channel=SMS", bearer(READ)),
    (f"{BASE}/ada/can-send?channel=sms&channel=email", bearer(READ)),
    (f"{BASE}/ada/can-send?channel=sms&mode=robot", bearer(READ)),
    (f"{BASE}/ada/can-send?channel=sms&as_of=2020-01-01T00:00:00Z", bearer(READ)),
    (f"{BASE}/ada/can-send?channel=sms&as_of=yesterday", bearer(READ)),
    (f"{BASE}/ada/can-send?channel=sms&extra=1", bearer(READ)),
    (f"{BASE}/ada/can-send?channel=sms", {}),
    (f"{BASE}/ada/can-send?channel=sms", {"Authorization": "Basic abc"}),
    (f"{BASE}/ada/can-send?channel=sms", bearer("not-a-token")),
    (f"{BASE}/ada/can-send?channel=sms", bearer(WRITE)),
    (f"{BASE}/ada/can-send?channel=sms", bearer(LOC2_READ)),
    (f"{BASE}/{'x' * 129}/can-send?channel=sms", bearer(READ)),
    (f"{BASE}/ada%E2%80%AE/can-send?channel=sms", bearer(READ)),
    (f"{BASE}/ada%07/can-send?channel=sms", bearer(READ)),
    (f"{BASE}/ada/can-send?channel=s%6Ds&mode=manual", bearer(READ)),
    (f"{BASE}/ada/can-send?channel=sms&mode=manual%1B", bearer(READ)),
    (f"{BASE}/ada/can-send?channel=sms&&mode=manual", bearer(READ)),
    (f"{BASE}/ada/can-send?channel=sms&mode", bearer(READ)),
]

POSTS: list[tuple[bytes, dict[str, str]]] = [
    (json.dumps(items((L, "ada", "sms"), (L, "bob", "email"), (L, "nobody", "call"))).encode(),
     bearer(READ)),
    (json.dumps(items((L, "ada", "sms"), mode="manual", direction="inbound")).encode(),
     bearer(READ)),
    (json.dumps(items((L, "ada", "sms"), (L2, "ada", "sms"))).encode(), bearer(READ)),
    (json.dumps(items((L, "ada", "sms"))).encode(), bearer(LOC2_READ)),
    (json.dumps(items((L, "ada", "sms"))).encode(), bearer(WRITE)),
    (json.dumps(items((L, "ada", "sms"))).encode(), {}),
    (json.dumps(items((L, "ada\u202e", "sms"))).encode(), bearer(READ)),
    (json.dumps(items((L, "ada", "telegram"))).encode(), bearer(READ)),
    (json.dumps(items((L, "", "sms"))).encode(), bearer(READ)),
    (json.dumps(items((L, "x" * 129, "sms"))).encode(), bearer(READ)),
    (json.dumps(items((L, "ada", "sms"), colour="red")).encode(), bearer(READ)),
    (json.dumps({"items": []}).encode(), bearer(READ)),
    (json.dumps({"items": [], "more": 1}).encode(), bearer(READ)),
    (json.dumps({"items": [{"location_id": L, "contact_id": 7, "channel": "sms"}]}).encode(),
     bearer(READ)),
    (json.dumps(items(*[(L, "ada", "sms")] * 1001)).encode(), bearer(READ)),
    (b"[1, 2", bearer(READ)),
    (b"\xff\xfe", bearer(READ)),
    (json.dumps(items((L, "ada", "sms"))).encode(), {**bearer(READ), "Content-Type": "text/plain"}),
]  # fmt: skip


def same(a: Any, b: Any) -> None:
    assert (a.status_code, a.content) == (b.status_code, b.content)
    for name in HEADERS:
        assert a.headers.get(name) == b.headers.get(name), name


@pytest.mark.parametrize(("url", "headers"), GETS)
def test_can_send_answers_as_the_fastapi_route(
    pair: tuple[TestClient, TestClient], url: str, headers: dict[str, str]
) -> None:
    fast, slow = pair
    same(fast.get(url, headers=headers), slow.get(url, headers=headers))


@pytest.mark.parametrize(("body", "headers"), POSTS)
def test_batch_answers_as_the_fastapi_route(
    pair: tuple[TestClient, TestClient], body: bytes, headers: dict[str, str]
) -> None:
    fast, slow = pair
    headers = {"Content-Type": "application/json", **headers}
    same(fast.post(BATCH, content=body, headers=headers),
         slow.post(BATCH, content=body, headers=headers))  # fmt: skip


def test_other_methods_on_the_decision_paths_are_405_as_before(
    pair: tuple[TestClient, TestClient],
) -> None:
    fast, slow = pair
    for method, url in (("POST", f"{BASE}/ada/can-send?channel=sms"), ("GET", BATCH)):
        a = fast.request(method, url, headers=bearer(READ))
        assert a.status_code == 405
        same(a, slow.request(method, url, headers=bearer(READ)))


def test_well_formed_requests_are_answered_by_the_fast_path(
    pair: tuple[TestClient, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    answered: list[Any] = []
    respond = bare_asgi.respond

    async def counting(send: Any, data: Any, *extra: Any) -> None:
        answered.append(data)
        await respond(send, data, *extra)

    monkeypatch.setattr(fastpath, "respond", counting)
    monkeypatch.setattr(front, "respond", counting)
    fast, _ = pair
    assert fast.get(GETS[0][0], headers=bearer(READ)).json()["allowed"] is False
    r = fast.post(BATCH, content=POSTS[0][0], headers=JSON_READ)
    assert r.status_code == 200
    assert len(answered) == 2
    fast.get(f"{BASE}/ada/can-send?channel=sms&as_of=2020-01-01T00:00:00Z", headers=bearer(READ))
    assert len(answered) == 2  # handed to the FastAPI route


def test_a_write_acknowledged_just_before_is_in_the_next_decision(
    pair: tuple[TestClient, TestClient], web_ledger: DndLedger
) -> None:
    fast, _ = pair
    url = f"{BASE}/ada/can-send?channel=email"
    assert fast.get(url, headers=bearer(READ)).json()["allowed"] is True
    r = fast.post(
        f"{BASE}/ada/dnd",
        json={"action": "set", "channels": ["email"], "actor": "alice"},
        headers=bearer(WRITE),
    )
    assert r.status_code == 200
    assert fast.get(url, headers=bearer(READ)).json()["allowed"] is False


def test_stuck_views_fail_closed_as_the_fastapi_route(
    pair: tuple[TestClient, TestClient], web_ledger: DndLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, slow = pair
    poison_opt_outs(monkeypatch)
    web_ledger.execute(cmd.ReceiveInbound(L, Channel.SMS, "+14155550101", "STOP", "SM2"))
    url = f"{BASE}/bob/can-send?channel=sms"
    a = fast.get(url, headers=bearer(READ))
    assert a.status_code == 503
    same(a, slow.get(url, headers=bearer(READ)))
    body = POSTS[0][0]
    b = fast.post(BATCH, content=body, headers=JSON_READ)
    assert all(x["error"]["status"] == 503 for x in b.json()["results"])
    same(b, slow.post(BATCH, content=body, headers=JSON_READ))


def test_the_front_steps_aside_for_other_middleware(
    web_ledger: DndLedger, web_config: Settings
) -> None:
    web_ledger.execute(cmd.RegisterContact(L, "ada", phones=(PHONE,)))
    app = create_app(web_ledger, web_config)
    seen: list[str] = []

    @app.middleware("http")
    async def log(request: Any, call_next: Any) -> Any:
        seen.append(request.url.path)
        return await call_next(request)

    with TestClient(app) as c:
        r = c.get(f"{BASE}/ada/can-send?channel=sms", headers=bearer(READ))
    assert r.json()["allowed"] is True
    assert r.headers["cache-control"] == "no-store"
    assert seen == [f"{BASE}/ada/can-send"]
