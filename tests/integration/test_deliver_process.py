"""A deliverer process killed with SIGKILL mid-stream and restarted loses nothing and
doubles nothing but the one change in flight; a second deliverer is held off by the lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from tests.conftest import SHARED_DATABASES
from tests.integration.receiver import receiver

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.domain.values import Channel
from dnd_ledger.projections.changes import feed_of

pytestmark = pytest.mark.slow
KEY = b"test-key-0123456789abcdef"
SECRET = "whsec-7Yq2Lp9Vx4Rt8Kz3"
CONTACTS = 8
ROUNDS = 8


def _history(db_url: str) -> list[tuple[int, str]]:
    """Changes for CONTACTS contacts, ROUNDS each; returns (id, contact) in feed order."""
    ledger = DndLedger(db_url, pii_key=KEY)
    try:
        for i in range(CONTACTS):
            ledger.execute(c.RegisterContact("loc-1", f"c{i}", (f"+1415555{i:04d}",)))
        for r in range(ROUNDS):
            command = c.SetDnd if r % 2 == 0 else c.ClearDnd
            for i in range(CONTACTS):
                ledger.execute(command("loc-1", f"c{i}", (Channel.SMS,), "alice"))
        feed = feed_of(ledger)
        feed.current()
        return [(ch.id, ch.contact_id) for ch in feed.page(None, 0, 1000)]
    finally:
        ledger.close()


def _deliver(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "dnd_ledger", "deliver", "--config", str(config), *args]


@SHARED_DATABASES
def test_a_killed_deliverer_restarts_losing_and_doubling_nothing(
    db_url: str, tmp_path: Path
) -> None:
    changes = _history(db_url)
    assert len(changes) == CONTACTS * ROUNDS
    env = {**os.environ, "DND_LEDGER_DB": db_url, "DND_LEDGER_PII_KEY": KEY.hex()}
    with receiver() as rx:
        rx.hold_after = 15  # the 15th change is recorded, its answer held: killed mid-stream
        config = tmp_path / "ledger.toml"
        config.write_text(
            f'[[subscribers]]\nname = "crm"\nurl = "{rx.url}"\nsecret = "{SECRET}"\n'
            "timeout_seconds = 120\n"
        )  # timeout_seconds: the held answer is waited for, not retried
        first = subprocess.Popen(
            _deliver(config, "--follow", "--interval", "0.05", "--lease", "2"),
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            give_up = time.monotonic() + 60
            while len(rx.ids()) < 15 and time.monotonic() < give_up:
                time.sleep(0.01)
            assert len(rx.ids()) == 15, "the deliverer is held at the 15th change"
            # Meanwhile a second deliverer is refused: one per database.
            second = subprocess.run(
                _deliver(config, "--once"), env=env, capture_output=True, text=True,
                timeout=60,
            )  # fmt: skip
            assert second.returncode == 1, second.stderr
            assert "another deliverer holds the lock" in second.stderr
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
        delivered_before = len(rx.ids())
        assert delivered_before == 15 < len(changes), "killed mid-stream"
        rx.release()
        time.sleep(2.5)  # the killed process's SQLite lease expires
        again = subprocess.run(
            _deliver(config), env=env, capture_output=True, text=True, timeout=120
        )
        assert again.returncode == 0, again.stderr
        ids = rx.ids()
    counts = Counter(ids)
    assert set(ids) == {i for i, _ in changes}, "nothing lost"
    doubled = [i for i, n in counts.items() if n > 1]
    assert len(doubled) <= 1, f"only the change in flight may come twice: {doubled}"
    assert max(counts.values()) <= 2
    contact_of = dict(changes)
    for contact in {k for _, k in changes}:
        seen = [i for i in ids if contact_of[i] == contact]
        firsts = list(dict.fromkeys(seen))
        assert firsts == sorted(firsts), f"order per contact kept for {contact}"
