"""The audit page on both timelines, its numbering, and blocks through a shared address."""

from __future__ import annotations

import re
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from dnd_ledger import commands as cmd
from dnd_ledger.application import DndLedger
from dnd_ledger.domain.values import AddressKind, Channel
from dnd_ledger.notary.offline import verify_bundle
from dnd_ledger.notary.signed_note import SigningKey, format_vkey, parse_vkey
from dnd_ledger.settings import Settings
from dnd_ledger.web.app import create_app
from tests.conftest import T0, Clock
from tests.web.support import PHONE, READ, READ_SUPPORT, L, bearer

PAGE = f"/v1/locations/{L}/contacts/ada/audit.html"


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def story(ledger: DndLedger, clock: Clock) -> None:
    ledger.execute(cmd.RegisterContact(L, "ada", phones=(PHONE,)))
    ledger.execute(cmd.RegisterContact(L, "bob", phones=(PHONE,)))
    clock.advance(hours=1)
    ledger.execute(cmd.ReceiveInbound(L, Channel.SMS, PHONE, "STOP", "SM1"))


def test_as_of_shows_the_state_then(
    client: TestClient, web_ledger: DndLedger, clock: Clock
) -> None:
    story(web_ledger, clock)
    now = text_of(client.get(PAGE, headers=bearer(READ)).text)
    assert "SMS permanent DND" in now
    before = T0.replace(minute=30).isoformat()
    then = client.get(PAGE, params={"as_of": before}, headers=bearer(READ))
    assert then.status_code == 200
    text = text_of(then.text)
    assert "SMS no DND" in text
    assert "OptOutKeyword" not in text  # not yet occurred then
    known = text_of(client.get(PAGE, params={"known_at": before}, headers=bearer(READ)).text)
    assert "SMS no DND" in known
    bad = client.get(PAGE, params={"as_of": "yesterday"}, headers=bearer(READ))
    assert bad.status_code == 422


def test_events_are_numbered_as_history_numbers_them(
    client: TestClient, web_ledger: DndLedger, clock: Clock
) -> None:
    story(web_ledger, clock)
    html = client.get(PAGE, headers=bearer(READ)).text
    rows = re.findall(r'<tr>\s*<td class="mono">(\d+)</td>', html)
    assert rows == [str(h.version) for h in web_ledger.history(L, "ada")]
    assert "log position" in html


def test_a_block_through_a_shared_address_names_the_reference(
    client: TestClient, web_ledger: DndLedger, clock: Clock
) -> None:
    story(web_ledger, clock)
    ref = web_ledger.keyring.ref(AddressKind.PHONE, PHONE)
    text = text_of(client.get(PAGE, headers=bearer(READ)).text)
    assert f"Came through address {ref}, which bob also holds" in text
    assert PHONE not in text


def test_the_page_shows_the_notary_and_links_a_bundle_that_verifies(
    tmp_path: Path, web_config: Settings, clock: Clock
) -> None:
    key = SigningKey("ledger.example/dnd", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
    ledger = DndLedger(str(tmp_path / "signed.db"), pii_key=b"web-test-key-0123456789",
                       clock=clock, signing_key=key)  # fmt: skip
    try:
        story(ledger, clock)
        with TestClient(create_app(ledger, web_config)) as client:
            before = text_of(client.get(PAGE, headers=bearer(READ)).text)
            assert "No checkpoint yet" in before
            r = client.get(f"/v1/locations/{L}/contacts/ada/bundle", headers=bearer(READ))
            assert r.status_code == 200, r.text
            assert "ada.bundle.json" in r.headers["content-disposition"]
            result = verify_bundle(
                r.content, parse_vkey(format_vkey(key.name, key.private_key.public_key()))
            )
            assert result is not None
            after = text_of(client.get(PAGE, headers=bearer(READ)).text)
            assert f"signed by {key.name}" in after
            assert "It covers every event of this contact" in after
            assert (
                'href="/v1/locations/loc-1/contacts/ada/bundle"'
                in client.get(PAGE, headers=bearer(READ)).text
            )
    finally:
        ledger.close()


def test_the_bundle_needs_a_signing_key(
    client: TestClient, web_ledger: DndLedger, clock: Clock
) -> None:
    story(web_ledger, clock)
    r = client.get(f"/v1/locations/{L}/contacts/ada/bundle", headers=bearer(READ))
    assert r.status_code == 422
    assert "DND_LEDGER_SIGNING_KEY" in r.json()["detail"]


def test_support_sessions_see_address_values_and_read_tokens_only_references(
    client: TestClient, web_ledger: DndLedger, clock: Clock
) -> None:
    story(web_ledger, clock)
    ref = web_ledger.keyring.ref(AddressKind.PHONE, PHONE)
    read = client.get(PAGE, headers=bearer(READ)).text
    assert ref in read
    assert PHONE not in read
    both = client.get(PAGE, headers=bearer(READ_SUPPORT)).text
    assert f"{ref}</code> = {PHONE}" in both
