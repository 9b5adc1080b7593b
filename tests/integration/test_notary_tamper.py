"""Someone with write access edits the SQLite database directly; `verify` names what they did.

Each test builds the same small ledger (three contacts, a signed checkpoint),
closes it, tampers with the file through the sqlite3 module exactly as an
intruder with a SQL shell would, then reopens it and verifies. Reopening does
not catch the notary up, so what the notary recorded before the tampering is
what the stored events are checked against.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.conftest import T0, Clock
from tests.integration.test_notary import KEY, PII, VKEY

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.cli.main import cli
from dnd_ledger.domain.keys import contact_uuid
from dnd_ledger.domain.values import Channel
from dnd_ledger.notary.leaf import Leaf
from dnd_ledger.notary.notary import format_time
from dnd_ledger.notary.signed_note import format_private_key, parse_vkey
from dnd_ledger.notary.verify import Report, verify_ledger

LOC = "loc-1"


@dataclass(frozen=True)
class Row:
    position: int
    originator: str  # as SQLite stores it: bare hex
    version: int
    topic: str
    state: bytes

    @property
    def event(self) -> str:
        return self.topic.rpartition(".")[2]


class Ledger:
    """The ledger file, and the intruder's SQL shell on it."""

    def __init__(self, path: Path, clock: Clock) -> None:
        self.path, self.clock = path, clock

    def open(self) -> DndLedger:
        return DndLedger(str(self.path), pii_key=PII, clock=self.clock, signing_key=KEY)

    def verify(self, *, known: tuple[str, ...] = ()) -> Report:
        app = self.open()
        try:
            return verify_ledger(app, parse_vkey(VKEY), known=known)
        finally:
            app.close()

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.path) as db:
            return list(db.execute(statement, params))

    def rows(self) -> list[Row]:
        return [
            Row(*r)
            for r in self.sql(
                "SELECT rowid, originator_id, originator_version, topic, state"
                " FROM stored_events ORDER BY rowid"
            )
        ]

    def of(self, contact_id: str, event: str) -> Row:
        oid = contact_uuid(LOC, contact_id).hex
        [row] = [r for r in self.rows() if r.originator == oid and r.event == event]
        return row


@pytest.fixture
def ledger(tmp_path: Path, clock: Clock) -> Ledger:
    """Three contacts, each registered, opted out by STOP and set DND on call; then signed."""
    lg = Ledger(tmp_path / "ledger.db", clock)
    app = lg.open()
    try:
        for i in range(3):
            phone = f"+1415555{i:04d}"
            clock.advance(minutes=10)
            app.execute(c.RegisterContact(LOC, f"c{i}", (phone,)))
            clock.advance(minutes=10)
            app.execute(c.ReceiveInbound(LOC, Channel.SMS, phone, "STOP", f"SM{i}"))
            clock.advance(minutes=10)
            app.execute(c.SetDnd(LOC, f"c{i}", (Channel.CALL,), "alice"))
        clock.advance(minutes=10)
        assert app.notary.checkpoint() is not None
        assert verify_ledger(app, parse_vkey(VKEY)).status == "ok"
    finally:
        app.close()
    return lg


def first(report: Report) -> Any:
    assert report.status == "problem", report.to_json()
    assert report.exit_code == 1
    return report.problems[0]


# -- the five attacks of the issue -----------------------------------------------------------


def test_an_edited_stored_event_is_named(ledger: Ledger) -> None:
    target = ledger.of("c1", "OptOutKeyword")
    edited = target.state.replace(b'"code":"STOP"', b'"code":"SHOP"')  # one byte
    assert len(edited) == len(target.state)
    assert edited != target.state
    ledger.sql("UPDATE stored_events SET state = ? WHERE rowid = ?", (edited, target.position))

    p = first(ledger.verify())
    assert p.kind == "changed"
    assert p.position == target.position
    assert p.version == 2
    assert p.message.startswith(
        f"event at position {target.position} (contact {LOC}/c1 version 2, OptOutKeyword; "
        f"leaf {target.position - 1}) was changed after it was notarised: stored state has sha256"
    )
    assert p.found == Leaf.of(1, target.originator, 1, "t", edited).state_sha256.hex()


def test_a_deleted_event_is_named(ledger: Ledger) -> None:
    target = ledger.of("c1", "DndSetByUser")
    ledger.sql("DELETE FROM stored_events WHERE rowid = ?", (target.position,))

    p = first(ledger.verify())
    assert p.kind == "deleted"
    assert p.position == target.position
    assert p.message == (
        f"event at position {target.position} (contact {LOC}/c1 version 3, DndSetByUser; "
        f"leaf {target.position - 1}) is gone from the store: it was deleted after it was notarised"
    )


