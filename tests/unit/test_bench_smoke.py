"""The benchmark harness runs end to end on a tiny workload and reports every figure.

No timing is asserted: only that each figure was measured, with its baseline and
ratio where it has one, and that the JSON and the table say so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.conftest import PG_ADMIN_URL, require_postgres

from dnd_ledger.bench.cli import main

RELATIVE = {"ingest_pipeline", "ingest_crud", "ingest_raw", "append_p50", "append_p99",
            "can_send", "can_send_warm", "rebuild", "ingest_large"}  # fmt: skip
ABSOLUTE = {"as_of", "as_of_warm", "peak_rss"}
TARGETED = {"ingest_pipeline", "can_send", "can_send_warm", "rebuild", "as_of", "as_of_warm",
            "ingest_large", "peak_rss"}  # fmt: skip
#: Figures without a CPU time (memory).
NO_CPU = {"peak_rss"}
TINY = ["--events", "300", "--large", "0", "--reps", "2", "--rebuild-reps", "1",
        "--latency-samples", "20", "--lookups", "50", "--no-progress"]  # fmt: skip


def run_bench(tmp_path: Path, *extra: str) -> tuple[str, dict[str, Any]]:
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(main, [*TINY, "--json", str(out), *extra])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output, json.loads(out.read_text())


def check_report(output: str, doc: dict[str, Any], *, server: bool = False) -> None:
    figures = {f["key"]: f for f in doc["figures"]}
    assert set(figures) == RELATIVE | ABSOLUTE
    for key, f in figures.items():
        check_cpu(key, f, server)
        assert f["value"] is not None, key
        assert f["value"] > 0, key
        assert f["label"] in output, key
        if key in RELATIVE:
            assert f["baseline"]["label"], key
            assert f["baseline"]["value"] > 0, key
            assert f["ratio"] == pytest.approx(f["value"] / f["baseline"]["value"]), key
        else:
            assert f["baseline"] is None, key
            assert f["ratio"] is None, key
        if key in TARGETED:
            assert f["target"]["text"] in output, key
            assert isinstance(f["met"], bool), key
        else:
            assert f["target"] is None, key
            assert f["met"] is None, key
    meta = doc["meta"]
    assert meta["machine"]["nproc"] >= 1
    assert meta["ingest"]["commands"] == 300
    # The same-pipeline CRUD service ran the same commands to the same kinds of outcome.
    ingest = meta["ingest"]
    assert sum(ingest["pipeline_outcomes"].values()) == 300
    assert sum(ingest["ledger_outcomes"].values()) == 300
    assert {"appended", "duplicate", "ignored"} <= set(ingest["pipeline_outcomes"])
    assert "same-pipeline CRUD" in output
    assert "us/op wall / CPU" in output
    # The workload is the realistic mix: refusals, duplicates and late events all occur.
    assert {"appended", "duplicate", "ignored"} <= set(meta["outcomes"])
    assert meta["late_items"] > 0
    assert meta["workload_mix"]["user-clear"] > 0


def check_cpu(key: str, f: dict[str, Any], server: bool) -> None:
    """CPU time per operation beside wall time, for the figure and its baseline."""
    if key in NO_CPU:
        assert f["cpu_us"] is None, key
        return
    assert f["cpu_us"] > 0, key
    assert f["wall_us"] > 0, key
    assert (f["server_us"] is not None) is server, key
    if key in RELATIVE:
        assert f["baseline_cpu_us"] > 0, key
        assert f["baseline_wall_us"] > 0, key
        assert f["cpu_ratio"] > 0, key
        if f["target"] is not None and f["target"]["on"] == "ratio":
            assert isinstance(f["met_cpu"], bool), key


def test_the_harness_reports_every_figure_with_its_baseline_on_sqlite(tmp_path: Path) -> None:
    work = tmp_path / "work"
    output, doc = run_bench(tmp_path, "--dir", str(work))
    check_report(output, doc)
    assert doc["meta"]["backend"] == "sqlite"
    assert not any(work.iterdir()), "the run's database files are removed afterwards"


@pytest.mark.postgres
def test_the_harness_runs_on_postgresql_and_drops_its_database(tmp_path: Path) -> None:
    require_postgres()
    import psycopg

    output, doc = run_bench(tmp_path, "--backend", "postgres", "--pg-admin-url", PG_ADMIN_URL)
    # CPU time includes the run's database backends (same machine, /proc readable).
    check_report(output, doc, server=doc["meta"]["server_cpu"])
    names = [doc["meta"][k].rsplit("/", 1)[1] for k in ("database", "pipeline_database")]
    with psycopg.connect(PG_ADMIN_URL) as conn:
        found = conn.execute(
            "SELECT datname FROM pg_database WHERE datname = ANY(%s)", (names,)
        ).fetchall()
    assert found == []
