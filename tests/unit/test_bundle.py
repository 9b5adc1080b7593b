"""The auditor bundle: every byte counts, nothing can be hidden, and replay answers time questions.

The bundles are made by a real (in-memory) ledger; everything after that runs
on the offline verifier alone.
"""

from __future__ import annotations

import ast
import base64
import json
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import T0, Clock

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.cli.main import cli
from dnd_ledger.domain.keys import contact_uuid
from dnd_ledger.domain.values import Channel
from dnd_ledger.notary import offline
from dnd_ledger.notary.bundle import export_bundle
from dnd_ledger.notary.offline import (
    BundleError,
    contact_originator,
    encode_bundle,
    verify_bundle,
)
from dnd_ledger.notary.signed_note import SigningKey, format_vkey, parse_vkey

KEY = SigningKey("ledger.example/dnd", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
VKEY = format_vkey(KEY.name, KEY.private_key.public_key())
PUBLIC = parse_vkey(VKEY)
PHONE = "+14155550100"
SRC = Path(__file__).resolve().parents[2] / "src" / "dnd_ledger"
#: The modules the offline verifier may load: stdlib and `cryptography` only, each of them.
OFFLINE = [
    f"dnd_ledger.{m}"
    for m in ("notary.offline", "notary.offline_result", "notary.offline_parts",
              "notary.keychain", "notary.locations", "notary.cosign", "notary.merkle",
              "notary.merkle_proofs", "notary.signed_note",
              "notary.leaf",
              "domain.state", "domain.values")
]  # fmt: skip


def ledger(clock: Clock, every: int = 1000) -> DndLedger:
    return DndLedger("memory:", pii_key=b"k" * 16, clock=clock, signing_key=KEY,
                     checkpoint_every=every)  # fmt: skip


def t(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


@pytest.fixture
def small(clock: Clock) -> bytes:
    """One contact: registered, then a STOP that reached the ledger late."""
    app = ledger(clock)
    try:
        app.execute(c.RegisterContact("loc-1", "ada", (PHONE,), occurred_at=t(0)))
        clock.advance(hours=3)
        app.execute(c.ReceiveInbound("loc-1", Channel.SMS, PHONE, "STOP", "SM1", occurred_at=t(1)))
        clock.advance(minutes=1)
        return export_bundle(app, "loc-1", "ada")
    finally:
        app.close()


def reject_reason(data: bytes) -> str | None:
    try:
        verify_bundle(data, PUBLIC)
    except BundleError as e:
        return str(e)
    return None


def edit(data: bytes, change: Any) -> bytes:
    """A semantic change, written back in canonical form (so only the change is judged)."""
    doc = json.loads(data)
    change(doc)
    return encode_bundle(doc)


# -- every byte ------------------------------------------------------------------------------


def test_the_small_bundle_verifies(small: bytes) -> None:
    assert reject_reason(small) is None
    assert len(small) < 8000


@pytest.mark.parametrize("mask", [0x01, 0x20, 0x80])
def test_flipping_any_single_byte_of_a_bundle_is_rejected(small: bytes, mask: int) -> None:
    reasons: Counter[str] = Counter()
    for i in range(len(small)):
        flipped = bytearray(small)
        flipped[i] ^= mask
        reason = reject_reason(bytes(flipped))
        assert reason is not None, f"byte {i} ({small[i : i + 1]!r} ^ {mask:#x}) was accepted"
        reasons[reason.split(":")[0]] += 1
    # No byte of the bundle lies outside what is checked: there is nothing to list as
    # "unsigned". The rejections come from many different checks, not one catch-all.
    assert len(reasons) >= (1 if mask == 0x80 else 5), reasons


def test_a_bundle_re_encoded_with_other_whitespace_is_rejected(small: bytes) -> None:
    pretty = json.dumps(json.loads(small), indent=1, sort_keys=True).encode() + b"\n"
    assert reject_reason(pretty) == "bundle is not in canonical form (it was edited after export)"


# -- nothing hidden --------------------------------------------------------------------------


def test_an_event_left_out_of_the_bundle_is_detected(small: bytes) -> None:
    reason = reject_reason(edit(small, lambda d: d["contacts"][0]["events"].pop()))
    assert reason is not None
    assert "events were left out or added" in reason


def test_an_event_left_out_of_the_leaves_is_detected(small: bytes) -> None:
    assert reject_reason(edit(small, lambda d: d["leaves"].pop())) == (
        "bundle has 4 leaves, the checkpoint covers 5"
    )


def test_a_leaf_renamed_to_another_aggregate_breaks_the_root(small: bytes) -> None:
    def rename(d: dict[str, Any]) -> None:
        d["leaves"][4][1] = "00000000-0000-0000-0000-000000000000"

    assert reject_reason(edit(small, rename)) == (
        "the leaves' root is not the checkpoint's root: a leaf was altered"
    )


def test_an_exported_contact_cannot_be_swapped_for_another(small: bytes) -> None:
    def other(d: dict[str, Any]) -> None:
        d["contacts"][0]["contact_id"] = "bob"

    assert (
        reject_reason(edit(small, other)) == "contact loc-1/bob has no events under the checkpoint"
    )


def test_the_bundle_must_be_signed_by_the_auditors_key(small: bytes) -> None:
    other = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))).public_key()
    with pytest.raises(BundleError, match="not by the given key sha256:"):
        verify_bundle(small, parse_vkey(format_vkey(KEY.name, other)))


