"""Key rotation: hand-overs signed by both keys; verify follows them from the first key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.conftest import Clock

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.cli.main import cli
from dnd_ledger.domain.errors import InvalidInput
from dnd_ledger.domain.values import Channel
from dnd_ledger.notary.bundle import export_bundle
from dnd_ledger.notary.keychain import KeyChain, handover_key, sign_handover
from dnd_ledger.notary.offline import BundleError, encode_bundle, verify_bundle
from dnd_ledger.notary.records import TIME_PREFIX, format_time
from dnd_ledger.notary.rotation import first_public_key, rotate
from dnd_ledger.notary.signed_note import (
    Checkpoint,
    NoteError,
    SigningKey,
    format_private_key,
    format_vkey,
    parse_vkey,
    sign_checkpoint,
)
from dnd_ledger.notary.verify import verify_ledger


def key(n: int) -> SigningKey:
    return SigningKey("ledger.example/dnd", Ed25519PrivateKey.from_private_bytes(bytes([n]) * 32))


K0, K1, K2 = key(1), key(2), key(3)


def vkey(k: SigningKey) -> str:
    return format_vkey(k.name, k.private_key.public_key())


PII = b"test-key-0123456789abcdef"


def open_ledger(url: str, clock: Clock, k: SigningKey | None) -> DndLedger:
    return DndLedger(url, pii_key=PII, clock=clock, signing_key=k, checkpoint_every=4)


def add(app: DndLedger, clock: Clock, n: int) -> None:
    phone = f"+1415555{n:04d}"
    clock.advance(minutes=1)
    app.execute(c.RegisterContact("loc-1", f"c{n}", (phone,)))
    app.execute(c.ReceiveInbound("loc-1", Channel.SMS, phone, "STOP", f"SM{n}"))


@pytest.fixture
def rotated(db_url: str, clock: Clock) -> Iterator[tuple[DndLedger, bytes]]:
    """Events under K0, a bundle, hand-over to K1, events, hand-over to K2, events."""
    app = open_ledger(db_url, clock, K0)
    try:
        add(app, clock, 1)
        old_bundle = export_bundle(app, "loc-1", "c1")
        add(app, clock, 2)
        clock.advance(minutes=1)
        rotate(app.notary, K1)
        add(app, clock, 3)
        app.notary.checkpoint()
        clock.advance(minutes=1)
        rotate(app.notary, K2)
        add(app, clock, 4)
        app.notary.checkpoint()
        yield app, old_bundle
    finally:
        app.close()


def test_rotating_twice_verifies_the_whole_log_from_the_first_key(
    rotated: tuple[DndLedger, bytes],
) -> None:
    app, _ = rotated
    report = verify_ledger(app, parse_vkey(vkey(K0)))
    assert report.status == "ok", report.to_json()["first_problem"]
    assert report.verified_size == report.tree_size == app.notary.state().size
    assert [k["fingerprint"] for k in report.keys] == [
        report.to_json()["keys"][i]["fingerprint"] for i in range(3)
    ]
    assert len(report.keys) == 3
    handovers = [r for r in app.notary.checkpoints() if r.handover]
    assert len(handovers) == 2
    assert handover_key(handovers[1].body) == parse_vkey(vkey(K2))
    # Signed by both keys: the old one and the new one.
    assert handovers[0].note.count("\n\u2014 ") == 2
    assert app.notary.signing_key == K2
    assert first_public_key(app.notary) == vkey(K0)


def test_the_later_key_alone_is_not_the_start_of_the_chain(
    rotated: tuple[DndLedger, bytes],
) -> None:
    app, _ = rotated
    report = verify_ledger(app, parse_vkey(vkey(K1)))
    assert report.status == "problem"
    assert report.problems[0].kind == "signature"
    assert "does not verify with key ledger.example/dnd" in report.problems[0].message


def test_an_old_bundle_and_a_new_one_verify_with_the_first_key(
    rotated: tuple[DndLedger, bytes],
) -> None:
    app, old_bundle = rotated
    first = parse_vkey(vkey(K0))
    old = verify_bundle(old_bundle, first)
    assert old.handovers == 0
    new = verify_bundle(export_bundle(app, "loc-1", "c4"), first)
    assert new.handovers == 2
    assert new.key_fingerprint != new.first_key_fingerprint
    with pytest.raises(BundleError, match="not by the given key"):
        verify_bundle(export_bundle(app, "loc-1", "c4"), parse_vkey(vkey(K2)))


def retired_checkpoint(app: DndLedger, signer: SigningKey) -> str:
    state = app.notary.state()
    now = app.clock()
    body = Checkpoint(app.notary.origin, state.size, state.range.root(),
                      (TIME_PREFIX + format_time(now),))  # fmt: skip
    return sign_checkpoint(body, signer.name, signer.private_key)


def test_a_checkpoint_signed_only_by_a_retired_key_after_its_handover_is_an_error(
    rotated: tuple[DndLedger, bytes], clock: Clock
) -> None:
    app, _ = rotated
    add(app, clock, 5)
    app.notary.catch_up()
    clock.advance(minutes=1)
    note = retired_checkpoint(app, K0)  # whoever still holds the first key
    state = app.notary.state()
    app.sql.execute("DELETE FROM dnd_notary_checkpoints WHERE size = ?", (state.size,))
    app.sql.execute(
        "INSERT INTO dnd_notary_checkpoints (size, root, note, key_name, key_fingerprint,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?)",
        (state.size, state.range.root().hex(), note, K0.name, "x", format_time(app.clock())),
    )
    report = verify_ledger(app, parse_vkey(vkey(K0)))
    kinds = [p.kind for p in report.problems]
    assert kinds == ["retired-key"], report.to_json()["problems"]
    assert "signed only by the retired key ledger.example/dnd" in report.problems[0].message
    assert "at size" in report.problems[0].message

    # The same in a bundle: its newest checkpoint signed by the retired key is refused.
    doc = json.loads(export_bundle(app, "loc-1", "c5"))
    doc["checkpoint"] = note
    with pytest.raises(BundleError, match="signed only by the retired key"):
        verify_bundle(encode_bundle(doc), parse_vkey(vkey(K0)))


def test_a_notary_still_holding_a_retired_key_signs_nothing_more(
    rotated: tuple[DndLedger, bytes], db_url: str, clock: Clock
) -> None:
    app, _ = rotated
    stale = open_ledger(db_url, clock, K0) if db_url != "memory:" else app
    stale.notary.signing_key = K0
    try:
        add(stale, clock, 6)
        record = stale.notary.checkpoint()
        assert record is not None
        assert not record.signed
        with pytest.raises(InvalidInput, match="already handed over"):
            rotate(stale.notary, key(9))
    finally:
        if stale is not app:
            stale.close()


def test_a_key_cannot_be_handed_over_to_an_earlier_key(rotated: tuple[DndLedger, bytes]) -> None:
    app, _ = rotated
    with pytest.raises(InvalidInput, match="already used"):
        rotate(app.notary, K0)


def test_a_handover_needs_both_signatures() -> None:
    when = TIME_PREFIX + "2026-01-01T00:00:00.000000Z"
    body = Checkpoint("origin.example/log", 3, bytes(32), (when,))
    note = sign_handover(body, (K0.name, K0.private_key), (K1.name, K1.private_key))
    chain = KeyChain(parse_vkey(vkey(K0)))
    assert chain.accept(note).size == 3
    assert chain.current == parse_vkey(vkey(K1))
    # Only the old key's signature: the new key's holder never took over.
    old_only = note[: note.rindex("\u2014 ")]
    with pytest.raises(NoteError, match="is not signed by that key"):
        KeyChain(parse_vkey(vkey(K0))).accept(old_only)
    # Only the new key's signature: the old key never authorised it.
    lines = note.split("\n")
    new_only = "\n".join(lines[:-3] + lines[-2:])
    with pytest.raises(NoteError, match="does not verify with key"):
        KeyChain(parse_vkey(vkey(K0))).accept(new_only)


def run(args: list[str], env: dict[str, str]) -> Any:
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


def test_keys_rotate_at_the_command_line(tmp_path: Path) -> None:
    first = tmp_path / "k0.key"
    first.write_bytes(format_private_key(K0.name, K0.private_key))
    env = {"DND_LEDGER_DB": str(tmp_path / "l.db"), "DND_LEDGER_SIGNING_KEY": str(first)}
    assert run(["demo", "--db", env["DND_LEDGER_DB"]], env).exit_code == 0
    assert run(["checkpoint"], env).exit_code == 0
    for n in (1, 2):
        out = tmp_path / f"k{n}.key"
        done = run(["keys", "rotate", "--out", str(out)], env)
        assert done.exit_code == 0, done.output
        assert parse_vkey(done.stdout.strip())
        assert "key hand-over at size" in done.stderr
        env["DND_LEDGER_SIGNING_KEY"] = str(out)
        assert run(["checkpoint"], env).exit_code == 0
    again = run(["keys", "rotate", "--out", str(tmp_path / "k2.key")], env)
    assert again.exit_code == 1
    assert "already exists" in again.output
    pub = tmp_path / "k0.pub"
    pub.write_text(vkey(K0) + "\n")
    done = run(["verify", "--public-key", str(pub), "--json"], env)
    assert done.exit_code == 0, done.output
    assert len(json.loads(done.stdout)["keys"]) == 3
    # Without --public-key: the configured (third) key's chain, from its start.
    done = run(["verify", "--json"], env)
    assert done.exit_code == 0, done.output
    assert (
        json.loads(done.stdout)["key"]["fingerprint"]
        == json.loads(done.stdout)["keys"][0]["fingerprint"]
    )