def test_two_swapped_events_are_named(ledger: Ledger) -> None:
    a, b = ledger.of("c2", "OptOutKeyword"), ledger.of("c2", "DndSetByUser")
    ledger.sql("UPDATE stored_events SET state = ? WHERE rowid = ?", (b.state, a.position))
    ledger.sql("UPDATE stored_events SET state = ? WHERE rowid = ?", (a.state, b.position))

    report = ledger.verify()
    p = first(report)
    assert p.kind == "changed"
    assert p.position == a.position
    assert f"these are the bytes notarised for position {b.position}" in p.message
    second = report.problems[1]
    assert second.position == b.position
    assert f"these are the bytes notarised for position {a.position}" in second.message


def test_two_events_swapped_in_log_order_are_named(ledger: Ledger) -> None:
    a, b = ledger.of("c0", "DndSetByUser"), ledger.of("c1", "Registered")
    ledger.sql("UPDATE stored_events SET rowid = -1 WHERE rowid = ?", (a.position,))
    ledger.sql("UPDATE stored_events SET rowid = ? WHERE rowid = ?", (a.position, b.position))
    ledger.sql("UPDATE stored_events SET rowid = ? WHERE rowid = -1", (b.position,))

    p = first(ledger.verify())
    assert p.kind == "changed"
    assert p.position == a.position
    assert "originator is" in p.message
    assert "topic is dnd_ledger.domain.contact:Contact.Registered" in p.message


def test_a_forged_backdated_event_is_named_before_and_after_it_is_notarised(
    ledger: Ledger, clock: Clock
) -> None:
    # A support opt-in for c0, claimed to be recorded long before the checkpoint.
    c0 = ledger.of("c0", "DndSetByUser")
    when = T0 + timedelta(minutes=15)
    forged = _state(when, {"op": "clear-all", "channels": ["sms"]})
    ledger.sql(
        "INSERT INTO stored_events (originator_id, originator_version, topic, state)"
        " VALUES (?, 4, 'dnd_ledger.domain.contact:Contact.SupportOptInApproved', ?)",
        (c0.originator, forged),
    )
    position = ledger.rows()[-1].position

    report = ledger.verify()
    p = first(report)
    assert report.pending == 1
    assert p.kind == "backdated"
    assert p.position == position
    assert p.message.startswith(
        f"event at position {position} (contact {LOC}/c0 version 4, SupportOptInApproved) says "
        f"it was recorded at {when.isoformat()}, before the checkpoint at size {position - 1} "
        "was made"
    )
    # Once the notary has taken it into the tree (any later use of the ledger), still named.
    app = ledger.open()
    try:
        clock.advance(minutes=10)
        app.notary.checkpoint()
    finally:
        app.close()
    p = first(ledger.verify())
    assert (p.kind, p.position) == ("backdated", position)
    assert f"leaf {position - 1}" in p.message


def test_a_forged_event_out_of_version_order_is_named(ledger: Ledger, clock: Clock) -> None:
    c1 = ledger.of("c1", "Registered")
    forged = _state(clock.now, {"op": "clear-all", "channels": ["sms"]})
    ledger.sql(
        "INSERT INTO stored_events (originator_id, originator_version, topic, state)"
        " VALUES (?, 7, 'dnd_ledger.domain.contact:Contact.SupportOptInApproved', ?)",
        (c1.originator, forged),
    )
    p = first(ledger.verify())
    assert p.kind == "versions"
    assert p.message.endswith(
        f"contact {LOC}/c1 follows version 3 with version 7; versions must run 1, 2, 3, ... "
        "(an event was removed, reordered or forged)"
    )


def test_a_truncated_tail_after_a_checkpoint_is_named(ledger: Ledger) -> None:
    rows = ledger.rows()
    cut = rows[-3].position
    ledger.sql("DELETE FROM stored_events WHERE rowid >= ?", (cut,))

    report = ledger.verify()
    p = first(report)
    assert (p.kind, p.position) == ("deleted", cut)
    assert [q.position for q in report.problems] == [r.position for r in rows[-3:]]
    assert {q.kind for q in report.problems} == {"deleted"}


def test_a_tail_truncated_with_the_notary_rows_is_named_by_the_checkpoint(ledger: Ledger) -> None:
    rows = ledger.rows()
    cut = rows[-3].position
    ledger.sql("DELETE FROM stored_events WHERE rowid >= ?", (cut,))
    ledger.sql("DELETE FROM dnd_notary_leaves WHERE notification_id >= ?", (cut,))
    ledger.sql("UPDATE tracking SET notification_id = ? WHERE application_name = 'dnd_ledger.notary'",
               (cut - 1,))  # fmt: skip

    p = first(ledger.verify())
    assert p.kind == "truncated"
    assert p.checkpoint_size == len(rows)
    assert p.message.endswith(
        f"covers {len(rows)} events, but only {cut - 1} are notarised now: events and their "
        "leaves were removed after it was made"
    )