def test_versions_of_every_aggregate_must_run_from_one(clock: Clock) -> None:
    # A bundle whose leaves lack an event cannot be re-signed; a ledger that lost one
    # before signing still cannot hide it from the leaves' version sequence.
    app = ledger(clock)
    try:
        app.execute(c.RegisterContact("loc-1", "ada", (PHONE,)))
        app.execute(c.SetDnd("loc-1", "ada", (Channel.FB,), "alice"))
        app.execute(c.SetDnd("loc-1", "ada", (Channel.GMB,), "alice"))
        app.notary.catch_up()
        version_2 = contact_uuid("loc-1", "ada").hex
        app.sql.execute(
            "DELETE FROM stored_events WHERE originator_id = ? AND originator_version = 2",
            (version_2,),
        )
        app.sql.execute("DELETE FROM dnd_notary_leaves")
        app.sql.execute("DELETE FROM tracking WHERE application_name = 'dnd_ledger.notary'")
        app.sql.execute("UPDATE dnd_notary_tree SET size = 0, hashes = '[]', checkpoint_size = 0")
        data = export_bundle(app, "loc-1", "ada")  # re-notarised and signed after the loss
    finally:
        app.close()
    reason = reject_reason(data)
    assert reason is not None
    assert "has version 3 where 2 was due: an event was hidden or reordered" in reason


# -- semantic mutations of proofs, roots, indexes and sizes -----------------------------------


@pytest.fixture(scope="module")
def rich() -> bytes:
    """Two contacts, several earlier checkpoints, proofs of every length up to the root."""
    clock = Clock()
    app = ledger(clock, every=3)
    try:
        for i, cid in enumerate(("ada", "bob")):
            phone = f"+1415555010{i}"
            for command in (
                c.RegisterContact("loc-1", cid, (phone,)),
                c.ReceiveInbound("loc-1", Channel.SMS, phone, "STOP", f"SM{i}"),
                c.SetDnd("loc-1", cid, (Channel.CALL,), "alice"),
            ):
                app.execute(command)
                app.notary.catch_up()  # checkpoints at sizes 5, 8 and 13
                clock.advance(minutes=5)
        return export_bundle(app, "loc-1")
    finally:
        app.close()


