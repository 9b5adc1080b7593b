"""The HTTP bench's table: medians over rounds, ratios within a round."""

from __future__ import annotations

from dnd_ledger.bench.http_load import Run, Table


def run(rps: float, p99: float = 1.0, failed: int = 0) -> Run:
    return Run(int(rps * 2), 2.0, 0.5, p99, failed, cpu_s=0.001 * rps)


def test_ratios_are_taken_within_each_round_and_their_median_reported() -> None:
    t = Table()
    for a, b in ((100, 200), (300, 300), (50, 200)):  # ratios 0.5, 1.0, 0.25
        t.add("ledger", 1, run(a))
        t.add("raw", 1, run(b))
    assert t.ratio("ledger", "raw", 1) == 0.5
    assert t.median("ledger", 1, "rps") == 100


def test_failures_are_summed_and_shown() -> None:
    t = Table()
    t.add("ledger", 8, run(10, failed=2))
    t.add("ledger", 8, run(10, failed=3))
    t.add("raw", 8, run(20))
    t.add("raw", 8, run(20))
    text = t.render(["ledger", "raw"], [8], "ledger")
    assert t.failed("ledger") == 5
    assert "ledger 5, raw 0" in text
    assert "| 8 | 10 (0.50 ms, 1.0 ms; " in text
    assert "0.50x" in text
