"""The notary on every backend: one leaf per stored event, checkpoints, proofs, verify.

The tamper tests (SQL edits of a SQLite ledger) are in ``test_notary_tamper.py``;
a process killed mid-way is in ``test_notary_crash.py``.
"""

from __future__ import annotations

import json
import threading
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
from dnd_ledger.notary.bundle import export_bundle
from dnd_ledger.notary.leaf import LEAF_FORMAT, Leaf, canonical_originator
from dnd_ledger.notary.merkle import leaf_hash, root_from_leaf_hashes
from dnd_ledger.notary.merkle_proofs import verify_consistency, verify_inclusion
from dnd_ledger.notary.notary import TRACKING_NAME, checkpoint_time
from dnd_ledger.notary.offline import verify_bundle
from dnd_ledger.notary.signed_note import (
    SigningKey,
    format_private_key,
    format_vkey,
    parse_vkey,
    verify_checkpoint,
)
from dnd_ledger.notary.verify import verify_ledger

KEY = SigningKey("ledger.example/dnd", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
VKEY = format_vkey(KEY.name, KEY.private_key.public_key())
PII = b"test-key-0123456789abcdef"
SMS = Channel.SMS


def open_ledger(url: str, clock: Clock, key: SigningKey | None = KEY, **kw: Any) -> DndLedger:
    return DndLedger(url, pii_key=PII, clock=clock, signing_key=key, **kw)


@pytest.fixture
def notarised(db_url: str, clock: Clock) -> Iterator[DndLedger]:
    app = open_ledger(db_url, clock, checkpoint_every=5)
    try:
        yield app
    finally:
        app.close()


def story(app: DndLedger, contacts: int = 2) -> None:
    """A few contacts with a phone each, a STOP and a DND toggle: events of both kinds."""
    for i in range(contacts):
        phone = f"+1415555{i:04d}"
        app.execute(c.RegisterContact("loc-1", f"c{i}", (phone,), (f"c{i}@example.com",)))
        app.execute(c.ReceiveInbound("loc-1", SMS, phone, "STOP", f"SM{i}"))
        app.execute(c.SetDnd("loc-1", f"c{i}", (Channel.CALL,), "alice", request_id=f"r{i}"))


def stored(app: DndLedger) -> list[Any]:
    return list(app.recorder.select_notifications(start=1, limit=10**6))


# -- leaves ----------------------------------------------------------------------------------


def test_every_stored_event_becomes_one_leaf_over_its_stored_bytes(notarised: DndLedger) -> None:
    story(notarised)
    notarised.notary.catch_up()
    events = stored(notarised)
    leaves = list(notarised.notary.leaves())
    assert [i for i, _ in leaves] == list(range(len(events)))
    for (_, leaf), n in zip(leaves, events, strict=True):
        assert leaf == Leaf.of(n.id, n.originator_id, n.originator_version, n.topic, n.state)
    state = notarised.notary.state()
    assert state.size == len(events)
    assert state.range.root() == root_from_leaf_hashes(leaf.hash() for _, leaf in leaves)
    assert notarised.notary.position() == events[-1].id


def test_the_notary_reads_the_rows_select_notifications_reads(notarised: DndLedger) -> None:
    story(notarised)
    theirs = [
        (n.id, str(n.originator_id), n.originator_version, n.topic, n.state)
        for n in stored(notarised)
    ]
    ours = notarised.notary.stored_events(0, 1000)
    assert [
        (e.id, canonical_originator(e.originator_id), e.originator_version, e.topic, e.state)
        for e in ours
    ] == theirs
    assert [e.id for e in notarised.notary.stored_events(theirs[2][0], 3)] == [
        t[0] for t in theirs[3:6]
    ]


def test_the_leaf_encoding_is_a_tagged_json_array_anyone_can_rebuild() -> None:
    leaf = Leaf(7, "4cd80f50-b080-51e3-ba37-e3df23cc1e70", 2, "t:Contact.X", bytes(range(32)))
    data = leaf.encode()
    assert data == (
        b'["dnd-ledger/leaf/v1",7,"4cd80f50-b080-51e3-ba37-e3df23cc1e70",2,"t:Contact.X",'
        b'"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"]'
    )
    assert json.loads(data)[0] == LEAF_FORMAT
    assert leaf.hash() == leaf_hash(data)
    assert Leaf.from_json(leaf.to_json()) == leaf


def test_refreshing_the_views_keeps_the_notary_up_at_most_once_a_second(
    notarised: DndLedger,
) -> None:
    story(notarised, 1)
    notarised.refresh_views()  # a process's first refresh notarises at once
    size = notarised.notary.state().size
    assert size == len(stored(notarised))
    notarised.execute(c.SetDnd("loc-1", "c0", (Channel.FB,), "alice"))
    notarised.refresh_views()  # within the second: the views move, the notary waits
    assert notarised.notary.state().size == size
    assert notarised.status("loc-1", "c0").channels[Channel.FB].status.value == "active"
    notarised.notary.keep_up_every = 0.0
    notarised.refresh_views()
    assert notarised.notary.state().size == size + 1


def test_a_batch_is_written_with_the_tracking_position_in_one_transaction(
    notarised: DndLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    story(notarised, 1)
    tracking = notarised.notary.tracking

    def crash(*args: Any) -> None:
        raise RuntimeError("crash while recording the position")

    monkeypatch.setattr(tracking, "_insert_tracking", crash)
    with pytest.raises(RuntimeError):
        notarised.notary.catch_up()
    # Nothing of the batch is left: no leaf, no checkpoint, the tree row as it was.
    assert list(notarised.notary.leaves()) == []
    assert notarised.notary.checkpoints() == []
    assert notarised.notary.state().size == 0
    monkeypatch.undo()
    assert notarised.notary.catch_up() == len(stored(notarised))
    assert verify_ledger(notarised, parse_vkey(VKEY)).status == "ok"


# -- checkpoints -----------------------------------------------------------------------------


def test_a_checkpoint_once_n_events_wait_and_on_demand(notarised: DndLedger) -> None:
    sizes = []
    for i in range(2):  # 5 events, then 2, then 1, per contact
        phone = f"+1415555{i:04d}"
        for command in (
            c.RegisterContact("loc-1", f"c{i}", (phone,), (f"c{i}@example.com",)),
            c.ReceiveInbound("loc-1", SMS, phone, "STOP", f"SM{i}"),
            c.SetDnd("loc-1", f"c{i}", (Channel.CALL,), "alice"),
        ):
            notarised.execute(command)
            notarised.notary.catch_up()
            sizes.append(len(stored(notarised)))
    assert sizes == [5, 7, 8, 13, 15, 16]
    # A checkpoint when 5 (checkpoint_every) have waited, once the notary is at the head.
    assert [cp.size for cp in notarised.notary.checkpoints()] == [5, 13]
    record = notarised.notary.checkpoint()
    assert record is not None
    assert record.size == 16
    assert [cp.size for cp in notarised.notary.checkpoints()] == [5, 13, 16]
    # Nothing new: asking again returns the same checkpoint.
    assert notarised.notary.checkpoint() == record


def test_a_checkpoint_when_leaves_have_waited_the_interval(db_url: str, clock: Clock) -> None:
    app = open_ledger(db_url, clock, checkpoint_every=1000, checkpoint_interval=60)
    try:
        story(app, 1)
        app.notary.catch_up()
        assert app.notary.checkpoints() == []
        clock.advance(seconds=59)
        app.notary.catch_up()
        assert app.notary.checkpoints() == []
        clock.advance(seconds=2)
        app.notary.catch_up()  # no new event: the wait alone is enough
        [cp] = app.notary.checkpoints()
        assert cp.size == app.notary.state().size
        assert cp.created_at == clock.now
    finally:
        app.close()


def test_checkpoints_are_c2sp_signed_notes_with_their_time(notarised: DndLedger) -> None:
    story(notarised, 1)
    record = notarised.notary.checkpoint()
    assert record is not None
    key = parse_vkey(VKEY)
    body = verify_checkpoint(record.note, key.name, key.public_key, origin=notarised.notary.origin)
    assert body.size == record.size
    assert body.root_hash == record.root == notarised.notary.state().range.root()
    assert checkpoint_time(body) == notarised.clock()
    lines = record.note.split("\n")
    assert lines[0] == notarised.notary.origin
    assert lines[1] == str(record.size)
    assert lines[3].startswith("time ")
    assert lines[4].startswith("locations ")  # the location index, under the same signature
    assert lines[6].startswith(f"\u2014 {KEY.name} ")
    assert record.key_fingerprint is not None
    assert record.key_fingerprint.startswith("sha256:")


def test_without_a_key_checkpoints_are_unsigned_and_verify_says_so(
    tmp_path: Path, clock: Clock
) -> None:
    app = open_ledger(str(tmp_path / "l.db"), clock, key=None, checkpoint_every=5)
    try:
        story(app)
        app.notary.catch_up()
        record = app.notary.checkpoint()
        assert record is not None
        assert not record.signed
        assert record.note.count("\n") == 5  # origin, size, root, time, locations: no signature
        report = verify_ledger(app, None)
        assert report.status == "unsigned"
        assert report.exit_code == 3
        assert report.problem_count == 0
        assert any("no public key" in n for n in report.notes)
        report = verify_ledger(app, parse_vkey(VKEY))
        assert report.status == "unsigned"
        assert any("no checkpoint is signed" in n for n in report.notes)
    finally:
        app.close()
    # Configured later, the key signs from then on; the unsigned past is covered by it.
    app = open_ledger(str(tmp_path / "l.db"), clock, checkpoint_every=5)
    try:
        signed = app.notary.checkpoint()
        assert signed is not None
        assert signed.signed
        assert signed.size == record.size
        report = verify_ledger(app, parse_vkey(VKEY))
        assert report.status == "ok", report.to_json()
        assert report.verified_size == record.size
    finally:
        app.close()


def test_a_backlog_is_checkpointed_once_at_the_head_not_in_its_middle(
    notarised: DndLedger,
) -> None:
    story(notarised)  # 16 events before the notary runs at all
    notarised.notary.catch_up(batch_size=3)
    # Events 6-16 were stored before any checkpoint was made: a checkpoint at 5 would
    # wrongly suggest they came later.
    assert [cp.size for cp in notarised.notary.checkpoints()] == [16]


# -- concurrency -----------------------------------------------------------------------------


def test_two_processes_catching_up_at_once_notarise_each_event_once(
    tmp_path: Path, clock: Clock
) -> None:
    path = str(tmp_path / "shared.db")
    writer = open_ledger(path, clock, checkpoint_every=7)
    readers = [open_ledger(path, clock, checkpoint_every=7) for _ in range(3)]
    try:
        for i in range(60):
            writer.execute(c.RegisterContact("loc-1", f"c{i}", (f"+1415555{i:04d}",)))
        errors: list[BaseException] = []

        def run(app: DndLedger) -> None:
            try:
                for _ in range(5):
                    app.notary.catch_up(batch_size=13)
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=run, args=(r,)) for r in readers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        total = len(stored(writer))
        assert writer.notary.state().size == total
        assert [i for i, _ in writer.notary.leaves()] == list(range(total))
        sizes = [cp.size for cp in writer.notary.checkpoints()]
        assert sizes == sorted(set(sizes))
        assert sizes[-1] == total
        assert verify_ledger(writer, parse_vkey(VKEY)).problem_count == 0
    finally:
        for app in (writer, *readers):
            app.close()


# -- verify, proofs and the bundle on every backend ---------------------------------------------


def test_verify_holds_for_an_honest_ledger(notarised: DndLedger) -> None:
    story(notarised)
    notarised.notary.checkpoint()
    report = verify_ledger(notarised, parse_vkey(VKEY))
    assert report.to_json()["status"] == "ok", report.to_json()
    assert report.exit_code == 0
    assert report.events == report.tree_size == len(stored(notarised))
    assert report.verified_size == report.tree_size
    assert report.checkpoints == 1


def test_events_after_the_notary_are_pending_not_wrong(notarised: DndLedger) -> None:
    story(notarised, 1)
    notarised.notary.checkpoint()
    notarised.execute(c.SetDnd("loc-1", "c0", (Channel.FB,), "alice"))  # not notarised yet
    report = verify_ledger(notarised, parse_vkey(VKEY))
    assert report.status == "ok"
    assert report.pending == 1
    assert any("not notarised yet" in n for n in report.notes)


def test_an_exported_bundle_verifies_offline(notarised: DndLedger, clock: Clock) -> None:
    story(notarised, 1)
    notarised.notary.catch_up()
    clock.advance(minutes=1)
    story_2 = c.RegisterContact("loc-1", "c1", ("+14155550001",))
    notarised.execute(story_2)
    notarised.execute(c.ReceiveInbound("loc-1", SMS, "+14155550001", "STOP", "SM1"))
    notarised.execute(c.SetDnd("loc-1", "c1", (Channel.CALL,), "alice"))
    data = export_bundle(notarised, "loc-1", "c1")
    result = verify_bundle(data, parse_vkey(VKEY))
    [contact] = result.contacts
    assert (contact.location_id, contact.contact_id) == ("loc-1", "c1")
    assert [e.version for e in contact.events] == list(range(1, len(contact.events) + 1))
    assert result.checkpoint.size == len(stored(notarised))
    assert result.earlier_checkpoints == 1  # the checkpoint at 8, after the first contact
    status = contact.status(clock.now, clock.now)
    assert status["channels"]["sms"]["status"] == "permanent"
    assert status["channels"]["call"]["status"] == "active"
    assert status == {
        **notarised.status("loc-1", "c1", as_of=clock.now, known_at=clock.now).to_json(),
    }


@pytest.mark.postgres
def test_leaf_indexes_stay_dense_across_gaps_in_notification_ids(pg_url: str, clock: Clock) -> None:
    import psycopg

    app = open_ledger(pg_url, clock, checkpoint_every=4)
    try:
        story(app, 1)
        table = app.recorder.events_table_name  # type: ignore[attr-defined]
        skip = f"SELECT nextval(pg_get_serial_sequence('{table}', 'notification_id'))"
        with psycopg.connect(pg_url, autocommit=True) as conn:  # what rolled-back inserts leave
            conn.execute(skip)
            conn.execute(skip)
        story_more = c.SetDnd("loc-1", "c0", (Channel.FB,), "alice")
        app.execute(story_more)
        app.notary.checkpoint()
        ids = [n.id for n in stored(app)]
        assert ids[-1] - ids[-2] == 3  # a gap of two
        assert [i for i, _ in app.notary.leaves()] == list(range(len(ids)))
        assert verify_ledger(app, parse_vkey(VKEY)).status == "ok"
        verify_bundle(export_bundle(app, "loc-1", "c0"), parse_vkey(VKEY))
    finally:
        app.close()


# -- the command line ------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("DND_LEDGER_POLICY", "DND_LEDGER_PII_KEY", "DND_LEDGER_PII_KEY_FILE",
                 "DND_LEDGER_CHECKPOINT_EVERY", "DND_LEDGER_CHECKPOINT_INTERVAL"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    key_file = tmp_path / "ledger.key"
    key_file.write_bytes(format_private_key(KEY.name, KEY.private_key))
    key_file.chmod(0o600)
    monkeypatch.setenv("DND_LEDGER_SIGNING_KEY", str(key_file))
    monkeypatch.setenv("DND_LEDGER_DB", str(tmp_path / "cli.db"))
    monkeypatch.chdir(tmp_path)
    assert run("init").exit_code == 0
    return tmp_path


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), prog_name="dnd-ledger")