MUTATIONS = [
    "proof hash", "drop proof hash", "add proof hash", "leaf index", "leaf position",
    "leaf version", "leaf topic", "leaf state hash", "consistency hash", "drop consistency hash",
    "earlier note", "swap contacts' events", "state bytes",
]  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(data=st.data())
def test_any_single_mutation_of_a_proof_root_index_or_size_is_rejected(
    rich: bytes, data: st.DataObject
) -> None:
    doc = json.loads(rich)
    contacts, leaves, earlier = doc["contacts"], doc["leaves"], doc["earlier_checkpoints"]
    assert len(contacts) == 2
    assert len(earlier) >= 3
    kind = data.draw(st.sampled_from(MUTATIONS), label="mutation")
    contact = data.draw(st.sampled_from(contacts))
    event = data.draw(st.sampled_from(contact["events"]))
    bit = data.draw(st.integers(0, 255), label="bit")

    def flip_hex(h: str) -> str:
        raw = bytearray(bytes.fromhex(h))
        raw[bit // 8] ^= 1 << (bit % 8)
        return raw.hex()

    if kind == "proof hash":
        j = data.draw(st.integers(0, len(event["proof"]) - 1))
        event["proof"][j] = flip_hex(event["proof"][j])
    elif kind == "drop proof hash":
        event["proof"].pop(data.draw(st.integers(0, len(event["proof"]) - 1)))
    elif kind == "add proof hash":
        event["proof"].insert(data.draw(st.integers(0, len(event["proof"]))), "00" * 32)
    elif kind == "leaf index":
        event["leaf_index"] = data.draw(
            st.integers(0, len(leaves) + 2).filter(lambda v: v != event["leaf_index"])
        )
    elif kind.startswith("leaf "):
        field = {"position": 0, "version": 2, "topic": 3, "state hash": 4}[kind[5:]]
        leaf = leaves[data.draw(st.integers(0, len(leaves) - 1))]
        if field == 4:
            leaf[4] = flip_hex(leaf[4])
        elif field == 3:
            leaf[3] = leaf[3] + "x"
        else:
            leaf[field] = leaf[field] + data.draw(st.sampled_from([-1, 1, 2]))
    elif kind == "consistency hash":
        cp = data.draw(st.sampled_from(earlier))
        j = data.draw(st.integers(0, len(cp["consistency"]) - 1))
        cp["consistency"][j] = flip_hex(cp["consistency"][j])
    elif kind == "drop consistency hash":
        cp = data.draw(st.sampled_from(earlier))
        cp["consistency"].pop(data.draw(st.integers(0, len(cp["consistency"]) - 1)))
    elif kind == "earlier note":  # a real signed note, at the wrong place in the chain
        i, j = data.draw(st.lists(st.integers(0, len(earlier) - 1), min_size=2, max_size=2,
                                  unique=True))  # fmt: skip
        earlier[i]["note"], earlier[j]["note"] = earlier[j]["note"], earlier[i]["note"]
    elif kind == "swap contacts' events":
        contacts[0]["events"], contacts[1]["events"] = contacts[1]["events"], contacts[0]["events"]
    else:
        raw = bytearray(base64.b64decode(event["state"]))
        raw[bit % len(raw)] ^= 1
        event["state"] = base64.b64encode(bytes(raw)).decode()
    assert reject_reason(encode_bundle(doc)) is not None, kind


# -- replay ----------------------------------------------------------------------------------


def test_replay_answers_as_of_and_known_at_as_the_ledger_does(clock: Clock) -> None:
    app = ledger(clock)
    try:
        app.execute(c.RegisterContact("loc-1", "ada", (PHONE,), occurred_at=t(0)))
        clock.advance(hours=3)  # the STOP (sent at 1h) reaches the ledger at 3h
        app.execute(c.ReceiveInbound("loc-1", Channel.SMS, PHONE, "STOP", "SM1", occurred_at=t(1)))
        clock.advance(hours=2)
        app.execute(c.SetDnd("loc-1", "ada", (Channel.CALL,), "alice", occurred_at=t(4)))
        clock.advance(hours=1)
        bundle = verify_bundle(export_bundle(app, "loc-1", "ada"), PUBLIC)
        [ada] = bundle.contacts
        times = [t(h) for h in (0.5, 1.5, 2, 3.5, 4.5, 5.5, 6)]
        for as_of in times:
            for known_at in times:
                theirs = ada.status(as_of, known_at)
                ours = app.status("loc-1", "ada", as_of=as_of, known_at=known_at).to_json()
                assert theirs == ours, (as_of, known_at)
        sms = ada.status(t(2), t(2))["channels"]["sms"]["status"]
        assert sms == "inactive"  # at 2h the STOP had happened but was not known yet
        assert ada.status(t(2), t(6))["channels"]["sms"]["status"] == "permanent"  # hindsight
        stop = ada.events[1]
        assert stop.event == "OptOutKeyword"
        assert stop.recorded_at == t(3)
        assert stop.first_checkpoint == bundle.checkpoint_time == clock.now
    finally:
        app.close()


def test_a_location_bundle_carries_every_listed_contact(rich: bytes) -> None:
    result = verify_bundle(rich, PUBLIC)
    assert [x.contact_id for x in result.contacts] == ["ada", "bob"]
    report = offline.report(result, None, None)
    assert report["contacts"][1]["status"]["channels"]["sms"]["status"] == "permanent"
    assert report["checkpoint"]["earlier_checkpoints"] == result.earlier_checkpoints >= 3
    text = offline.report_text(report)
    assert "loc-1/bob: 3 events (versions 1-3), all present and proven included" in text


def test_contact_ids_are_derived_as_the_domain_derives_them() -> None:
    assert contact_originator("loc-1", "ada") == str(contact_uuid("loc-1", "ada"))


# -- the command line and the offline module ---------------------------------------------------


def test_verify_bundle_at_the_command_line(small: bytes, tmp_path: Path) -> None:
    path, pub = tmp_path / "ada.bundle.json", tmp_path / "ledger.pub"
    path.write_bytes(small)
    pub.write_text(VKEY + "\n")
    run = CliRunner().invoke
    ok = run(cli, ["audit", "verify-bundle", str(path), "--public-key", str(pub),
                   "--as-of", "2026-11-02T09:30:00Z", "--json"])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    result = json.loads(ok.stdout)
    assert result["contacts"][0]["status"]["channels"]["sms"]["status"] == "inactive"
    assert result["contacts"][0]["status"]["as_of"] == "2026-11-02T09:30:00+00:00"
    later = json.loads(run(cli, ["audit", "verify-bundle", str(path), "--public-key", VKEY,
                                 "--json"]).stdout)  # fmt: skip
    assert later["contacts"][0]["status"]["channels"]["sms"]["status"] == "permanent"

    path.write_bytes(small.replace(b'"leaf_index":4', b'"leaf_index":3'))
    bad = run(cli, ["audit", "verify-bundle", str(path), "--public-key", str(pub)])
    assert bad.exit_code == 1
    assert bad.output.startswith("Error: bundle rejected: contact loc-1/ada: the bundle carries")


def test_the_offline_verifier_runs_with_the_stdlib_and_cryptography_only(
    small: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "b.json"
    path.write_bytes(small)
    probe = (
        "import sys, runpy\n"
        "sys.argv = ['offline', sys.argv[1], '--public-key', sys.argv[2], '--json']\n"
        "try:\n"
        "    runpy.run_module('dnd_ledger.notary.offline', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(path), VKEY],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert json.loads(done.stdout)["ok"] is True
    loaded = set(done.stderr.split())
    ours = {m for m in loaded if m.split(".")[0] == "dnd_ledger"}
    assert ours <= {"dnd_ledger", "dnd_ledger.notary", "dnd_ledger.domain", *OFFLINE}, ours
    third_party = (
        {m.split(".")[0] for m in loaded}
        - set(sys.stdlib_module_names)
        - {"dnd_ledger", "cryptography", "_cffi_backend"}
    )
    assert {m for m in third_party if not m.startswith("_")} == set(), third_party


def test_the_offline_command_rejects_with_one_line_and_status_1(
    small: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "b.json"
    path.write_bytes(small.replace(b"ledger.example/dnd", b"ledger.example/dnD", 1))
    assert offline.main([str(path), "--public-key", VKEY]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: bundle rejected: checkpoint: signature or format does not hold")
    assert err.count("\n") == 1
    path.write_bytes(small)
    assert offline.main([str(path), "--public-key", VKEY]) == 0
    assert capsys.readouterr().out.startswith("bundle OK: checkpoint dnd-ledger/log/")


@pytest.mark.parametrize(
    "module", [m.removeprefix("dnd_ledger.").replace(".", "/") + ".py" for m in OFFLINE]
)
def test_the_offline_modules_import_nothing_else(module: str) -> None:
    allowed = {*OFFLINE, "cryptography"}
    tree = ast.parse((SRC / module).read_text())
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            assert (
                top in sys.stdlib_module_names
                or top == "__future__"
                or any(name == a or name.startswith(a + ".") for a in allowed)
            ), (module, name)
