"""A process killed with SIGKILL while appending or notarising leaves a notary that recovers.

A child process appends events and catches the notary up, in small batches,
over and over; the parent kills it with SIGKILL, either right after an append
(before the notary ran) or at a random moment (often inside a notary batch or
an append). After each kill a fresh process must find the tree consistent with
the stored events, and after catching up, the tree and its checkpoints must
cover every event.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.integration.test_notary import KEY, PII, VKEY

from dnd_ledger.application import DndLedger
from dnd_ledger.notary.signed_note import parse_vkey
from dnd_ledger.notary.verify import verify_ledger

CHILD = """
import sys, time
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.notary.signed_note import SigningKey

path, start = sys.argv[1], int(sys.argv[2])
key = SigningKey({name!r}, Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
app = DndLedger(path, pii_key={pii!r}, signing_key=key, checkpoint_every=15)
i = start
while True:
    app.execute_many(
        [c.RegisterContact("loc-1", f"c{{n}}", (f"+1415{{n:07d}}",)) for n in range(i, i + 10)]
    )
    i += 10
    print("appended", i, flush=True)
    time.sleep(0.02)
    app.notary.catch_up(batch_size=7)
    print("notarised", flush=True)
"""


def open_ledger(path: Path) -> DndLedger:
    return DndLedger(str(path), pii_key=PII, signing_key=KEY, checkpoint_every=15)


def run_until_killed(
    path: Path, start: int, *, right_after_append: bool, rng: random.Random
) -> int:
    script = CHILD.format(name=KEY.name, pii=PII)
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(path), str(start)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    appended = start
    try:
        rounds = rng.randint(1, 4)
        for line in child.stdout:
            if line.startswith("appended"):
                appended = int(line.split()[1])
                rounds -= 1
                if rounds == 0:
                    if not right_after_append:
                        time.sleep(rng.uniform(0, 0.08))
                    break
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    return appended


@pytest.mark.slow
def test_after_kill_9_the_tree_and_checkpoints_recover_and_cover_every_event(
    tmp_path: Path,
) -> None:
    rng = random.Random(7)
    path = tmp_path / "killed.db"
    start = 0
    killed_between = 0
    for round_ in range(8):
        start = run_until_killed(path, start, right_after_append=round_ % 2 == 0, rng=rng) + 1000
        app = open_ledger(path)
        try:
            events = len(app.recorder.select_notifications(start=1, limit=10**6))
            before = verify_ledger(app, parse_vkey(VKEY))
            # What the dead process left is consistent: notarised events match, the rest wait.
            assert before.problem_count == 0, before.to_json()
            assert before.tree_size + before.pending == events
            killed_between += before.pending > 0

            record = app.notary.checkpoint()  # a restarted process catches up
            assert record is not None
            after = verify_ledger(app, parse_vkey(VKEY))
            assert after.status == "ok", after.to_json()
            assert after.tree_size == events == record.size == after.verified_size
            assert after.pending == 0
            sizes = [cp.size for cp in app.notary.checkpoints()]
            assert sizes == sorted(set(sizes))
        finally:
            app.close()
    # The kills did land between an append and the notary, not only after it.
    assert killed_between >= 3
