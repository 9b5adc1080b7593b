"""The CLI fails closed: exit status 3 and one ``Error:`` line when the views are stuck,
and out-of-range times are refused at the door."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

EXE = Path(sys.executable).with_name("dnd-ledger")
P = "+14155550100"


def run(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DND_LEDGER_")}
    return subprocess.run(
        [str(EXE), "--db", str(db), *args], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    assert run(path, "init").returncode == 0
    added = run(path, "contacts", "add", "loc-1", "ada", "--phone", P)
    assert added.returncode == 0, added.stderr
    return path


def test_a_stored_event_the_views_cannot_apply_makes_decisions_exit_3(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        topic = conn.execute("SELECT topic FROM stored_events LIMIT 1").fetchone()[0]
        conn.execute(
            "INSERT INTO stored_events (originator_id, originator_version, topic, state)"
            " VALUES (?, 1, ?, ?)",
            (uuid.uuid4().hex, topic, b"{not json"),
        )
    for args in (
        ("can-send", "loc-1", "ada", "--channel", "sms"),
        ("can-send", "loc-1", "ada", "--channel", "sms", "--json", "--exit-code"),
        ("status", "loc-1", "ada"),
        ("audit", "loc-1"),
    ):
        out = run(db, *args)
        assert out.returncode == 3, (args, out.stdout, out.stderr)
        assert out.stdout == ""
        assert out.stderr.startswith("Error: the views are stuck")
        assert "could not be applied" in out.stderr
    status = run(db, "projections", "status", "--json")
    assert status.returncode == 3
    views = json.loads(status.stdout)
    assert all(v["lag"] == 1 for v in views)
    assert all(v["error"].startswith("stuck at position ") for v in views)
    table = run(db, "projections", "status")
    assert table.returncode == 3
    assert "views stuck at position" in table.stdout


@pytest.mark.parametrize(
    "when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00", "1969-12-31T23:00:00Z"]
)
def test_out_of_range_times_are_refused_and_append_nothing(db: Path, when: str) -> None:
    with sqlite3.connect(db) as conn:
        before = conn.execute("SELECT COUNT(*) FROM stored_events").fetchone()[0]
    for args in (
        ("contacts", "add", "loc-1", "eve", "--phone", P, "--at", when),
        ("dnd", "set", "loc-1", "ada", "--channel", "sms", "--actor", "a", "--at", when),
        ("inbound", "loc-1", "--channel", "sms", "--from", P, "--body", "STOP",
         "--message-sid", "SM1", "--at", when),
    ):  # fmt: skip
        out = run(db, *args)
        assert out.returncode == 1, (args, out.stderr)
        assert out.stderr.startswith("Error: occurred_at")
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM stored_events").fetchone()[0] == before


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00"])
def test_query_times_outside_the_range_are_refused(db: Path, when: str) -> None:
    for args in (
        ("status", "loc-1", "ada", "--as-of", when),
        ("can-send", "loc-1", "ada", "--channel", "sms", "--known-at", when),
        ("audit", "loc-1", "--since", when),
    ):
        out = run(db, *args)
        assert out.returncode == 1, (args, out.stderr)
        assert "outside the range of times" in out.stderr


def test_a_backfilled_rfc_2822_time_in_year_1_is_refused_not_stored_as_2001(
    db: Path, tmp_path: Path
) -> None:
    export = tmp_path / "bounces.csv"
    export.write_text(
        'address,code,error,created_at\nbob@example.com,550,x,"Mon, 01 Jan 0001 00:00:00 +0000"\n'
    )
    with sqlite3.connect(db) as conn:
        before = conn.execute("SELECT COUNT(*) FROM stored_events").fetchone()[0]
    out = run(db, "ingest", str(export), "--format", "mailgun-suppressions", "--location",
              "loc-1", "--list", "bounces", "--json")  # fmt: skip
    assert out.returncode == 1, out.stderr
    summary = json.loads(out.stdout)
    assert (summary["appended"], summary["rejected"]) == (0, 1)
    assert summary["errors"][0]["error"].startswith("created_at:")
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM stored_events").fetchone()[0] == before