def test_a_rollback_that_removes_every_trace_is_caught_by_a_checkpoint_kept_elsewhere(
    ledger: Ledger,
) -> None:
    [(kept,)] = ledger.sql("SELECT note FROM dnd_notary_checkpoints")
    rows = ledger.rows()
    cut = rows[-3].position
    ledger.sql("DELETE FROM stored_events WHERE rowid >= ?", (cut,))
    ledger.sql("DELETE FROM dnd_notary_leaves WHERE notification_id >= ?", (cut,))
    ledger.sql("DELETE FROM dnd_notary_checkpoints")
    ledger.sql("UPDATE tracking SET notification_id = ? WHERE application_name = 'dnd_ledger.notary'",
               (cut - 1,))  # fmt: skip

    assert ledger.verify().problem_count == 0  # nothing inside the database betrays it
    p = first(ledger.verify(known=(kept,)))
    assert p.kind == "truncated"
    assert p.message.startswith(f"the checkpoint you hold (size {len(rows)}, made ")
    assert f"the ledger has only {cut - 1} notarised events now" in p.message


# -- an intruder who also edits the notary's tables ----------------------------------------------


def test_an_edit_covered_up_in_the_leaves_table_breaks_the_signed_root(ledger: Ledger) -> None:
    target = ledger.of("c0", "OptOutKeyword")
    edited = target.state.replace(b'"level":"permanent"', b'"level":"active"')
    ledger.sql("UPDATE stored_events SET state = ? WHERE rowid = ?", (edited, target.position))
    leaf = Leaf.of(target.position, target.originator, target.version, target.topic, edited)
    ledger.sql(
        "UPDATE dnd_notary_leaves SET state_sha256 = ?, leaf_hash = ? WHERE notification_id = ?",
        (leaf.state_sha256.hex(), leaf.hash().hex(), target.position),
    )
    p = first(ledger.verify())
    assert p.kind == "root"
    assert p.checkpoint_size == len(ledger.rows())
    assert "its root" in p.message
    assert f"is not the root of the first {p.checkpoint_size} stored events" in p.message


def test_an_edited_checkpoint_fails_its_signature(ledger: Ledger) -> None:
    [(size, note, root)] = ledger.sql("SELECT size, note, root FROM dnd_notary_checkpoints")
    lines = note.split("\n")
    lines[2] = "A" + lines[2][1:] if lines[2][0] != "A" else "B" + lines[2][1:]
    import base64

    forged_root = base64.b64decode(lines[2]).hex()
    ledger.sql(
        "UPDATE dnd_notary_checkpoints SET note = ?, root = ?", ("\n".join(lines), forged_root)
    )
    report = ledger.verify()
    kinds = [p.kind for p in report.problems]
    assert kinds == ["root", "signature"]
    assert report.problems[1].message.startswith(f"checkpoint at size {size} (made ")
    assert "its signature does not verify with key ledger.example/dnd" in report.problems[1].message
    assert root != forged_root


def test_a_checkpoint_signed_by_another_key_is_reported(ledger: Ledger) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from dnd_ledger.notary.signed_note import format_vkey

    other = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))).public_key()
    app = ledger.open()
    try:
        report = verify_ledger(app, parse_vkey(format_vkey("someone-else", other)))
    finally:
        app.close()
    p = first(report)
    assert p.kind == "signature"
    assert "has no signature from key someone-else" in p.message


# -- what a person sees ------------------------------------------------------------------------


def test_verify_at_the_command_line_names_the_edited_event(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "k"
    key_file.write_bytes(format_private_key(KEY.name, KEY.private_key))
    monkeypatch.setenv("DND_LEDGER_SIGNING_KEY", str(key_file))
    monkeypatch.setenv("DND_LEDGER_PII_KEY", PII.hex())
    monkeypatch.setenv("DND_LEDGER_DB", str(ledger.path))
    ok = CliRunner().invoke(cli, ["verify"])
    assert ok.exit_code == 0, ok.output

    target = ledger.of("c2", "Registered")
    ledger.sql("UPDATE stored_events SET state = ? WHERE rowid = ?",
               (target.state.replace(b'"c2"', b'"c9"'), target.position))  # fmt: skip
    result = CliRunner().invoke(cli, ["verify"])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "verify: FAILED, 2 problems"
    assert lines[1].startswith(
        f"first problem: event at position {target.position} (contact {LOC}/c2 version 1, "
        "Registered;"
    )
    as_json = json.loads(CliRunner().invoke(cli, ["verify", "--json"]).stdout)
    assert as_json["first_problem"]["position"] == target.position
    assert as_json["first_problem"]["kind"] == "changed"


def _state(recorded: Any, effect: dict[str, Any]) -> bytes:
    t = {"_type_": "datetime_iso", "_data_": recorded.isoformat()}
    return json.dumps(
        {
            "timestamp": t,
            "occurred_at": t,
            "source": {"_type_": "source", "_data_": "support"},
            "actor": "mallory",
            "idempotency_key": None,
            "policy_version": "builtin-1",
            "effect": effect,
            "detail": {"ticket": "SUP-1"},
        },
        separators=(",", ":"),
    ).encode()


def test_checkpoint_times_are_those_of_the_clock(ledger: Ledger) -> None:
    [(created,)] = ledger.sql("SELECT created_at FROM dnd_notary_checkpoints")
    assert created == format_time(T0 + timedelta(minutes=100))
