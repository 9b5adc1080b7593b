#!/usr/bin/env python3
"""What the notary costs, and how fast `verify` is. Not a test: it prints a table.

1. Notary cost per event as a fraction of the append cost, in the same run. Each
   round appends events through the ledger's write path (commands -> aggregates ->
   one transaction), then catches the notary up over exactly those events (leaves,
   compact range, checkpoints, tracking; one transaction per 5,000 events).
   Per-event times of each round; medians over rounds. Appends come batched 200
   commands a transaction (``execute_many``, as imports do: the cheapest appends,
   so the hardest ratio) or one command a transaction (``execute``, as webhooks
   and the CLI do). The notary runs either alone, straight after the append
   (it then reads freshly written pages cold), or as ``refresh_views`` runs it in
   production: after the projector, which has just read the same rows (the
   projector's own cost is shown beside it). A last series is the service
   pattern: one command, then a query that refreshes the views (projector, then
   ``notary.keep_up``, which notarises at most once a second), for every command.
   The goal is under 10%. The ledger writes its views in the append's own
   transaction when they are current, so "append" includes the views, and the
   projector's catch-up after it usually finds nothing left to do.
2. ``verify`` events per second over a ledger of ``--events`` events (default
   100,000) with a checkpoint every 1,000: every leaf rebuilt from the stored
   bytes, every event decoded, every root and signature checked. Median of
   ``--verify-runs`` runs.

Usage::

    .venv/bin/python scripts/measure_notary.py                       # SQLite in a temp dir
    .venv/bin/python scripts/measure_notary.py --db postgresql://postgres@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.domain.values import Channel
from dnd_ledger.notary.signed_note import generate_key, load_private_key, parse_vkey
from dnd_ledger.notary.verify import verify_ledger

PII = b"measure-notary-key-0123456789abc"


def commands(first: int, contacts: int) -> list[c.Command]:
    """Per contact: a registration (3 events) and a STOP (2 events)."""
    out: list[c.Command] = []
    for n in range(first, first + contacts):
        phone = f"+1415{n % 10_000_000:07d}"
        out.append(c.RegisterContact("loc-bench", f"c{n}", (phone,)))
        out.append(c.ReceiveInbound("loc-bench", Channel.SMS, phone, "STOP", f"SM{n}"))
    return out


def timed(f: Callable[[], object]) -> float:
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="database URL [default: a fresh SQLite file]")
    parser.add_argument("--events", type=int, default=100_000, help="events for verify")
    parser.add_argument("--rounds", type=int, default=15, help="append/notarise rounds")
    parser.add_argument("--round-contacts", type=int, default=400, help="contacts per round")
    parser.add_argument("--verify-runs", type=int, default=3)
    args = parser.parse_args()

    private, vkey = generate_key("measure")
    key = load_private_key(private)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or str(Path(tmp) / "measure.db")
        app = DndLedger(url, pii_key=PII, signing_key=key, checkpoint_every=1000)
        try:
            rows = measure(app, args, vkey)
        finally:
            app.close()
    print(f"\ndatabase: {args.db or 'SQLite file (temporary)'}; {args.rounds} rounds of "
          f"{5 * args.round_contacts} events (batched) / {5 * max(args.round_contacts // 4, 1)} "
          "events (one command a transaction); goal: notary under 10 % of append")  # fmt: skip
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


def series(
    app: DndLedger, name: str, rounds: int, contacts: int, first: int, per_call: int, views: bool
) -> tuple[dict[str, list[float]], int]:
    """Rounds of: append (per_call commands a transaction), [views,] notary."""
    us: dict[str, list[float]] = {"append": [], "views": [], "notary": [], "ratio": []}
    for r in range(rounds):
        batch = commands(first, contacts)
        first += contacts
        before = app.notary.head()
        t_append = timed(lambda b=batch: [app.execute_many(b[i : i + per_call])
                                          for i in range(0, len(b), per_call)])  # fmt: skip
        events = app.notary.head() - before
        t_views = timed(app.projector.catch_up) if views else 0.0
        t_notary = timed(app.notary.catch_up)
        if app.notary.position() != app.notary.head():
            raise SystemExit("the notary did not catch up")
        us["append"].append(t_append / events * 1e6)
        us["views"].append(t_views / events * 1e6)
        us["notary"].append(t_notary / events * 1e6)
        us["ratio"].append(t_notary / t_append)
        print(f"{name:<26} round {r + 1:>2}: {events} events, append {us['append'][-1]:6.1f} "
              f"us/event, views {us['views'][-1]:5.1f}, notary {us['notary'][-1]:5.1f} "
              f"({100 * us['ratio'][-1]:.1f}%)", flush=True)  # fmt: skip
    return us, first


def service_series(
    app: DndLedger, rounds: int, contacts: int, first: int
) -> tuple[dict[str, list[float]], int]:
    """Rounds of: for each command, append it, then refresh the views as a query would."""
    us: dict[str, list[float]] = {"append": [], "views": [], "notary": [], "ratio": []}
    for r in range(rounds):
        t_append = t_views = t_notary = 0.0
        before = app.notary.head()
        for command in commands(first, contacts):
            t_append += timed(lambda cmd=command: app.execute(cmd))
            t_views += timed(app.projector.catch_up)
            t_notary += timed(app.notary.keep_up)
        first += contacts
        events = app.notary.head() - before
        us["append"].append(t_append / events * 1e6)
        us["views"].append(t_views / events * 1e6)
        us["notary"].append(t_notary / events * 1e6)
        us["ratio"].append(t_notary / t_append)
        print(f"{'service pattern':<26} round {r + 1:>2}: {events} events, append "
              f"{us['append'][-1]:6.1f} us/event, views {us['views'][-1]:5.1f}, notary "
              f"{us['notary'][-1]:5.1f} ({100 * us['ratio'][-1]:.1f}%)", flush=True)  # fmt: skip
    app.notary.catch_up()
    return us, first


def measure(app: DndLedger, args: argparse.Namespace, vkey: str) -> list[tuple[str, str]]:
    med = statistics.median
    # A warm-up round, not counted: first-use costs (caches, prepared statements).
    app.execute_many(commands(0, 50))
    app.refresh_views()
    next_contact = 50
    rows: list[tuple[str, str]] = []
    quarter = max(args.round_contacts // 4, 1)
    for label, contacts, per_call, views in (
        ("batched appends, notary alone", args.round_contacts, 200, False),
        ("batched appends, after views", args.round_contacts, 200, True),
        ("one command a transaction, alone", quarter, 1, False),
        ("one command a transaction, after views", quarter, 1, True),
    ):
        us, next_contact = series(app, label, args.rounds, contacts, next_contact, per_call, views)
        rows += [
            (f"{label}:", ""),
            ("  append, median per event", f"{med(us['append']):.1f} us"),
            *([("  views (projector) after it", f"{med(us['views']):.1f} us")] if views else []),
            ("  notary, median per event", f"{med(us['notary']):.1f} us"),
            ("  notary / append, median of rounds", f"{100 * med(us['ratio']):.1f} %"),
        ]

    us, next_contact = service_series(app, args.rounds, quarter, next_contact)
    rows += [
        ("one command, then a query refreshing the views (service pattern):", ""),
        ("  append, median per event", f"{med(us['append']):.1f} us"),
        ("  views (projector) after each command", f"{med(us['views']):.1f} us"),
        ("  notary (keep_up: at most once a second)", f"{med(us['notary']):.1f} us"),
        ("  notary / append, median of rounds", f"{100 * med(us['ratio']):.1f} %"),
    ]

    # Grow the ledger to --events, notarised and checkpointed, then verify it.
    grown = 0
    while app.notary.head() < args.events:
        app.execute_many(commands(next_contact, 200))
        next_contact += 200
        grown += 1
        if grown % 25 == 0:
            app.notary.catch_up()
            print(f"  ... {app.notary.head()} events", flush=True)
    app.notary.checkpoint()
    total = app.notary.head()
    key = parse_vkey(vkey)
    verify_s = []
    for run in range(args.verify_runs):
        start = time.perf_counter()
        report = verify_ledger(app, key)
        verify_s.append(time.perf_counter() - start)
        if report.status != "ok":
            raise SystemExit(f"verify found problems: {report.to_json()['first_problem']}")
        print(f"verify run {run + 1}: {total} events in {verify_s[-1]:.2f} s "
              f"({report.checkpoints} checkpoints)", flush=True)  # fmt: skip
    return [
        *rows,
        ("verify: events", f"{total}"),
        ("verify: median time", f"{med(verify_s):.2f} s"),
        ("verify: events per second", f"{total / med(verify_s):,.0f}"),
    ]


if __name__ == "__main__":
    main()
