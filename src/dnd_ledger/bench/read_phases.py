"""The read phases: can-send against a primary-key SELECT, past-time status, the
rebuild of every view against reading and decoding the log, and peak memory."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from dnd_ledger.bench.context import TARGETS, Context
from dnd_ledger.bench.report import Figure, median
from dnd_ledger.bench.support import rss_mb, user_set
from dnd_ledger.bench.timing import Spent, timed
from dnd_ledger.bench.write_phases import per_op
from dnd_ledger.domain.keys import contact_uuid
from dnd_ledger.domain.values import ALL_CHANNELS, Channel
from dnd_ledger.projections.schema import VIEWS
from dnd_ledger.projections.status_row import COLUMNS

#: The row a decision reads, per channel: the contact's status row by its key.
CAN_SEND_SQL = {
    ch: f"SELECT {st}, {cause}, overall FROM dnd_status_contacts"
    " WHERE location_id = ? AND contact_id = ?"
    for ch, (st, cause) in COLUMNS.items()
}


def can_send(run: Context) -> None:
    """Cold: each contact's first lookup since the reader forgot what it read (``clear``,
    when the reader remembers rows at all); warm: the same lookups straight after."""
    done = run.phase("can-send")
    o = run.o
    run.ledger.refresh_views()
    people = run.workload.people
    n = min(o.lookups, len(people))
    statements = {ch: run.raw.q(s) for ch, s in CAN_SEND_SQL.items()}
    lookup, fetchone = run.ledger.can_send, run.raw.fetchone
    forget: Callable[[], None] | None = getattr(run.ledger.views, "clear", None)
    p0 = people[0]
    lookup(p0.location_id, p0.contact_id, Channel.SMS)  # warm both paths
    if fetchone(statements[Channel.SMS], (p0.location_id, p0.contact_id)) is None:
        raise RuntimeError(f"no status view row for {p0}: the views are not current")
    cold: list[Spent] = []
    warm: list[Spent] = []
    raw: list[Spent] = []
    for rep in range(o.reps):
        keys = [
            (p.location_id, p.contact_id, run.rng.choice(ALL_CHANNELS))
            for p in run.rng.sample(people, n)
        ]
        raw_keys = [(statements[ch], (loc, cid)) for loc, cid, ch in keys]
        if forget is not None:
            forget()
        for spent in (cold, warm):
            spent.append(Spent())
            phase = "can-send-cold" if spent is cold else "can-send-warm"
            with run.profiled(phase), timed(spent[-1], run.server):
                for k in keys:
                    lookup(*k)
        raw.append(Spent())
        with timed(raw[-1], run.server):
            for statement, params in raw_keys:
                fetchone(statement, params)
        run.progress.tick(rep + 1, o.reps)
    ns = [n] * o.reps
    note = (
        f"{n} distinct contacts per repetition, one random channel each; raw: the same"
        " dnd_status_contacts row (that channel's columns) through a plain connection"
    )
    b_rates, b_cpu, b_srv = per_op(raw, ns)
    for key, spent, label, what in (
        ("can_send", cold, "cold", "first lookup of each contact since the reader's cache was cleared"),
        ("can_send_warm", warm, "warm", "the same lookups again, straight after the cold ones"),
    ):  # fmt: skip
        rates, cpu, srv = per_op(spent, ns)
        run.figures.append(Figure(
            key, f"can-send (Python API), {label}", "/s", "higher", median(rates), rates,
            "raw PK SELECT", median(b_rates), b_rates, TARGETS["can_send"],
            cpu_us=median(cpu), baseline_cpu_us=median(b_cpu), server_us=run.server_us(srv),
            baseline_server_us=run.server_us(b_srv), cpu_samples=cpu, baseline_cpu_samples=b_cpu,
            note=f"{note}; {label}: {what}",
        ))  # fmt: skip
    done()


def as_of(run: Context) -> None:
    """Cold: the contact has just had a new event (as between audits in production), so
    nothing remembered about it holds; warm: the same query again, straight after."""
    done = run.phase("as-of")
    loc, cid, start, end, _ = run.heavy
    samples = max(20, 4 * run.o.reps)
    span = (end - start).total_seconds()
    whens = [start + timedelta(seconds=run.rng.uniform(0, span)) for _ in range(samples)]
    run.ledger.status(loc, cid, as_of=whens[0])  # warm the code paths
    cold: list[Spent] = []
    warm: list[Spent] = []
    for n, when in enumerate(whens):
        at = end + timedelta(seconds=n + 1)
        run.ledger.execute(user_set(loc, cid, at, f"rq-asof-{n}"))
        run.ledger.refresh_views()
        for spent in (cold, warm):
            spent.append(Spent())
            phase = "as-of-cold" if spent is cold else "as-of-warm"
            with run.profiled(phase), timed(spent[-1], run.server):
                run.ledger.status(loc, cid, as_of=when)
        run.progress.tick(n + 1, samples)
    events = int(run.ledger.repository.get(contact_uuid(loc, cid)).version)
    for key, spent, label, what in (
        ("as_of", cold, "cold", "each right after a new event for the contact"),
        ("as_of_warm", warm, "warm", "each repeating the cold call straight after it"),
    ):
        ms = [s.wall * 1000 for s in spent]
        cpu = [s.cpu * 1e6 for s in spent]
        # The server's CPU per call is below /proc's 10 ms tick: its mean, not a median.
        server = sum(s.server for s in spent) * 1e6 / len(spent)
        run.figures.append(Figure(
            key, f"status as_of, {events:,}-event contact, {label}", "ms", "lower",
            median(ms), ms, target=TARGETS["as_of"], cpu_samples=cpu,
            cpu_us=None if not cpu else (median(cpu) or 0.0) + server,
            server_us=server if run.server else None,
            note=f"median of {samples} calls, {what}",
        ))  # fmt: skip
    done()


def rebuild(run: Context) -> None:
    done = run.phase("rebuild")
    reps = max(1, run.o.rebuild_reps)
    head = run.head()
    total = 2 * reps * head
    progressed = 0

    def step(n: int) -> None:
        nonlocal progressed
        progressed += n
        run.progress.tick(progressed, total)

    api: list[Spent] = []
    base: list[Spent] = []
    api_n: list[int] = []
    base_n: list[int] = []
    for _ in range(reps):
        api.append(Spent())
        with run.profiled("rebuild"), timed(api[-1], run.server):
            api_n.append(run.ledger.projector.rebuild(list(VIEWS), progress=step))
        base.append(Spent())
        with timed(base[-1], run.server):
            base_n.append(_read_and_decode(run, step))
    rates, cpu, srv = per_op(api, api_n)
    b_rates, b_cpu, b_srv = per_op(base, base_n)
    run.figures.append(Figure(
        "rebuild", "projection rebuild (all views)", "ev/s", "higher", median(rates), rates,
        "log read+decode", median(b_rates), b_rates, TARGETS["rebuild"],
        cpu_us=median(cpu), baseline_cpu_us=median(b_cpu), server_us=run.server_us(srv),
        baseline_server_us=run.server_us(b_srv), cpu_samples=cpu, baseline_cpu_samples=b_cpu,
        note=f"{head:,} events; baseline: select_notifications in batches of 1000 +"
             " mapper.to_domain_event",
    ))  # fmt: skip
    done()


def _read_and_decode(run: Context, step: Callable[[int], None]) -> int:
    recorder, mapper = run.ledger.recorder, run.ledger.mapper
    start, n = 1, 0
    while True:
        batch = recorder.select_notifications(start=start, limit=1000)
        if not batch:
            return n
        for notification in batch:
            mapper.to_domain_event(notification)
        n += len(batch)
        start = batch[-1].id + 1
        step(len(batch))


def peak_rss(run: Context) -> None:
    run.figures.append(Figure(
        "peak_rss", "peak RSS (whole run)", "MB", "lower", round(rss_mb(), 1), [],
        target=TARGETS["peak_rss"], note="resource.getrusage(RUSAGE_SELF).ru_maxrss;"
        " the target is for the 1M run",
    ))  # fmt: skip


__all__ = ["as_of", "can_send", "peak_rss", "rebuild"]
