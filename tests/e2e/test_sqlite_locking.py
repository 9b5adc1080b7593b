"""SQLite: commands wait for the write lock instead of failing with "database is locked".

Real ``dnd-ledger`` processes on one database file: one command while another
connection holds the write lock, and many writers and readers at once.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

L = "loc-1"
EXE = str(Path(sys.executable).with_name("dnd-ledger"))


def _env(db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DND_LEDGER_")}
    env["DND_LEDGER_DB"] = str(db)
    return env


def _run(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=_env(db), timeout=120)


def _start(db: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [EXE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(db)
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    assert _run(path, "init").returncode == 0
    for i in range(8):
        done = _run(path, "contacts", "add", L, f"c-{i}", "--phone", f"+1415555{i:04d}")
        assert done.returncode == 0, done.stderr
    return path


def test_a_command_waits_while_another_connection_holds_the_write_lock(db: Path) -> None:
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        reader = _start(db, "can-send", L, "c-0", "--channel", "sms", "--json")
        writer = _start(
            db, "inbound", L, "--channel", "sms", "--from", "+14155550001",
            "--body", "STOP", "--message-sid", "SM-held", "--json",
        )  # fmt: skip
        time.sleep(3)  # both started and are waiting for the lock, not failing
        assert reader.poll() is None, reader.communicate()
        assert writer.poll() is None, writer.communicate()
        holder.execute("COMMIT")
    finally:
        holder.close()
    r_out, r_err = reader.communicate(timeout=120)
    w_out, w_err = writer.communicate(timeout=120)
    assert reader.returncode == 0, r_err
    assert json.loads(r_out)["allowed"] is True
    assert writer.returncode == 0, w_err
    assert json.loads(w_out)["result"] == "appended"
    after = _run(db, "can-send", L, "c-1", "--channel", "sms", "--json")
    assert json.loads(after.stdout)["allowed"] is False


def _stop_from(db: Path, i: int) -> subprocess.Popen[str]:
    sid = f"SM-{i}"
    return _start(db, "inbound", L, "--channel", "sms", "--from", f"+1415555{i:04d}",
                  "--body", "STOP", "--message-sid", sid, "--json")  # fmt: skip


def test_eight_writers_and_four_readers_at_once_all_succeed(db: Path) -> None:
    writers = [_stop_from(db, i) for i in range(8)]
    readers = [_start(db, "can-send", L, f"c-{i}", "--channel", "email") for i in range(4)]
    failures = []
    for p in [*writers, *readers]:
        _out, err = p.communicate(timeout=300)
        if p.returncode != 0:
            failures.append((p.args, p.returncode, err))
    assert failures == []
    for i in range(8):
        decided = _run(db, "can-send", L, f"c-{i}", "--channel", "sms", "--json")
        assert json.loads(decided.stdout)["allowed"] is False, i
