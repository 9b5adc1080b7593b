"""Witnesses (C2SP tlog-witness) on 127.0.0.1: cosigning, refusing rollbacks and forks, and
the cosignatures that verify and the offline verifier then require."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
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
from dnd_ledger.domain.values import Channel
from dnd_ledger.notary import offline
from dnd_ledger.notary.bundle import export_bundle
from dnd_ledger.notary.cosign import cosignatures, format_witness_vkey, parse_witness_vkey
from dnd_ledger.notary.offline import BundleError, encode_bundle, verify_bundle
from dnd_ledger.notary.rotation import rotate
from dnd_ledger.notary.signed_note import (
    SigningKey,
    format_private_key,
    format_vkey,
    parse_vkey,
    sign_note,
)
from dnd_ledger.notary.verify import verify_ledger
from dnd_ledger.notary.witness import Refused, Witness, make_server
from dnd_ledger.notary.witness_client import WitnessError, collect_cosignatures, request_body

LOG = SigningKey("ledger.example/dnd", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
LOG_PUB = parse_vkey(format_vkey(LOG.name, LOG.private_key.public_key()))
W1 = SigningKey("w1.example/witness", Ed25519PrivateKey.from_private_bytes(bytes([7]) * 32))
W2 = SigningKey("w2.example/witness", Ed25519PrivateKey.from_private_bytes(bytes([8]) * 32))
W1_PUB = parse_witness_vkey(format_witness_vkey(W1.name, W1.private_key.public_key()))
W2_PUB = parse_witness_vkey(format_witness_vkey(W2.name, W2.private_key.public_key()))


def open_ledger(path: Path, clock: Clock) -> DndLedger:
    return DndLedger(str(path), pii_key=b"k" * 16, clock=clock, signing_key=LOG)


def add(app: DndLedger, clock: Clock, n: int) -> None:
    phone = f"+1415555{n:04d}"
    clock.advance(minutes=1)
    app.execute(c.RegisterContact("loc-1", f"c{n}", (phone,)))
    app.execute(c.ReceiveInbound("loc-1", Channel.SMS, phone, "STOP", f"SM{n}"))


@pytest.fixture
def witness_url(tmp_path: Path) -> Iterator[str]:
    server = make_server(Witness(W1, tmp_path / "w1-state", [LOG_PUB]), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def post(url: str, body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(url + "/add-checkpoint", data=body, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as r:  # noqa: S310 - test server
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read().decode()


def test_a_witness_cosigns_and_verify_requires_it(
    tmp_path: Path, clock: Clock, witness_url: str
) -> None:
    app = open_ledger(tmp_path / "l.db", clock)
    try:
        add(app, clock, 1)
        record = app.notary.checkpoint()
        assert record is not None
        cosigned = collect_cosignatures(app.notary, record, [witness_url], [W1_PUB])
        assert [w.witness for w in cosignatures(cosigned.note, [W1_PUB])] == [W1.name]
        assert app.notary.latest_checkpoint() == cosigned  # kept in the stored note
        report = verify_ledger(app, LOG_PUB, witnesses=[W1_PUB], require_witnesses=1)
        assert report.status == "ok", report.to_json()["first_problem"]
        assert report.witnessed_size == record.size

        # Later events under a checkpoint no witness saw: required witnesses are missing.
        add(app, clock, 2)
        later = app.notary.checkpoint()
        assert later is not None
        report = verify_ledger(app, LOG_PUB, witnesses=[W1_PUB], require_witnesses=1)
        assert [p.kind for p in report.problems] == ["witnesses"]
        assert report.problems[0].message.startswith(
            f"the latest signed checkpoint (size {later.size}) carries 0 of the 1 witness "
            "cosignatures required"
        )
        # The next cosignature extends the first by a consistency proof from its size.
        collect_cosignatures(app.notary, later, [witness_url])
        assert verify_ledger(app, LOG_PUB, witnesses=[W1_PUB], require_witnesses=1).status == "ok"
        two = verify_ledger(app, LOG_PUB, witnesses=[W1_PUB, W2_PUB], require_witnesses=2)
        assert [p.kind for p in two.problems] == ["witnesses"]
    finally:
        app.close()


def test_a_witness_refuses_a_rolled_back_or_forked_log(
    tmp_path: Path, clock: Clock, witness_url: str
) -> None:
    path = tmp_path / "l.db"
    app = open_ledger(path, clock)
    try:
        add(app, clock, 1)
        first = app.notary.checkpoint()
        assert first is not None
        collect_cosignatures(app.notary, first, [witness_url])
        app.close()
        shutil.copy(path, tmp_path / "fork.db")  # the operator keeps a second history
        app = open_ledger(path, clock)
        add(app, clock, 2)
        main = app.notary.checkpoint()
        assert main is not None
        collect_cosignatures(app.notary, main, [witness_url])

        # Rolled back: the older checkpoint, after the witness cosigned a larger one.
        status, text = post(witness_url, request_body(first.size, [], first.note))
        assert (status, text) == (409, f"{main.size}\n")
        status, _ = post(witness_url, request_body(main.size, [], first.note))
        assert status == 400  # old size larger than the checkpoint
        with pytest.raises(WitnessError, match="rolled back, or this is a fork"):
            collect_cosignatures(app.notary, first, [witness_url])

        # Forked: the copy grows other events from the first checkpoint's size.
        fork = open_ledger(tmp_path / "fork.db", clock)
        try:
            add(fork, clock, 3)
            same = fork.notary.checkpoint()
            assert same is not None
            assert same.size == main.size
            assert same.root != main.root
            status, text = post(witness_url, request_body(main.size, [], same.note))
            assert (status, text) == (409, f"{main.size}\n")  # same size, another root
            with pytest.raises(WitnessError, match="another root at the size it cosigned"):
                collect_cosignatures(fork.notary, same, [witness_url])
            add(fork, clock, 4)
            forked = fork.notary.checkpoint()
            assert forked is not None
            assert forked.size > main.size
            with pytest.raises(WitnessError, match="HTTP 422: consistency proof does not verify"):
                collect_cosignatures(fork.notary, forked, [witness_url])
            proof = fork.notary.levels(forked.size).consistency_proof(main.size, forked.size)
            status, _ = post(witness_url, request_body(main.size, proof, forked.note))
            assert status == 422
        finally:
            fork.close()
        evidence = (tmp_path / "w1-state" / "evidence.log").read_text().splitlines()
        assert evidence
        assert json.loads(evidence[-1])["note"] == forked.note  # the signed fork is kept

        # A checkpoint edited after signing carries no valid log signature: forbidden.
        other = forked.note.replace(f"\n{forked.size}\n", f"\n{main.size}\n", 1)
        status, _ = post(witness_url, request_body(main.size, [], other))
        assert status == 403

        # A checkpoint the witness's log keys did not sign: unknown log.
        stranger = SigningKey("x.example/log", Ed25519PrivateKey.from_private_bytes(b"\x05" * 32))
        note = first.note.split("\n\n")[0] + "\n"
        status, _ = post(witness_url, request_body(0, [], sign_note(
            note.replace(app.notary.origin, "x.example/log"), stranger.name,
            stranger.private_key)))  # fmt: skip
        assert status == 404
    finally:
        app.close()


def test_a_witness_follows_key_rotation(tmp_path: Path, clock: Clock, witness_url: str) -> None:
    app = open_ledger(tmp_path / "l.db", clock)
    try:
        add(app, clock, 1)
        first = app.notary.checkpoint()
        assert first is not None
        collect_cosignatures(app.notary, first, [witness_url])
        clock.advance(minutes=1)
        new = SigningKey(LOG.name, Ed25519PrivateKey.from_private_bytes(b"\x09" * 32))
        handover = rotate(app.notary, new)
        collect_cosignatures(app.notary, handover, [witness_url])
        add(app, clock, 2)
        later = app.notary.checkpoint()
        assert later is not None
        assert later.key_fingerprint == handover.key_fingerprint
        collect_cosignatures(app.notary, later, [witness_url], [W1_PUB])
        report = verify_ledger(app, LOG_PUB, witnesses=[W1_PUB], require_witnesses=1)
        assert report.status == "ok", report.to_json()["first_problem"]
    finally:
        app.close()


@pytest.fixture
def cosigned_bundle(tmp_path: Path, clock: Clock, witness_url: str) -> bytes:
    app = open_ledger(tmp_path / "l.db", clock)
    try:
        add(app, clock, 1)
        add(app, clock, 2)
        record = app.notary.checkpoint()
        assert record is not None
        collect_cosignatures(app.notary, record, [witness_url])
        return export_bundle(app, "loc-1")
    finally:
        app.close()


def test_the_offline_verifier_accepts_a_cosigned_bundle(cosigned_bundle: bytes) -> None:
    result = verify_bundle(cosigned_bundle, LOG_PUB, witnesses=[W1_PUB], require_witnesses=1)
    assert [w.witness for w in result.witnesses] == [W1.name]
    report = offline.report(result, None, None)
    assert report["checkpoint"]["witnesses"][0]["name"] == W1.name
    assert not any("witness" in x for x in report["not_proven"])
    assert f"cosigned by witness {W1.name} at " in offline.report_text(report)
    # Without witness keys the cosignature is ignored, and the report says so.
    plain = offline.report(verify_bundle(cosigned_bundle, LOG_PUB), None, None)
    assert any("no witness cosignature was checked" in x for x in plain["not_proven"])
    with pytest.raises(BundleError, match="carries 0 of the 1 witness cosignatures required"):
        verify_bundle(cosigned_bundle, LOG_PUB, witnesses=[W2_PUB], require_witnesses=1)


def forge(bundle: bytes) -> bytes:
    doc = json.loads(bundle)
    lines = doc["checkpoint"].split("\n")
    for i, line in enumerate(lines):
        if line.startswith(f"\u2014 {W1.name} "):
            blob = bytearray(base64.b64decode(line.split(" ")[-1]))
            blob[-1] ^= 1  # one bit of the signature
            lines[i] = f"\u2014 {W1.name} " + base64.b64encode(bytes(blob)).decode()
    doc["checkpoint"] = "\n".join(lines)
    return encode_bundle(doc)


def test_the_offline_verifier_rejects_a_forged_cosignature(
    cosigned_bundle: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    forged = forge(cosigned_bundle)
    with pytest.raises(BundleError, match=f"the cosignature from witness {W1.name} does not"):
        verify_bundle(forged, LOG_PUB, witnesses=[W1_PUB])
    path, wkey = tmp_path / "forged.json", tmp_path / "w1.pub"
    path.write_bytes(forged)
    wkey.write_text(format_witness_vkey(W1.name, W1.private_key.public_key()) + "\n")
    args = ["--public-key", format_vkey(LOG.name, LOG.private_key.public_key()),
            "--witness-key", str(wkey), "--require-witnesses", "1"]  # fmt: skip
    assert offline.main([str(path), *args]) == 1
    assert "does not verify: it was forged" in capsys.readouterr().err
    path.write_bytes(cosigned_bundle)
    assert offline.main([str(path), *args]) == 0


def run(args: list[str], env: dict[str, str]) -> Any:
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


def test_witness_serve_and_checkpoint_witness_at_the_command_line(tmp_path: Path) -> None:
    """The real `dnd-ledger witness serve` process on 127.0.0.1, and the CLI around it."""
    log_key, log_pub = tmp_path / "ledger.key", tmp_path / "ledger.pub"
    log_key.write_bytes(format_private_key(LOG.name, LOG.private_key))
    log_pub.write_text(format_vkey(LOG.name, LOG.private_key.public_key()) + "\n")
    env = {"DND_LEDGER_DB": str(tmp_path / "l.db"), "DND_LEDGER_SIGNING_KEY": str(log_key)}
    made = run(["witness", "generate", "--out", str(tmp_path / "w.key"), "--name", "w.example"],
               env)  # fmt: skip
    assert made.exit_code == 0
    wpub = tmp_path / "w.pub"
    wpub.write_text(made.stdout)
    exe = Path(sys.executable).with_name("dnd-ledger")
    proc = subprocess.Popen(
        [str(exe), "witness", "serve", "--key", str(tmp_path / "w.key"), "--state",
         str(tmp_path / "state"), "--log-key", str(log_pub), "--port", "0"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert " listening on http://127.0.0.1:" in line
        url = line.split()[-1]
        assert run(["demo", "--db", env["DND_LEDGER_DB"]], env).exit_code == 0
        done = run(["checkpoint", "--witness", url, "--witness-key", str(wpub), "--json"], env)
        assert done.exit_code == 0, done.output
        assert "\u2014 w.example " in json.loads(done.stdout)["note"]
        ok = run(["verify", "--require-witnesses", "1", "--witness-key", str(wpub)], env)
        assert ok.exit_code == 0, ok.output
        assert "under witness cosignatures" in ok.stdout
        none = run(["verify", "--require-witnesses", "1"], env)
        assert none.exit_code == 2  # a usage error: no witness key to count with
        assert run(["audit", "export", "loc-demo", "--bundle", str(tmp_path / "b.json")],
                   env).exit_code == 0  # fmt: skip
        checked = run(["audit", "verify-bundle", str(tmp_path / "b.json"), "--public-key",
                       str(log_pub), "--witness-key", str(wpub), "--require-witnesses", "1"],
                      env)  # fmt: skip
        assert checked.exit_code == 0, checked.output
        assert "cosigned by witness w.example" in checked.stdout
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_restarted_witness_remembers_what_it_cosigned(tmp_path: Path, clock: Clock) -> None:
    app = open_ledger(tmp_path / "l.db", clock)
    try:
        add(app, clock, 1)
        first = app.notary.checkpoint()
        assert first is not None
        add(app, clock, 2)
        second = app.notary.checkpoint()
        assert second is not None
        witness = Witness(W1, tmp_path / "state", [LOG_PUB])
        witness.add_checkpoint(request_body(0, [], second.note))
        again = Witness(W1, tmp_path / "state", [LOG_PUB])  # a new process, same state
        with pytest.raises(Refused) as refused:
            again.add_checkpoint(request_body(0, [], first.note))
        assert (refused.value.status, refused.value.body) == (409, f"{second.size}\n")
        with pytest.raises(Refused) as refused:
            again.add_checkpoint(request_body(second.size, [], first.note))
        assert refused.value.status == 400
    finally:
        app.close()