def test_cli_keys_generate_writes_a_private_file_and_prints_the_public_key(
    cli_env: Path,
) -> None:
    result = run("keys", "generate", "--out", "new.key", "--name", "acme/dnd")
    assert result.exit_code == 0, result.output
    vkey = result.stdout.strip().splitlines()[-1]
    assert parse_vkey(vkey).name == "acme/dnd"
    assert (cli_env / "new.key").stat().st_mode & 0o777 == 0o600
    assert (cli_env / "new.key").read_text().startswith("Key-Name: acme/dnd\n")
    again = run("keys", "generate", "--out", "new.key")
    assert again.exit_code == 1
    assert "refusing to replace a signing key" in again.output
    assert run("keys", "public").stdout.strip() == VKEY


def test_cli_checkpoint_verify_and_proofs(cli_env: Path) -> None:
    assert run("contacts", "add", "loc-1", "c-1", "--phone", "+14155550100").exit_code == 0
    assert run("inbound", "loc-1", "--channel", "sms", "--from", "+14155550100",
               "--body", "STOP", "--message-sid", "SM1").exit_code == 0  # fmt: skip
    first = json.loads(run("checkpoint", "--json").stdout)
    assert first["signed"] is True
    assert run("dnd", "set", "loc-1", "c-1", "--channel", "fb", "--actor", "a").exit_code == 0
    second = json.loads(run("checkpoint", "--json").stdout)
    assert second["size"] > first["size"]

    verified = run("verify")
    assert verified.exit_code == 0, verified.output
    assert verified.stdout.startswith("verify: OK")
    as_json = json.loads(run("verify", "--json").stdout)
    assert as_json["status"] == "ok"
    assert as_json["verified_size"] == second["size"]

    position = 5  # the contact's OptOutKeyword, as `audit` numbers it
    proof = json.loads(run("proof", "inclusion", str(position)).stdout)
    assert proof["position"] == position
    assert proof["tree_size"] == second["size"]
    assert proof["checkpoint"] == second["note"]
    verify_inclusion(
        proof["leaf_index"], proof["tree_size"], leaf_hash(proof["leaf_data"].encode()),
        [bytes.fromhex(h) for h in proof["proof"]], bytes.fromhex(second["root"]),
    )  # fmt: skip
    cons = json.loads(run("proof", "consistency", str(first["size"]), str(second["size"])).stdout)
    assert cons["old_checkpoint"] == first["note"]
    verify_consistency(
        first["size"], second["size"], [bytes.fromhex(h) for h in cons["proof"]],
        bytes.fromhex(first["root"]), bytes.fromhex(second["root"]),
    )  # fmt: skip

    status = json.loads(run("notary", "status", "--json").stdout)
    assert status["tree_size"] == second["size"]
    assert status["lag"] == 0
    assert status["signing_key"] == VKEY


