"""The phases of a benchmark run: each times the ledger and, in the same run, its baseline.

Order of a run (one process, one database engine):

1. setup: the contact population registers (ledger, CRUD table, bare event
   table), and one contact gets a history of 1,000 events;
2. ingest: the stream in ``reps`` slices; per slice the ledger (``execute_many``
   per batch, then ``refresh_views``), the CRUD table and ``executemany`` of the
   rows the ledger just stored, one after the other;
3. flatness, small: a probe stream at the small stored size;
4. single-command latency, alternating a ledger ``execute`` and a one-row INSERT;
5. can-send: ``can_send`` against the primary-key SELECT of the same view row;
6. past-time status (``as_of``) of the contact with 1,000 events;
7. rebuild of every view against reading and decoding the notification log;
8. flatness, large: the store is filled to ``--large`` events through the
   ledger, then the same probe runs again;
9. peak RSS.
"""

from __future__ import annotations

import contextlib
import cProfile
import hashlib
import io
import os
import platform
import pstats
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import click

from dnd_ledger.application import DndLedger
from dnd_ledger.bench.baselines import Crud, RawDb, RawEvents, StoredRows
from dnd_ledger.bench.report import Figure, Target, median, percentile
from dnd_ledger.bench.workload import MIX, Item, Workload
from dnd_ledger.commands import Command
from dnd_ledger.domain.errors import LedgerError
from dnd_ledger.domain.keys import contact_uuid
from dnd_ledger.domain.values import ALL_CHANNELS, Channel
from dnd_ledger.projections.schema import VIEWS
from dnd_ledger.storage.persistence import parse_db_url

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PII_KEY = b"dnd-ledger bench key 0123456789abcdef"
AS_OF_EVENTS = 1000
FILL_BATCH = 500
CAN_SEND_SQL = (
    "SELECT status, since, code, message, cause_event, cause_event_id, overall"
    " FROM dnd_status_channels WHERE location_id = ? AND contact_id = ? AND channel = ?"
)

TARGETS = {
    "ingest_crud": Target("ratio", ">=", 0.5, ">= 0.5x (stretch 1.0x)"),
    "can_send": Target("ratio", ">=", 0.8, ">= 0.8x"),
    "rebuild": Target("ratio", ">=", 0.5, ">= 0.5x"),
    "as_of": Target("value", "<=", 5.0, "<= 5 ms"),
    "ingest_large": Target("ratio", ">=", 0.8, ">= 0.8x (within 20%)"),
    "peak_rss": Target("value", "<", 300.0, "< 300 MB"),
}


