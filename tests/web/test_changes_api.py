"""GET /v1/locations/{location}/changes: the change feed over HTTP."""

from __future__ import annotations

import threading
import time

from fastapi.testclient import TestClient

from dnd_ledger import commands as cmd
from dnd_ledger.application import DndLedger
from dnd_ledger.domain.values import Channel
from tests.web.support import LOC2_READ, PHONE, READ, WRITE, L, bearer

PATH = f"/v1/locations/{L}/changes"


def test_changes_need_the_read_role_for_the_location(client: TestClient) -> None:
    assert client.get(PATH).status_code == 401
    assert client.get(PATH, headers=bearer(WRITE)).status_code == 403
    assert client.get(PATH, headers=bearer(LOC2_READ)).status_code == 403


def test_a_page_after_a_cursor(client: TestClient, web_ledger: DndLedger) -> None:
    web_ledger.execute(cmd.RegisterContact(L, "ada", (PHONE,)))
    web_ledger.execute(cmd.SetDnd(L, "ada", (Channel.SMS, Channel.EMAIL), "alice"))
    web_ledger.execute(cmd.ReceiveInbound(L, Channel.SMS, PHONE, "STOP", "SM1"))
    r = client.get(PATH, headers=bearer(READ))
    assert r.status_code == 200
    body = r.json()
    assert [(x["channel"], x["before"], x["after"]) for x in body["changes"]] == [
        ("sms", "inactive", "active"),
        ("email", "inactive", "active"),
        ("sms", "active", "permanent"),
    ]
    assert body["next"] == 3
    r = client.get(PATH, params={"after": 1, "limit": 1}, headers=bearer(READ))
    assert [x["id"] for x in r.json()["changes"]] == [2]
    assert client.get(PATH, params={"after": 3}, headers=bearer(READ)).json() == {
        "changes": [],
        "next": 3,
    }


def test_bad_cursors_limits_and_waits_are_422(client: TestClient) -> None:
    for params in ({"after": -1}, {"after": "x"}, {"after": 2**63}, {"after": 10**23},
                   {"limit": 0}, {"limit": 5000}, {"wait": 31}):  # fmt: skip
        assert client.get(PATH, params=params, headers=bearer(READ)).status_code == 422, params


def test_a_long_poll_answers_when_a_change_commits(
    client: TestClient, web_ledger: DndLedger
) -> None:
    web_ledger.execute(cmd.RegisterContact(L, "ada", (PHONE,)))

    def later() -> None:
        time.sleep(0.5)
        web_ledger.execute(cmd.SetDnd(L, "ada", (Channel.CALL,), "alice"))

    thread = threading.Thread(target=later)
    thread.start()
    started = time.monotonic()
    r = client.get(PATH, params={"wait": 10}, headers=bearer(READ))
    thread.join()
    assert [(x["channel"], x["after"]) for x in r.json()["changes"]] == [("call", "active")]
    assert time.monotonic() - started < 5
