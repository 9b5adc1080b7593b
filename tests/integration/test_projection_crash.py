"""A projector killed with SIGKILL in the middle of catching up resumes exactly once.

A SQLite ledger holding about 20,000 events whose views were never caught up is
opened by a real subprocess that starts ``projector.catch_up(batch_size=200)``.

* ``test_killed_from_outside_mid_catch_up``: the test polls the database and
  sends SIGKILL once the views' tracking position is a few batches past 0 and
  short of the head, wherever the process happens to be.
* ``test_killed_inside_the_view_transaction``: the process kills itself inside
  the write transaction of its eighth batch, after that batch's view rows were
  written and before the tracking position was, i.e. at the worst moment (also
  during a ``rebuild``).

Each time a fresh ledger then catches up, and the views must hold every event
exactly once (no lost rows, no doubled rows) and equal a full rebuild.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.integration.test_projections import view_rows

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.domain.values import ALL_CHANNELS, Channel, EmailSignal
from dnd_ledger.projections.schema import TRACKING_PREFIX, VIEWS

pytestmark = pytest.mark.slow

KEY = b"test-key-0123456789abcdef"
EVENTS = 20_000
BATCH = 200
LOCATIONS = ("loc-east", "loc-west")


def history() -> Iterator[list[c.Command]]:
    """Batches of a realistic mix: pairs of contacts sharing a phone, STOP replies,
    carrier errors, email complaints and bounces, user toggles, late provider events."""
    t0 = datetime.now(UTC) - timedelta(days=60)
    i = 0
    while True:
        batch: list[c.Command] = []
        for _ in range(50):
            i += 1
            loc = LOCATIONS[i % 2]
            at = t0 + timedelta(minutes=10 * i)
            phone, a, b = f"+1415{i:07d}", f"a{i}", f"b{i}"
            batch += [
                c.RegisterContact(loc, a, (phone,), (f"{a}@example.com",), at, "alice"),
                c.RegisterContact(loc, b, (phone,), (f"{b}@example.com",), at, "alice"),
            ]
            if i % 3 == 0:
                batch.append(c.ReceiveInbound(loc, Channel.SMS, phone, "STOP", f"SM{i}", at))
            if i % 4 == 0:
                batch.append(c.SetDnd(loc, a, (Channel.CALL, Channel.FB), "alice", None, at))
            if i % 5 == 0:
                signal_ = EmailSignal.COMPLAINED if i % 10 else EmailSignal.FAILED_PERMANENT
                batch.append(
                    c.ReportEmailEvent(
                        loc, f"{b}@example.com", signal_, f"tok{i}", "bounce", None, at
                    )
                )
            if i % 7 == 0:  # a carrier error that happened before the STOP, reported late
                late = at - timedelta(minutes=5)
                batch.append(
                    c.ReportCarrierStatus(loc, Channel.SMS, phone, f"MM{i}", "failed", 30003, late)
                )
            if i % 11 == 0:
                batch.append(c.ClearDnd(loc, a, (Channel.FB,), "bob", None, False, at))
        yield batch


@dataclass(frozen=True)
class Template:
    path: Path
    head: int
    contacts: Counter[str]  # registered contacts per location


def make_template(path: Path, n_events: int) -> Template:
    """A ledger with >= ``n_events`` events and empty views (as when a rebuild starts).

    Written in memory, then copied to ``path`` with SQLite's backup API: the
    same tables and rows as a file written directly, without a sync per commit.
    """
    ledger = DndLedger("memory:", pii_key=KEY)
    contacts: Counter[str] = Counter()
    try:
        for batch in history():
            outcomes = ledger.execute_many(batch)
            assert {o.result for o in outcomes} <= {"appended", "duplicate"}
            for command, outcome in zip(batch, outcomes, strict=True):
                if isinstance(command, c.RegisterContact) and outcome.result == "appended":
                    contacts[command.location_id] += 1
            if ledger.projector.head() >= n_events:
                break
        # The ledger wrote its views with its events; empty them, positions too.
        ledger.projector.clear(VIEWS)
        assert ledger.projector.positions() == dict.fromkeys(VIEWS, 0)
        head = ledger.projector.head()
        memory = ledger.env["SQLITE_DBNAME"]
        with sqlite3.connect(memory, uri=True) as src, sqlite3.connect(path) as dst:
            src.backup(dst)
    finally:
        ledger.close()
    return Template(path, head, contacts)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return make_template(tmp_path_factory.mktemp("crash") / "big.db", EVENTS)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return make_template(tmp_path_factory.mktemp("crash") / "small.db", 3_000)


def copy_db(template: Template, target: Path) -> Path:
    with sqlite3.connect(template.path) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return target


def tracking_positions(db: Path) -> dict[str, int]:
    """The views' positions, read with plain sqlite3 (no ledger in the test process)."""
    with sqlite3.connect(db, timeout=30) as conn:
        rows = conn.execute(
            "SELECT application_name, notification_id FROM tracking WHERE application_name LIKE ?",
            (TRACKING_PREFIX + "%",),
        ).fetchall()
    return {name.removeprefix(TRACKING_PREFIX): int(pos) for name, pos in rows}


def count(db: Path, sql: str) -> int:
    with sqlite3.connect(db, timeout=30) as conn:
        return int(conn.execute(sql).fetchone()[0])