@dataclass(frozen=True)
class Options:
    backend: str = "sqlite"
    events: int = 5000
    contacts: int | None = None
    batch: int = 100
    large: int = 30_000
    probe: int | None = None
    reps: int = 5
    rebuild_reps: int = 3
    latency_samples: int = 200
    lookups: int = 2000
    seed: int = 1
    workdir: str | None = None
    keep: bool = False
    pg_admin_url: str = PG_ADMIN_URL
    profile_dir: str | None = None
    progress: bool = True

    @property
    def n_contacts(self) -> int:
        return self.contacts if self.contacts is not None else max(20, self.events // 10)

    @property
    def n_probe(self) -> int:
        return self.probe if self.probe is not None else min(self.events, 2000)


# -- progress ---------------------------------------------------------------------------------
class Progress:
    """One bar on stderr across all phases; each phase owns a share of it."""

    LENGTH = 1000

    def __init__(self, weights: dict[str, float], enabled: bool) -> None:
        total = sum(weights.values()) or 1.0
        self.start_of: dict[str, float] = {}
        self.share: dict[str, float] = {}
        at = 0.0
        for name, w in weights.items():
            self.start_of[name] = at
            self.share[name] = self.LENGTH * w / total
            at += self.share[name]
        self.phase = ""
        self.pos = 0
        self.bar: Any = None
        if enabled:
            self.bar = click.progressbar(
                length=self.LENGTH, label="bench", file=sys.stderr, show_eta=True, width=30
            )
            self.bar.__enter__()

    def start(self, phase: str) -> None:
        self.phase = phase
        if self.bar is not None:
            self.bar.label = f"{phase:<16}"
        self._goto(self.start_of.get(phase, self.pos))

    def tick(self, done: float, total: float) -> None:
        frac = min(1.0, done / total) if total else 1.0
        self._goto(self.start_of.get(self.phase, 0.0) + self.share.get(self.phase, 0.0) * frac)

    def _goto(self, pos: float) -> None:
        target = int(pos)
        if target > self.pos:
            if self.bar is not None:
                self.bar.update(target - self.pos)
            self.pos = target

    def close(self) -> None:
        if self.bar is not None:
            self._goto(self.LENGTH)
            self.bar.__exit__(None, None, None)
            self.bar = None


def _slices(items: Sequence[Item], n: int) -> list[Sequence[Item]]:
    n = max(1, min(n, len(items)))
    size, extra = divmod(len(items), n)
    out, at = [], 0
    for i in range(n):
        step = size + (1 if i < extra else 0)
        out.append(items[at : at + step])
        at += step
    return out


def _chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def _rss_mb() -> float:
    # Linux reports kilobytes, macOS bytes.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


class Run:
    """One benchmark run: opens the stores, runs the phases, closes (and drops) them."""

    def __init__(self, opts: Options) -> None:
        if opts.backend not in ("sqlite", "postgres"):
            raise click.UsageError(f"unknown backend {opts.backend!r}")
        if opts.events < 10:
            raise click.UsageError("--events must be at least 10")
        self.o = opts
        self.figures: list[Figure] = []
        self.meta: dict[str, Any] = {}
        self.outcomes: Counter[str] = Counter()
        self.phase_seconds: dict[str, float] = {}
        self.rss_after: dict[str, float] = {}
        self.stored_at: dict[str, int] = {}
        self.profiles: dict[str, cProfile.Profile] = {}
        self._cleanup: list[Callable[[], None]] = []
        self.source = source_state()  # at the start: the code this process imported
        self.load_start = _loadavg()
        self.workload = Workload(
            seed=opts.seed,
            expected_items=opts.n_contacts + opts.events + 3 * opts.n_probe
            + opts.latency_samples + max(opts.large, 0),
        )  # fmt: skip
        self.rng = random.Random(opts.seed + 1)
        est_stored = opts.n_contacts * 5 + AS_OF_EVENTS + opts.events * 2
        fill = max(0, opts.large - est_stored - opts.n_probe * 2)
        self.progress = Progress(
            {
                "setup": opts.n_contacts * 5 + AS_OF_EVENTS * 1.5,
                "ingest": opts.events * 1.3,
                "flatness-small": opts.n_probe * 0.8,
                "latency": opts.latency_samples * 10,
                "can-send": opts.reps * opts.lookups * 0.15,
                "as-of": 100,
                "rebuild": opts.rebuild_reps * est_stored * 0.3,
                "fill": fill * 0.35,
                "flatness-large": opts.n_probe * 0.8,
            },
            opts.progress,
        )

    # -- stores -------------------------------------------------------------------------------
    def open(self) -> None:
        if self.o.backend == "postgres":
            import psycopg

            name = f"dnd_bench_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(self.o.pg_admin_url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')

            def drop() -> None:
                with psycopg.connect(self.o.pg_admin_url, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

            if not self.o.keep:
                self._cleanup.append(drop)
            url = f"{self.o.pg_admin_url.rsplit('/', 1)[0]}/{name}"
            self.ledger = DndLedger(url, pii_key=PII_KEY)
            self.raw = RawDb(parse_db_url(url))
            self.base = self.raw
            self.meta["database"] = url
            self.meta["server_version"] = str(
                self.raw.fetchall("SELECT current_setting('server_version')")[0][0]
            )
        else:
            workdir = Path(self.o.workdir or tempfile.mkdtemp(prefix="dnd-bench-"))
            workdir.mkdir(parents=True, exist_ok=True)
            if not self.o.keep and not self.o.workdir:
                self._cleanup.append(lambda: shutil.rmtree(workdir, ignore_errors=True))
            ledger_db = workdir / f"ledger-{uuid.uuid4().hex[:8]}.db"
            base_db = workdir / f"baseline-{uuid.uuid4().hex[:8]}.db"
            if not self.o.keep and self.o.workdir:
                for p in (ledger_db, base_db):
                    for suffix in ("", "-wal", "-shm"):
                        path = Path(f"{p}{suffix}")
                        self._cleanup.append(lambda path=path: path.unlink(missing_ok=True))  # type: ignore[misc]
            self.ledger = DndLedger(str(ledger_db), pii_key=PII_KEY)
            self.raw = RawDb(parse_db_url(str(ledger_db)))
            self.base = RawDb(parse_db_url(str(base_db)))
            self.meta["database"] = str(ledger_db)
            self.meta["baseline_database"] = str(base_db)
            self.meta["server_version"] = f"SQLite {sqlite3.sqlite_version}"
        self.crud = Crud(self.base)
        # A gauge of machine speed for the flatness probes: the CRUD job on tables emptied
        # before each probe, so it does the same work at both sizes.
        self.gauge = Crud(self.base, "bench_gauge")
        self.raw_events = RawEvents(self.base)
        recorder: Any = self.ledger.recorder
        self.stored = StoredRows(self.raw, str(recorder.events_table_name))

    def close(self) -> None:
        self.progress.close()
        with contextlib.suppress(Exception):
            self.ledger.close()
        for db in {id(self.raw): self.raw, id(self.base): self.base}.values():
            with contextlib.suppress(Exception):
                db.close()
        for f in reversed(self._cleanup):
            f()

    def head(self) -> int:
        return int(self.ledger.recorder.max_notification_id() or 0)

    # -- helpers ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def profiled(self, phase: str) -> Iterator[None]:
        """Profile the ledger's side of a phase when ``--profile DIR`` is given."""
        if self.o.profile_dir is None:
            yield
            return
        prof = self.profiles.setdefault(phase, cProfile.Profile())
        prof.enable()
        try:
            yield
        finally:
            prof.disable()

    def _ledger_batches(
        self, items: Sequence[Item], batch: int, phase: str
    ) -> tuple[float, list[tuple[int, int, int]]]:
        """Ingest through the ledger; returns seconds and (commands, after, upto) per batch."""
        spent = 0.0
        bounds: list[tuple[int, int, int]] = []
        last = self.head()
        for chunk in _chunks(items, batch):
            commands: list[Command] = [it.command for it in chunk]
            with self.profiled(phase):
                t = time.perf_counter()
                outcomes = self.ledger.execute_many(commands)
                self.ledger.refresh_views()
                spent += time.perf_counter() - t
            self.outcomes.update(o.result for o in outcomes)
            now = self.head()
            bounds.append((len(chunk), last, now))
            last = now
        return spent, bounds

    def _crud(self, items: Sequence[Item], batch: int, crud: Crud | None = None) -> float:
        crud = crud or self.crud
        spent = 0.0
        for chunk in _chunks(items, batch):
            intents = [it.crud for it in chunk]
            t = time.perf_counter()
            crud.apply(intents)
            spent += time.perf_counter() - t
        return spent

    def _raw_batches(self, bounds: list[tuple[int, int, int]]) -> float:
        rows = [self.stored.between(after, upto) for _, after, upto in bounds]
        spent = 0.0
        for r in rows:
            if not r:
                continue
            t = time.perf_counter()
            self.raw_events.executemany(r)
            spent += time.perf_counter() - t
        return spent

    def _phase(self, name: str) -> Callable[[], None]:
        self.progress.start(name)
        t = time.perf_counter()

        def done() -> None:
            self.phase_seconds[name] = round(time.perf_counter() - t, 3)
            self.rss_after[name] = round(_rss_mb(), 1)
            self.stored_at[name] = self.head()

        return done

    # -- phases -------------------------------------------------------------------------------
    def setup(self) -> None:
        done = self._phase("setup")
        o = self.o
        people = list(self.workload.population(o.n_contacts))
        total = len(people) + AS_OF_EVENTS
        for n, chunk in enumerate(_chunks(people, o.batch)):
            _, bounds = self._ledger_batches(chunk, o.batch, "setup")
            self.crud.apply([it.crud for it in chunk])
            self._raw_batches(bounds)
            self.progress.tick((n + 1) * o.batch, total)
        person, commands, start, end = self.workload.heavy_contact(AS_OF_EVENTS)
        cid = contact_uuid(person.location_id, person.contact_id)
        for n, chunk in enumerate(_chunks(commands, o.batch)):
            self.ledger.execute_many(list(chunk))
            self.progress.tick(len(people) + (n + 1) * o.batch, total)
        version = int(self.ledger.repository.get(cid).version)
        extra = 0
        while version < AS_OF_EVENTS:  # in case a command of the history stored no event
            extra += 1
            at = end + timedelta(seconds=extra)
            self.ledger.execute(
                _user_set(person.location_id, person.contact_id, at, f"rq-top-{extra}")
            )
            version = int(self.ledger.repository.get(cid).version)
        self.ledger.refresh_views()
        self.heavy = (person.location_id, person.contact_id, start, end, version)
        done()

    def ingest(self) -> None:
        done = self._phase("ingest")
        o = self.o
        items = list(self.workload.stream(o.events))
        ledger_rates, crud_rates, raw_rates = [], [], []
        events_stored = 0
        slices = _slices(items, o.reps)
        for n, s in enumerate(slices):
            t_ledger, bounds = self._ledger_batches(s, o.batch, "ingest")
            events_stored += sum(upto - after for _, after, upto in bounds)
            t_crud = self._crud(s, o.batch)
            t_raw = self._raw_batches(bounds)
            ledger_rates.append(len(s) / t_ledger)
            crud_rates.append(len(s) / t_crud)
            if t_raw:
                raw_rates.append(len(s) / t_raw)
            self.progress.tick(n + 1, len(slices))
        value = median(ledger_rates)
        per_command = events_stored / len(items)
        self.meta["ingest"] = {
            "commands": len(items),
            "events_stored": events_stored,
            "events_per_command": round(per_command, 3),
            "ledger_events_per_second": None if value is None else round(value * per_command, 1),
        }
        self.figures.append(Figure(
            "ingest_crud", "ingest, end to end (batch API)", "cmd/s", "higher", value,
            ledger_rates, "CRUD table", median(crud_rates), crud_rates, TARGETS["ingest_crud"],
            note=f"execute_many of {o.batch} + refresh_views per batch; CRUD: UPDATE flag row +"
                 " INSERT audit row per command, one transaction per batch",
        ))  # fmt: skip
        self.figures.append(Figure(
            "ingest_raw", "ingest, end to end (batch API)", "cmd/s", "higher", value,
            ledger_rates, "raw executemany", median(raw_rates), raw_rates,
            note="raw: executemany of the very rows the ledger stored for the same batches,"
                 " into a table shaped like stored_events, one transaction per batch",
        ))  # fmt: skip
        done()

    def _probe(self, phase: str) -> tuple[float | None, list[float], int, float | None]:
        """Ledger ingest of a fresh probe stream; the CRUD job on emptied tables runs the
        same slices in between, as a gauge of how fast the machine is at that moment."""
        o = self.o
        items = list(self.workload.stream(o.n_probe))
        before = self.head()
        self.gauge.reset()
        rates, gauge = [], []
        slices = _slices(items, o.reps)
        for n, s in enumerate(slices):
            t, _ = self._ledger_batches(s, o.batch, phase)
            rates.append(len(s) / t)
            gauge.append(len(s) / self._crud(s, o.batch, self.gauge))
            self.progress.tick(n + 1, len(slices))
        return median(rates), rates, before, median(gauge)

    def flatness_small(self) -> None:
        done = self._phase("flatness-small")
        self.small = self._probe("flatness-small")
        done()

    def latency(self) -> None:
        done = self._phase("latency")
        items = list(self.workload.stream(self.o.latency_samples))
        ledger_ms: list[float] = []
        raw_ms: list[float] = []
        for n, it in enumerate(items):
            before = self.head()
            with self.profiled("latency"):
                t = time.perf_counter()
                try:
                    outcome = self.ledger.execute(it.command)
                    result = outcome.result
                except LedgerError:
                    result = "rejected"
                dt = time.perf_counter() - t
            self.outcomes[result] += 1
            if result == "appended":
                ledger_ms.append(dt * 1000)
                rows = self.stored.between(before, self.head())
                if rows:
                    t = time.perf_counter()
                    self.raw_events.insert_one(rows[0])
                    raw_ms.append((time.perf_counter() - t) * 1000)
            self.progress.tick(n + 1, len(items))
        for p in (50, 99):
            self.figures.append(Figure(
                f"append_p{p}", f"append latency p{p} (1 command/transaction)", "ms", "lower",
                percentile(ledger_ms, p), [], "raw 1-row INSERT", percentile(raw_ms, p), [],
                note=f"{len(ledger_ms)} appended commands via execute(); ratio > 1 is slower",
            ))  # fmt: skip
        done()

    def can_send(self) -> None:
        """Cold: each contact's first lookup since the reader forgot what it read (``clear``,
        when the reader remembers rows at all); warm: the same lookups straight after."""
        done = self._phase("can-send")
        o = self.o
        self.ledger.refresh_views()
        people = self.workload.people
        n = min(o.lookups, len(people))
        statement = self.raw.q(CAN_SEND_SQL)
        can_send, fetchone = self.ledger.can_send, self.raw.fetchone
        forget: Callable[[], None] | None = getattr(self.ledger.views, "clear", None)
        p0 = people[0]
        can_send(p0.location_id, p0.contact_id, Channel.SMS)  # warm both paths
        if fetchone(statement, (p0.location_id, p0.contact_id, "sms")) is None:
            raise RuntimeError(f"no status view row for {p0}: the views are not current")
        cold: list[float] = []
        warm: list[float] = []
        raw: list[float] = []
        for rep in range(o.reps):
            keys = [
                (p.location_id, p.contact_id, self.rng.choice(ALL_CHANNELS))
                for p in self.rng.sample(people, n)
            ]
            raw_keys = [(loc, cid, ch.value) for loc, cid, ch in keys]
            if forget is not None:
                forget()
            for rates in (cold, warm):
                with self.profiled("can-send-cold" if rates is cold else "can-send-warm"):
                    t = time.perf_counter()
                    for k in keys:
                        can_send(*k)
                    rates.append(n / (time.perf_counter() - t))
            t = time.perf_counter()
            for rk in raw_keys:
                fetchone(statement, rk)
            raw.append(n / (time.perf_counter() - t))
            self.progress.tick(rep + 1, o.reps)
        note = (
            f"{n} distinct contacts per repetition, one random channel each; raw: the same"
            " dnd_status_channels row through a plain connection"
        )
        self.figures.append(Figure(
            "can_send", "can-send (Python API), cold", "/s", "higher", median(cold), cold,
            "raw PK SELECT", median(raw), raw, TARGETS["can_send"],
            note=note + "; cold: first lookup of each contact since the reader's cache was cleared",
        ))  # fmt: skip
        self.figures.append(Figure(
            "can_send_warm", "can-send (Python API), warm", "/s", "higher", median(warm), warm,
            "raw PK SELECT", median(raw), raw, TARGETS["can_send"],
            note=note + "; warm: the same lookups again, straight after the cold ones",
        ))  # fmt: skip
        done()

    def as_of(self) -> None:
        """Cold: the contact has just had a new event (as between audits in production), so
        nothing remembered about it holds; warm: the same query again, straight after."""
        done = self._phase("as-of")
        loc, cid, start, end, _ = self.heavy
        samples = max(20, 4 * self.o.reps)
        span = (end - start).total_seconds()
        whens = [start + timedelta(seconds=self.rng.uniform(0, span)) for _ in range(samples)]
        self.ledger.status(loc, cid, as_of=whens[0])  # warm the code paths
        cold: list[float] = []
        warm: list[float] = []
        for n, when in enumerate(whens):
            at = end + timedelta(seconds=n + 1)
            self.ledger.execute(_user_set(loc, cid, at, f"rq-asof-{n}"))
            self.ledger.refresh_views()
            for ms in (cold, warm):
                with self.profiled("as-of-cold" if ms is cold else "as-of-warm"):
                    t = time.perf_counter()
                    self.ledger.status(loc, cid, as_of=when)
                    ms.append((time.perf_counter() - t) * 1000)
            self.progress.tick(n + 1, samples)
        events = int(self.ledger.repository.get(contact_uuid(loc, cid)).version)
        self.figures.append(Figure(
            "as_of", f"status as_of, {events:,}-event contact, cold", "ms", "lower",
            median(cold), cold, target=TARGETS["as_of"],
            note=f"median of {samples} calls, each right after a new event for the contact",
        ))  # fmt: skip
        self.figures.append(Figure(
            "as_of_warm", f"status as_of, {events:,}-event contact, warm", "ms", "lower",
            median(warm), warm, target=TARGETS["as_of"],
            note=f"median of {samples} calls, each repeating the cold call straight after it",
        ))  # fmt: skip
        done()

    def rebuild(self) -> None:
        done = self._phase("rebuild")
        reps = max(1, self.o.rebuild_reps)
        head = self.head()
        total = 2 * reps * head
        progressed = 0

        def step(n: int) -> None:
            nonlocal progressed
            progressed += n
            self.progress.tick(progressed, total)

        api, base = [], []
        for _ in range(reps):
            with self.profiled("rebuild"):
                t = time.perf_counter()
                n = self.ledger.projector.rebuild(list(VIEWS), progress=step)
                api.append(n / (time.perf_counter() - t))
            t = time.perf_counter()
            m = self._read_and_decode(step)
            base.append(m / (time.perf_counter() - t))
        self.figures.append(Figure(
            "rebuild", "projection rebuild (all views)", "ev/s", "higher", median(api), api,
            "log read+decode", median(base), base, TARGETS["rebuild"],
            note=f"{head:,} events; baseline: select_notifications in batches of 1000 +"
                 " mapper.to_domain_event",
        ))  # fmt: skip
        done()

    def _read_and_decode(self, step: Callable[[int], None]) -> int:
        recorder, mapper = self.ledger.recorder, self.ledger.mapper
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

    def fill_and_flatness_large(self) -> None:
        done = self._phase("fill")
        target = self.o.large
        start = self.head()
        while self.head() < target:
            items = list(self.workload.stream(FILL_BATCH * 4))
            for chunk in _chunks(items, FILL_BATCH):
                outcomes = self.ledger.execute_many([it.command for it in chunk])
                self.outcomes.update(o.result for o in outcomes)
                self.ledger.refresh_views()
            self.progress.tick(self.head() - start, max(1, target - start))
        done()
        done = self._phase("flatness-large")
        large = self._probe("flatness-large")
        small_rate, small_rates, small_at, small_gauge = self.small
        large_rate, large_rates, large_at, large_gauge = large
        drift = large_gauge / small_gauge if large_gauge and small_gauge else None
        ratio = large_rate / small_rate if large_rate and small_rate else None
        self.meta["flatness"] = {
            "small_stored": small_at,
            "large_stored": large_at,
            "crud_gauge_small": small_gauge,
            "crud_gauge_large": large_gauge,
            "machine_drift": drift,
            "ratio_adjusted_for_drift": ratio / drift if ratio and drift else None,
        }
        gauge = "" if drift is None else f"; the CRUD gauge moved {drift:.2f}x between the probes"
        self.figures.append(Figure(
            "ingest_large", f"ingest at {large_at:,} stored events", "cmd/s", "higher",
            large_rate, large_rates, f"at {small_at:,}", small_rate, small_rates,
            TARGETS["ingest_large"],
            note=f"probe of {self.o.n_probe} commands at each size{gauge}; the issue's target"
                 " is for 1M stored events vs 10k (--large 1000000)",
        ))  # fmt: skip
        done()

    def peak_rss(self) -> None:
        self.figures.append(Figure(
            "peak_rss", "peak RSS (whole run)", "MB", "lower", round(_rss_mb(), 1), [],
            target=TARGETS["peak_rss"], note="resource.getrusage(RUSAGE_SELF).ru_maxrss;"
            " the target is for the 1M run",
        ))  # fmt: skip

    # -- the whole run --------------------------------------------------------------------------
    def run(self) -> tuple[dict[str, Any], list[Figure]]:
        t0 = time.perf_counter()
        started = datetime.now().astimezone()
        self.open()
        try:
            self.setup()
            self.ingest()
            self.flatness_small()
            self.latency()
            self.can_send()
            self.as_of()
            self.rebuild()
            self.fill_and_flatness_large()
            self.peak_rss()
            self.progress.close()
            self._write_profiles()
        finally:
            self.close()
        self.meta.update({
            "started": started.isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - t0, 2),
            "backend": self.o.backend,
            "options": asdict(self.o),
            "contacts": len(self.workload.people) + 1,
            "stored_events": self.stored_at,
            "phase_seconds": self.phase_seconds,
            "rss_mb_after": self.rss_after,
            "outcomes": dict(self.outcomes),
            "workload_mix": {k: self.workload.counts.get(k, 0) for k in MIX},
            "late_items": self.workload.late,
            "machine": machine(),
            "source": self.source,
            # Other processes compete for the same cores: the load average, 1/5/15 minutes.
            "loadavg_start": self.load_start,
            "loadavg_end": _loadavg(),
            "profiled": self.o.profile_dir is not None,
        })  # fmt: skip
        return self.meta, self.figures

    def _write_profiles(self) -> None:
        if self.o.profile_dir is None or not self.profiles:
            return
        out = Path(self.o.profile_dir)
        out.mkdir(parents=True, exist_ok=True)
        for phase, prof in self.profiles.items():
            prof.dump_stats(str(out / f"{phase}.prof"))
            buf = io.StringIO()
            stats = pstats.Stats(prof, stream=buf)
            buf.write(f"== {phase}: by own time\n")
            stats.sort_stats("tottime").print_stats(30)
            buf.write(f"== {phase}: by cumulative time\n")
            stats.sort_stats("cumulative").print_stats(40)
            (out / f"{phase}.txt").write_text(buf.getvalue())
        self.meta["profiles"] = str(out)


def _user_set(location_id: str, contact_id: str, at: datetime, request_id: str) -> Command:
    from dnd_ledger import commands as cmd

    return cmd.SetDnd(location_id, contact_id, (Channel.FB,), "alice", None, at, request_id)


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def source_state() -> dict[str, Any] | None:
    """The commit measured, and the source files changed since it (figures move with both)."""
    git = shutil.which("git")
    root = Path(__file__).resolve().parents[3]
    if git is None or not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(  # noqa: S603
            [git, "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(  # noqa: S603
            [git, "status", "--porcelain", "--", "src"],
            cwd=root, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        diff = subprocess.run(  # noqa: S603
            [git, "diff", "HEAD", "--", "src"], cwd=root, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return {
        "head": head,
        "changed": [line[3:] for line in status.splitlines()],
        "diff_sha256": hashlib.sha256(diff).hexdigest() if diff else None,
    }


def machine() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 0
    return {
        "nproc": usable,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "eventsourcing": metadata.version("eventsourcing"),
        "sqlite": sqlite3.sqlite_version,
    }


__all__ = ["Options", "Run", "machine"]