def test_cli_refusals_are_one_clear_line(cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "nothing to checkpoint" in run("checkpoint").output
    assert "no checkpoint yet" in run("proof", "inclusion", "1").output
    monkeypatch.setenv("DND_LEDGER_CHECKPOINT_EVERY", "often")
    result = run("checkpoint")
    assert result.exit_code == 1
    assert result.output == (
        "Error: DND_LEDGER_CHECKPOINT_EVERY must be a number, at least 1: 'often'\n"
    )
    monkeypatch.setenv("DND_LEDGER_CHECKPOINT_EVERY", "3")
    monkeypatch.setenv("DND_LEDGER_CHECKPOINT_INTERVAL", "0.5")
    status = json.loads(run("notary", "status", "--json").stdout)
    assert (status["checkpoint_every"], status["checkpoint_interval"]) == (3, 0.5)
    monkeypatch.setenv("DND_LEDGER_SIGNING_KEY", str(cli_env / "missing.key"))
    result = run("checkpoint")
    assert result.exit_code == 1
    assert "dnd-ledger keys generate --out" in result.output
    monkeypatch.setenv("DND_LEDGER_SIGNING_KEY", str(cli_env / "ledger.key"))
    assert run("contacts", "add", "loc-1", "c-1").exit_code == 0
    result = run("audit", "export", "loc-1", "nobody", "--bundle", "b.json")
    assert result.exit_code == 1
    assert result.output == "Error: contact 'nobody' is not registered in location 'loc-1'\n"
    result = run("audit", "export", "loc-9", "--bundle", "b.json")
    assert result.output == "Error: location 'loc-9' has no contacts\n"
    assert not (cli_env / "b.json").exists()
    monkeypatch.delenv("DND_LEDGER_SIGNING_KEY")
    result = run("audit", "export", "loc-1", "c-1", "--bundle", "b.json")
    assert result.exit_code == 1
    assert "needs a signed checkpoint: set DND_LEDGER_SIGNING_KEY" in result.output


def test_the_notary_position_is_an_eventsourcing_tracking_record(notarised: DndLedger) -> None:
    story(notarised, 1)
    notarised.notary.catch_up()
    assert notarised.notary.tracking.max_tracking_id(TRACKING_NAME) == stored(notarised)[-1].id
