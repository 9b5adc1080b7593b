"""The freshness gate: every query is covered by a check that started after it arrived."""

from __future__ import annotations

import threading
import time

import pytest

from dnd_ledger.domain.errors import LedgerUnavailable
from dnd_ledger.projections.freshness import FreshnessGate


class BlockingCheck:
    """A check that records when each run started and waits to be released."""

    def __init__(self) -> None:
        self.runs: list[float] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        self.fail: BaseException | None = None

    def __call__(self) -> None:
        self.runs.append(time.monotonic())
        self.entered.set()
        self.release.wait(10)
        if self.fail is not None:
            raise self.fail


def _start(gate: FreshnessGate, results: list[object]) -> threading.Thread:
    def run() -> None:
        try:
            gate.ensure()
            results.append("ok")
        except LedgerUnavailable as e:
            results.append(e)

    t = threading.Thread(target=run)
    t.start()
    return t


def test_a_caller_that_arrives_during_a_check_waits_for_the_next_one() -> None:
    check = BlockingCheck()
    gate = FreshnessGate(check, deadline=10)
    first: list[object] = []
    a = _start(gate, first)
    assert check.entered.wait(5)
    arrived = time.monotonic()
    later: list[object] = []
    waiting = [_start(gate, later) for _ in range(5)]
    time.sleep(0.05)
    check.release.set()
    for t in (a, *waiting):
        t.join(10)
    assert first == ["ok"]
    assert later == ["ok"] * 5
    # One check for the first caller, and ONE more for the five that came during it,
    # which started after they all arrived.
    assert len(check.runs) == 2
    assert check.runs[1] > arrived


def test_a_failed_check_fails_every_caller_it_covers() -> None:
    check = BlockingCheck()
    check.fail = RuntimeError("database gone")
    check.release.set()
    gate = FreshnessGate(check, deadline=10)
    with pytest.raises(LedgerUnavailable, match="RuntimeError: database gone"):
        gate.ensure()
    check.fail = LedgerUnavailable("views stuck", lag=7)
    with pytest.raises(LedgerUnavailable, match="views stuck") as caught:
        gate.ensure()
    assert caught.value.lag == 7
    check.fail = None
    gate.ensure()  # the next check passes: so does its caller


def test_a_check_that_outlasts_the_deadline_fails_the_waiting_callers_closed() -> None:
    check = BlockingCheck()
    gate = FreshnessGate(check, deadline=0.2)
    first: list[object] = []
    a = _start(gate, first)
    assert check.entered.wait(5)
    with pytest.raises(LedgerUnavailable, match=r"could not be shown current within 0\.2 s"):
        gate.ensure()
    check.release.set()
    a.join(10)
    assert first == ["ok"]
