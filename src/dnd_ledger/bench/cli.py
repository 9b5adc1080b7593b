"""The harness's command line: options, the run, the table and the JSON."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from dnd_ledger.bench.measure import PG_ADMIN_URL, Options, Run
from dnd_ledger.bench.report import table, write_json

EPILOG = """\b
Examples:
  scripts/bench                                   # SQLite, the default workload (about a minute)
  scripts/bench --backend postgres --json pg.json
  scripts/bench --large 1000000 --json 1m.json    # flatness and RSS at 1M stored events (slow)
  scripts/bench --events 300 --large 0 --reps 3   # a quick look
"""


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--backend",
    type=click.Choice(["sqlite", "postgres"]),
    default="sqlite",
    show_default=True,
    help="Database engine (ledger and baselines).",
)
@click.option(
    "--events",
    type=click.IntRange(min=10),
    default=5000,
    show_default=True,
    help="Commands in the ingest workload.",
)
@click.option(
    "--contacts",
    type=click.IntRange(min=1),
    default=None,
    help="Contacts registered before the stream  [default: events/10, at least 20]",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Commands per execute_many batch (and per CRUD/raw transaction).",
)
@click.option(
    "--large",
    type=click.IntRange(min=0),
    default=30_000,
    show_default=True,
    help="Stored events for the large-size ingest probe (1000000 for the issue's 1M case).",
)
@click.option(
    "--probe",
    type=click.IntRange(min=10),
    default=None,
    help="Commands in each flatness probe  [default: min(events, 2000)]",
)
@click.option(
    "--reps",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Repetitions (ingest slices, can-send rounds); figures are medians.",
)
@click.option("--rebuild-reps", type=click.IntRange(min=1), default=3, show_default=True)
@click.option(
    "--latency-samples",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="Single commands timed one per transaction.",
)
@click.option(
    "--lookups",
    type=click.IntRange(min=1),
    default=2000,
    show_default=True,
    help="can-send lookups per repetition.",
)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--dir",
    "workdir",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory for the SQLite files  [default: a temporary directory]",
)
@click.option(
    "--keep", is_flag=True, help="Keep the databases (SQLite files, PostgreSQL database)."
)
@click.option(
    "--pg-admin-url",
    default=lambda: os.environ.get("DND_LEDGER_TEST_POSTGRES", PG_ADMIN_URL),
    show_default=PG_ADMIN_URL,
    help="PostgreSQL admin URL: a database is created for the run and dropped after it.",
)
@click.option(
    "--json",
    "json_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write every figure, its baseline and the ratio to this file.",
)
@click.option(
    "--profile",
    "profile_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="cProfile the ledger's side of each phase into DIR (*.prof, *.txt); timings then"
    " include the profiler's overhead.",
)
@click.option("--no-progress", is_flag=True, help="No progress bar on stderr.")
def main(
    backend: str, events: int, contacts: int | None, batch: int, large: int, probe: int | None,
    reps: int, rebuild_reps: int, latency_samples: int, lookups: int, seed: int,
    workdir: str | None, keep: bool, pg_admin_url: str, json_file: str | None,
    profile_dir: str | None, no_progress: bool,
) -> None:  # fmt: skip
    """Benchmark the ledger against plain-SQL baselines, in one run on one machine.

    A synthetic consent workload (contacts in a few locations; inbound STOP/START
    and other messages, carrier errors, Mailgun failures and complaints, users
    setting and clearing DND, duplicates, late events) drives every figure; each
    is printed beside the baseline measured in the same run, the ratio and the
    target.
    """
    opts = Options(
        backend=backend, events=events, contacts=contacts, batch=batch, large=large, probe=probe,
        reps=reps, rebuild_reps=rebuild_reps, latency_samples=latency_samples, lookups=lookups,
        seed=seed, workdir=workdir, keep=keep, pg_admin_url=pg_admin_url,
        profile_dir=profile_dir, progress=not no_progress,
    )  # fmt: skip
    meta, figures = Run(opts).run()
    meta["command"] = " ".join(["scripts/bench", *sys.argv[1:]])
    m = meta["machine"]
    click.echo(
        f"dnd-ledger bench: {backend} ({meta['server_version']}), {events} commands, "
        f"{meta['contacts']} contacts, batch {batch}; nproc {m['nproc']}, "
        f"Python {m['python']}, eventsourcing {m['eventsourcing']}; {meta['seconds']:.1f} s"
    )
    if meta.get("loadavg_start"):
        click.echo(
            f"load average (1/5/15 min) at start {meta['loadavg_start']}, at end {meta['loadavg_end']}"
        )
    if "gc_thresholds" in meta:
        click.echo(
            f"collector: thresholds {tuple(meta['gc_thresholds'])}, {meta['gc_frozen']} objects"
            " frozen at start (runtime.tune_gc, as the CLI and the service run)"
        )
    src = meta.get("source")
    if src:
        changed = f", {len(src['changed'])} source files changed since" if src["changed"] else ""
        click.echo(f"source: commit {src['head'][:10]}{changed}")
    cpu = "this process (SQLite runs in it)"
    if backend == "postgres":
        cpu = "this process + the run's database backends" if meta.get("server_cpu") else (
            "this process only (the server's backends could not be read from /proc)"
        )  # fmt: skip
    click.echo(f"CPU time: {cpu}; the CPU ratio reads like the wall ratio")
    click.echo(table(figures))
    flat = meta.get("flatness") or {}
    if flat.get("machine_drift"):
        click.echo(
            f"flatness: the CRUD gauge ran {flat['machine_drift']:.2f}x as fast at the large probe"
            f" as at the small one; ratio adjusted for that: {flat['ratio_adjusted_for_drift']:.2f}x"
        )
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(meta["outcomes"].items()))
    click.echo(f"outcomes: {outcomes}; late items: {meta['late_items']}")
    ingest = meta.get("ingest") or {}
    for who in ("ledger", "pipeline"):
        counts = ", ".join(f"{k} {v}" for k, v in sorted(ingest.get(f"{who}_outcomes", {}).items()))
        click.echo(f"ingest outcomes, {who}: {counts}")
    if meta.get("profiled"):
        click.echo(f"profiled (timings include cProfile overhead): {meta.get('profiles')}")
    if keep:
        click.echo(f"kept: {meta['database']}")
    if json_file:
        write_json(Path(json_file), meta, figures)
        click.echo(f"JSON: {json_file}")


if __name__ == "__main__":
    main()