def start(tmp_path: Path, db: Path, body: str) -> subprocess.Popen[str]:
    script = tmp_path / "projector.py"
    script.write_text(
        textwrap.dedent(
            """\
            import os, signal, sys
            from dnd_ledger.application import DndLedger

            ledger = DndLedger(sys.argv[1], pii_key=bytes.fromhex(sys.argv[2]))
            """
        )
        + textwrap.dedent(body)
    )
    return subprocess.Popen(
        [sys.executable, str(script), str(db), KEY.hex()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def check_after_kill(db: Path, head: int) -> int:
    """What the killed process left: whole batches only, every view at the same position."""
    positions = tracking_positions(db)
    assert set(positions) <= set(VIEWS)
    done = set(positions.values()) or {0}
    assert len(done) == 1, positions  # the views advance together, in one transaction
    position = done.pop()
    assert 0 < position < head, (position, head)
    assert position % BATCH == 0  # whole batches
    assert count(db, "SELECT COUNT(*) FROM dnd_audit") == position  # no partial batch
    assert count(db, "SELECT COALESCE(MAX(position), 0) FROM dnd_audit") == position
    return position


def check_resumed(db: Path, template: Template, position: int) -> None:
    """A fresh ledger catches up from the position; the views hold each event once."""
    head, registered = template.head, template.contacts
    contacts = sum(registered.values())
    ledger = DndLedger(str(db), pii_key=KEY)
    try:
        assert ledger.projector.positions() == dict.fromkeys(VIEWS, position)
        assert ledger.projector.catch_up() == head - position
        assert ledger.projector.positions() == dict.fromkeys(VIEWS, head)

        # The audit trail: one row per event, at its position; contiguous and unique.
        assert count(db, "SELECT COUNT(*) FROM dnd_audit") == head
        assert count(db, "SELECT COUNT(DISTINCT position) FROM dnd_audit") == head
        assert count(db, "SELECT MIN(position) FROM dnd_audit") == 1
        assert count(db, "SELECT MAX(position) FROM dnd_audit") == head
        assert count(db, "SELECT COUNT(*) FROM stored_events") == head
        registrations = "SELECT COUNT(*) FROM dnd_audit WHERE event = 'Registered'"
        assert count(db, registrations) == contacts
        # Status: one row per contact, its six channels in it.
        assert count(db, "SELECT COUNT(*) FROM dnd_status_contacts") == contacts
        # Stats: every dimension counts every contact of its location exactly once.
        stats = ledger.views.stats()
        assert set(stats) == set(registered)
        for location, dims in stats.items():
            assert set(dims) == {"overall", *(f"channel:{ch.value}" for ch in ALL_CHANNELS)}
            for dim, values in dims.items():
                assert sum(values.values()) == registered[location], (location, dim)
        # The address index: every claim once (two contacts on each phone, one on each email).
        assert count(db, "SELECT COUNT(*) FROM dnd_address_index") == 2 * contacts

        resumed = view_rows(ledger)
        ledger.projector.rebuild(list(VIEWS))
        assert view_rows(ledger) == resumed
    finally:
        ledger.close()


def test_killed_from_outside_mid_catch_up(big: Template, tmp_path: Path) -> None:
    db = copy_db(big, tmp_path / "ledger.db")
    head = big.head
    assert head >= EVENTS
    proc = start(
        tmp_path,
        db,
        f"""\
        print("catching up", flush=True)
        ledger.projector.catch_up(batch_size={BATCH})
        print("finished", flush=True)
        """,
    )
    seen = 0
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                _, err = proc.communicate()
                pytest.fail(f"the projector exited ({proc.returncode}) before it was killed: {err}")
            try:
                seen = min(tracking_positions(db).values(), default=0)
            except sqlite3.OperationalError:  # locked by the writer: look again
                continue
            if 10 * BATCH <= seen < head:  # a few batches in, far from done
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        else:
            pytest.fail(f"no progress within 60 s (position {seen})")
    finally:
        if proc.poll() is None:
            proc.kill()
        out, _ = proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert "finished" not in out
    position = check_after_kill(db, head)
    assert position >= seen
    check_resumed(db, big, position)


KILL_IN_TRANSACTION = """\
from dnd_ledger.projections.projector import Projector

batches = 0
apply = Projector._apply


def counted(self, batch, positions):
    global batches
    batches += 1
    apply(self, batch, positions)


def insert_tracking(cursor, tracking):
    # Called inside the batch's transaction, after its view rows were written.
    if batches == KILL_AT:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(cursor, tracking)


Projector._apply = counted
original = ledger.projector.tracking._insert_tracking
ledger.projector.tracking._insert_tracking = insert_tracking
"""


@pytest.mark.parametrize(
    ("operation", "batch", "kill_at"),
    [("catch_up", BATCH, 8), ("rebuild", BATCH, 2)],
)
def test_killed_inside_the_view_transaction(
    small: Template, tmp_path: Path, operation: str, batch: int, kill_at: int
) -> None:
    db = copy_db(small, tmp_path / "ledger.db")
    head = small.head
    assert head > kill_at * batch
    if operation == "rebuild":
        # The views are complete; the rebuild clears them, then dies on its way back.
        ledger = DndLedger(str(db), pii_key=KEY)
        try:
            ledger.projector.catch_up()
        finally:
            ledger.close()
        assert tracking_positions(db) == dict.fromkeys(VIEWS, head)
        call = f"ledger.projector.rebuild({list(VIEWS)!r}, batch_size={batch})"
    else:
        call = f"ledger.projector.catch_up(batch_size={batch})"
    body = f"KILL_AT = {kill_at}\n{KILL_IN_TRANSACTION}{call}\nprint('finished', flush=True)\n"
    proc = start(tmp_path, db, body)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err
    assert "finished" not in out
    done = (kill_at - 1) * batch  # the batch being written when it died is not there
    assert tracking_positions(db) == dict.fromkeys(VIEWS, done)
    assert count(db, "SELECT COUNT(*) FROM dnd_audit") == done
    assert count(db, "SELECT COALESCE(MAX(position), 0) FROM dnd_audit") == done
    check_resumed(db, small, done)
