#!/usr/bin/env python3
"""Measure the projections of issue 3 against their baselines, in one run, on one SQLite file.

1. Builds a SQLite ledger holding ``--events`` events of a realistic mix (shared
   phones, STOP/START and other replies, carrier codes including ignored ones,
   Mailgun signals, webhook retries, late events, user set/clear, support
   approvals), through ``execute_many`` in batches of 1,000 commands, plus one
   contact with 1,000 events. With ``--db`` naming an existing ledger, its
   events are used as they are.
2. Measures, repetitions interleaved with their baselines, medians reported:

   a. catch-up: ``projector.rebuild(all views)`` in events/s, against reading
      AND decoding the same notification log (``recorder.select_notifications``
      in batches of 1,000 and ``mapper.to_domain_event`` for each);
   b. decisions: ``ledger.can_send(...)`` per second for random existing
      contacts and channels (views current), against a primary-key SELECT of the
      same status row through a plain ``sqlite3.connect`` on the same file;
   c. past status: latency of ``ledger.status(..., as_of=<past>)`` for the
      contact with 1,000 events (the present ``status`` beside it).

Goals (issue 3): catch-up >= 0.5x the log read+decode rate; decisions >= 0.8x
the raw SELECT rate; a past query of a 1,000-event contact in a few ms.

Progress goes to stderr; the table to stdout; ``--json FILE`` writes every
sample. This is a measurement, not a test: nothing here asserts a time.

    scripts/measure-projections --events 100000 --json projections-100k.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.domain.values import ALL_CHANNELS, Channel, EmailSignal
from dnd_ledger.projections.schema import VIEWS
from dnd_ledger.projections.status_row import COLUMNS
from dnd_ledger.storage.pii import load_or_create_key

BUSY_LOCATION, BUSY_CONTACT = "loc-busy", "busy"
COMMANDS_PER_BATCH = 1_000
GOALS = {"catch_up": 0.5, "decisions": 0.8}


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the workload ---------------------------------------------------------------------------------
def workload(rng: random.Random, t0: datetime) -> Iterator[c.Command]:
    """An endless, realistic stream of commands over 20 locations.

    Contacts come in households of one to three sharing a phone; each has its own
    email. Per household, in effective-time order, with some events late.
    """
    i = 0
    while True:
        i += 1
        loc = f"loc-{i % 20:02d}"
        at = t0 + timedelta(minutes=i)
        phone = f"+1415{i:07d}"
        people = [f"h{i}-{k}" for k in range(rng.choice((1, 1, 2, 3)))]
        for k, who in enumerate(people):
            yield c.RegisterContact(loc, who, (phone,), (f"{who}@example.com",), at, "import")
            if k == 0 and rng.random() < 0.05:  # a client retried the registration
                yield c.RegisterContact(loc, who, (phone,), (f"{who}@example.com",), at, "import")
        r = rng.random()
        if r < 0.25:
            body = rng.choice(("STOP", "Stop!", "unsubscribe", "please stop texting me"))
            yield c.ReceiveInbound(loc, Channel.SMS, phone, body, f"SM{i}", at + timedelta(hours=1))
            if rng.random() < 0.3:
                yield c.ReceiveInbound(
                    loc, Channel.SMS, phone, "START", f"SM{i}b", at + timedelta(hours=5)
                )
        elif r < 0.4:
            yield c.ReceiveInbound(
                loc, Channel.WHATSAPP, phone, "Thanks, see you then", f"WA{i}", at
            )
        if rng.random() < 0.3:
            code = rng.choice((30003, 30003, 30005, 30006, 30004, 21610, 63014, 30007, 30008, None))
            channel = Channel.WHATSAPP if code == 63014 else Channel.SMS
            status = c.ReportCarrierStatus(
                loc, channel, phone, f"MM{i}", "undelivered", code, at + timedelta(hours=2)
            )
            yield status
            if rng.random() < 0.2:
                yield status  # the status callback delivered twice
        for who in people:
            r = rng.random()
            email = f"{who}@example.com"
            if r < 0.1:
                signal = rng.choice(tuple(EmailSignal))
                reason = rng.choice(("bounce", "suppress-complaint", "mailbox full", None))
                late = at - timedelta(minutes=rng.randint(0, 30))  # late: before other events
                mail = c.ReportEmailEvent(loc, email, signal, f"tok-{who}", reason, None, late)
                yield mail
                if rng.random() < 0.3:
                    yield mail  # the webhook retried
            elif r < 0.25:
                chans = tuple(rng.sample(ALL_CHANNELS, rng.randint(1, 3)))
                yield c.SetDnd(loc, who, chans, "agent", None, at + timedelta(hours=3))
                if rng.random() < 0.5:
                    yield c.ClearDnd(loc, who, chans, "agent", None, True, at + timedelta(hours=4))
            elif r < 0.27:
                yield c.ApproveOptIn(
                    loc, who, ALL_CHANNELS, "support", f"SUP-{i}", "signed form",
                    at + timedelta(hours=6),
                )  # fmt: skip


def busy_contact(t0: datetime) -> Iterator[c.Command]:
    """One contact with 1,000 events: registration, then set/clear on calls and SMS."""
    yield c.RegisterContact(BUSY_LOCATION, BUSY_CONTACT, (), (), t0, "import")
    for k in range(1, 1000):  # every 50th one late: it occurred before the ones before it
        op, ch = (("set", Channel.CALL), ("set", Channel.SMS), ("clear", Channel.CALL),
                  ("clear", Channel.SMS))[k % 4]  # fmt: skip
        at = t0 + timedelta(minutes=k - (30 if k % 50 == 0 else 0))
        if op == "set":
            yield c.SetDnd(BUSY_LOCATION, BUSY_CONTACT, (ch,), "agent", None, at)
        else:
            yield c.ClearDnd(BUSY_LOCATION, BUSY_CONTACT, (ch,), "agent", None, False, at)


def build(ledger: DndLedger, events: int, seed: int) -> None:
    rng = random.Random(seed)
    t0 = datetime.now(UTC) - timedelta(days=120)
    started = time.perf_counter()

    def run(commands: list[c.Command]) -> None:
        ledger.execute_many(commands)
        head = ledger.projector.head()
        rate = head / (time.perf_counter() - started)
        say(f"  built {head:>9,} events ({rate:,.0f} events/s)")

    run(list(busy_contact(t0)))
    batch: list[c.Command] = []
    for command in workload(rng, t0):
        batch.append(command)
        if len(batch) == COMMANDS_PER_BATCH:
            run(batch)
            batch = []
            if ledger.projector.head() >= events:
                return


# -- measuring ------------------------------------------------------------------------------------
def checkpoint(path: Path) -> None:
    """Fold the WAL back into the database file, so that every timed run starts alike.

    A rebuild leaves megabytes of WAL behind; without this, whichever run
    follows it reads through them.
    """
    with sqlite3.connect(path, timeout=30) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()


def timed(f: Callable[[], Any]) -> float:
    started = time.perf_counter()
    f()
    return time.perf_counter() - started


def read_and_decode(ledger: DndLedger, batch_size: int = 1_000) -> int:
    """The baseline of a catch-up: the notification log read and every event decoded."""
    n, start = 0, 1
    while True:
        notifications = ledger.recorder.select_notifications(start=start, limit=batch_size)
        if not notifications:
            return n
        for notification in notifications:
            ledger.mapper.to_domain_event(notification)
        n += len(notifications)
        start = notifications[-1].id + 1


def measure_catch_up(ledger: DndLedger, path: Path, reps: int) -> dict[str, Any]:
    head = ledger.projector.head()
    ledger_rates, baseline_rates = [], []
    for rep in range(1, reps + 1):
        checkpoint(path)
        t_base = timed(lambda: read_and_decode(ledger))
        checkpoint(path)
        t_rebuild = timed(lambda: ledger.projector.rebuild(list(VIEWS)))
        if ledger.projector.positions() != dict.fromkeys(VIEWS, head):
            raise RuntimeError(f"the rebuild stopped short: {ledger.projector.positions()}")
        baseline_rates.append(head / t_base)
        ledger_rates.append(head / t_rebuild)
        say(
            f"  catch-up {rep}/{reps}: rebuild {head / t_rebuild:,.0f} events/s,"
            f" read+decode {head / t_base:,.0f} events/s"
        )
    return summary(ledger_rates, baseline_rates, "events/s")


def measure_decisions(
    ledger: DndLedger, path: Path, reps: int, n: int, seed: int
) -> dict[str, Any]:
    rng = random.Random(seed + 1)
    contacts = ledger.sql.fetchall("SELECT location_id, contact_id FROM dnd_status_contacts")
    sample = [(*rng.choice(contacts), rng.choice(ALL_CHANNELS)) for _ in range(n)]
    ledger.refresh_views()
    checkpoint(path)
    raw = sqlite3.connect(path)
    select = {
        ch: f"SELECT {st}, {cause}, overall FROM dnd_status_contacts"
        " WHERE location_id = ? AND contact_id = ?"
        for ch, (st, cause) in COLUMNS.items()
    }
    # The two paths read the same rows.
    for loc, contact, ch in sample[:100]:
        row = raw.execute(select[ch], (loc, contact)).fetchone()
        if row is None or row[0] != ledger.can_send(loc, contact, ch).status.value:
            raise RuntimeError(f"the view row and can_send disagree for {loc}/{contact}/{ch}")

    def decisions() -> None:
        for loc, contact, ch in sample:
            ledger.can_send(loc, contact, ch)

    def selects() -> None:
        for loc, contact, ch in sample:
            raw.execute(select[ch], (loc, contact)).fetchone()

    ledger_rates, baseline_rates = [], []
    try:
        for rep in range(1, reps + 1):
            t_raw, t_ledger = timed(selects), timed(decisions)
            baseline_rates.append(n / t_raw)
            ledger_rates.append(n / t_ledger)
            say(
                f"  decisions {rep}/{reps}: can_send {n / t_ledger:,.0f}/s,"
                f" raw SELECT {n / t_raw:,.0f}/s"
            )
    finally:
        raw.close()
    return summary(ledger_rates, baseline_rates, "decisions/s") | {"sample": n}


def measure_past_status(ledger: DndLedger, reps: int, per_rep: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed + 2)
    history = ledger.history(BUSY_LOCATION, BUSY_CONTACT)
    first, last = history[0].occurred_at, max(h.occurred_at for h in history)
    span = (last - first).total_seconds()
    past_ms: list[float] = []
    present_ms: list[float] = []
    for rep in range(1, reps + 1):
        for _ in range(per_rep):
            as_of = first + timedelta(seconds=rng.uniform(0, span))
            started = time.perf_counter()
            ledger.status(BUSY_LOCATION, BUSY_CONTACT, as_of=as_of)
            past_ms.append(1000 * (time.perf_counter() - started))
            started = time.perf_counter()
            ledger.status(BUSY_LOCATION, BUSY_CONTACT)
            present_ms.append(1000 * (time.perf_counter() - started))
        say(
            f"  past status {rep}/{reps}: running median {statistics.median(past_ms):.2f} ms"
            f" (present {statistics.median(present_ms):.3f} ms)"
        )
    return {
        "events": len(history),
        "median_ms": statistics.median(past_ms),
        "p95_ms": percentile(past_ms, 95),
        "present_median_ms": statistics.median(present_ms),
        "samples_ms": past_ms,
        "present_samples_ms": present_ms,
    }


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary(ledger_rates: list[float], baseline_rates: list[float], unit: str) -> dict[str, Any]:
    value, baseline = statistics.median(ledger_rates), statistics.median(baseline_rates)
    paired = [v / b for v, b in zip(ledger_rates, baseline_rates, strict=True)]
    return {
        "unit": unit,
        "value": value,
        "baseline": baseline,
        "ratio": value / baseline,  # of the medians
        "paired_ratio": statistics.median(paired),  # of each repetition's adjacent pair
        "samples": ledger_rates,
        "baseline_samples": baseline_rates,
    }


# -- reporting ------------------------------------------------------------------------------------
def table(result: dict[str, Any]) -> str:
    cu, dec, past = result["catch_up"], result["decisions"], result["past_status"]
    rows = [
        ("figure", "value", "baseline", "ratio", "goal"),
        (
            "catch-up: rebuild all views",
            f"{cu['value']:,.0f} events/s",
            f"{cu['baseline']:,.0f} events/s (log read+decode)",
            f"{cu['ratio']:.2f} (paired {cu['paired_ratio']:.2f})",
            f">= {GOALS['catch_up']} {'met' if cu['ratio'] >= GOALS['catch_up'] else 'NOT met'}",
        ),
        (
            "decisions: can_send (views current)",
            f"{dec['value']:,.0f} /s",
            f"{dec['baseline']:,.0f} /s (raw sqlite3 PK SELECT)",
            f"{dec['ratio']:.2f} (paired {dec['paired_ratio']:.2f})",
            f">= {GOALS['decisions']} {'met' if dec['ratio'] >= GOALS['decisions'] else 'NOT met'}",
        ),
        (
            f"past status as_of, {past['events']:,} events",
            f"{past['median_ms']:.2f} ms median (p95 {past['p95_ms']:.2f})",
            f"{past['present_median_ms']:.3f} ms (present, from the view)",
            "-",
            "a few ms",
        ),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    head = (
        f"{result['events']:,} events, {result['contacts']:,} contacts, SQLite {sqlite3.sqlite_version},"
        f" medians of {result['reps']} repetitions,"
        " load average {:.1f} {:.1f} {:.1f} on {} CPUs".format(
            *result["environment"]["load_average"], result["environment"]["cpus"]
        )
    )
    return "\n".join([head, *lines])


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "eventsourcing": version("eventsourcing"),
        "dnd_ledger": version("dnd-ledger"),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Example: scripts/measure-projections --events 100000 --json out.json",
    )
    parser.add_argument(
        "--events", type=int, default=100_000, help="events to build (default 100000)"
    )
    parser.add_argument(
        "--db", type=Path, help="SQLite file to build (kept); an existing ledger is used as it is"
    )
    parser.add_argument("--json", type=Path, help="write every figure and sample to this file")
    parser.add_argument("--reps", type=int, default=5, help="repetitions per figure (>= 5)")
    parser.add_argument("--decisions", type=int, default=20_000, help="can_send calls per rep")
    parser.add_argument("--past", type=int, default=200, help="past status queries per rep")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.reps < 5:
        parser.error("--reps must be at least 5 (medians of at least five repetitions)")

    with tempfile.TemporaryDirectory(prefix="measure-projections-") as tmp:
        path: Path = args.db or Path(tmp) / "ledger.db"
        existing = path.exists()
        ledger = DndLedger(str(path), pii_key=load_or_create_key(Path(f"{path}.pii-key")))
        try:
            if existing and ledger.projector.head() > 0:
                say(f"using the {ledger.projector.head():,} events already in {path}")
            else:
                say(f"building {args.events:,} events in {path}")
                build(ledger, args.events, args.seed)
            head = ledger.projector.head()
            say("catch-up: rebuild of all views vs reading and decoding the log")
            catch_up = measure_catch_up(ledger, path, args.reps)
            contacts = len(ledger.sql.fetchall("SELECT 1 FROM dnd_status_contacts"))
            say("decisions: can_send vs a raw primary-key SELECT")
            decisions = measure_decisions(ledger, path, args.reps, args.decisions, args.seed)
            say("past status of the contact with 1,000 events")
            past = measure_past_status(ledger, args.reps, args.past, args.seed)
        finally:
            ledger.close()

    result = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "events": head,
        "contacts": contacts,
        "reps": args.reps,
        "goals": GOALS,
        "catch_up": catch_up,
        "decisions": decisions,
        "past_status": past,
        "environment": environment(),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        say(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
