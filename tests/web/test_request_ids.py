"""HTTP: a request id reused with other content is refused and appends nothing (issue 12)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from dnd_ledger import commands as cmd
from dnd_ledger.application import DndLedger
from tests.web.support import EMAIL, PHONE, WRITE, L, bearer

DND = f"/v1/locations/{L}/contacts/ada/dnd"


def test_a_reused_request_id_with_other_content_is_422_and_appends_nothing(
    client: TestClient, web_ledger: DndLedger
) -> None:
    web_ledger.execute(cmd.RegisterContact(L, "ada", phones=(PHONE,), emails=(EMAIL,)))
    set_sms = {"action": "set", "channels": ["sms"], "actor": "alice", "request_id": "r1"}
    assert client.post(DND, json=set_sms, headers=bearer(WRITE)).json()["result"] == "appended"
    events = len(web_ledger.history(L, "ada"))
    clear = {**set_sms, "action": "clear"}
    r = client.post(DND, json=clear, headers=bearer(WRITE))
    assert r.status_code == 422
    assert "request id 'r1' was already used for a different request" in r.json()["detail"]
    assert len(web_ledger.history(L, "ada")) == events
    assert client.post(DND, json=set_sms, headers=bearer(WRITE)).json()["result"] == "duplicate"
    assert web_ledger.status(L, "ada").dnd.value == "partial"
