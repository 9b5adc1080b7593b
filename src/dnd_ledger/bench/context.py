"""A run's options, its stores (the ledger and every baseline) and the timed steps the
phases share: ingest through the ledger, the same-pipeline CRUD, the bare CRUD table and
raw ``executemany`` of the rows the ledger stored."""

from __future__ import annotations

import contextlib
import cProfile
import gc
import random
import shutil
import sqlite3
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from dnd_ledger.application import DndLedger
from dnd_ledger.bench.baselines import Crud, RawDb, RawEvents, StoredRows
from dnd_ledger.bench.pipeline import PipelineCrud
from dnd_ledger.bench.report import Figure, Target, median
from dnd_ledger.bench.support import Progress, chunks, loadavg, rss_mb, source_state
from dnd_ledger.bench.timing import ServerCpu, Spent, timed
from dnd_ledger.bench.workload import Item, Workload
from dnd_ledger.commands import Command
from dnd_ledger.storage.persistence import parse_db_url

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PII_KEY = b"dnd-ledger bench key 0123456789abcdef"
AS_OF_EVENTS = 1000

#: Issue 14's targets (SQLite; PostgreSQL reports the same figures).
TARGETS = {
    "ingest_pipeline": Target("ratio", ">=", 0.8, ">= 0.8x (stretch 1.0x)"),
    "can_send": Target("ratio", ">=", 0.8, ">= 0.8x"),
    "rebuild": Target("ratio", ">=", 0.5, ">= 0.5x"),
    "as_of": Target("value", "<=", 5.0, "<= 5 ms"),
    "ingest_large": Target("ratio", ">=", 0.9, ">= 0.9x (1M vs 10k)"),
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


class Context:
    """The stores of one run, what it measured so far, and the steps phases share."""

    #: The contact with a long history: location, contact, first and last time, version.
    heavy: tuple[str, str, datetime, datetime, int]
    #: The small flatness probe: ledger and gauge time per slice, slice sizes, stored before.
    small: tuple[list[Spent], list[Spent], list[int], int]

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
        self.server: ServerCpu | None = None
        self.source = source_state()  # at the start: the code this process imported
        self.load_start = loadavg()
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
                "setup": opts.n_contacts * 6 + AS_OF_EVENTS * 1.5,
                "ingest": opts.events * 1.6,
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
            url, pipe_url = self._pg_databases()
            self.ledger = DndLedger(url, pii_key=PII_KEY)
            self.raw = RawDb(parse_db_url(url))
            self.base = self.raw
            self.pipe_db = RawDb(parse_db_url(pipe_url))
            self.meta["database"] = url
            self.meta["pipeline_database"] = pipe_url
            self.meta["server_version"] = str(
                self.raw.fetchall("SELECT current_setting('server_version')")[0][0]
            )
        else:
            workdir = Path(self.o.workdir or tempfile.mkdtemp(prefix="dnd-bench-"))
            workdir.mkdir(parents=True, exist_ok=True)
            if not self.o.keep and not self.o.workdir:
                self._cleanup.append(lambda: shutil.rmtree(workdir, ignore_errors=True))
            tag = uuid.uuid4().hex[:8]
            ledger_db, base_db, pipe_db = (workdir / f"{n}-{tag}.db" for n in
                                           ("ledger", "baseline", "pipeline"))  # fmt: skip
            if not self.o.keep and self.o.workdir:
                for p in (ledger_db, base_db, pipe_db):
                    for suffix in ("", "-wal", "-shm"):
                        path = Path(f"{p}{suffix}")
                        self._cleanup.append(lambda path=path: path.unlink(missing_ok=True))  # type: ignore[misc]
            self.ledger = DndLedger(str(ledger_db), pii_key=PII_KEY)
            self.raw = RawDb(parse_db_url(str(ledger_db)))
            self.base = RawDb(parse_db_url(str(base_db)))
            self.pipe_db = RawDb(parse_db_url(str(pipe_db)))
            self.meta["database"] = str(ledger_db)
            self.meta["baseline_database"] = str(base_db)
            self.meta["pipeline_database"] = str(pipe_db)
            self.meta["server_version"] = f"SQLite {sqlite3.sqlite_version}"
        self.crud = Crud(self.base)
        self.pipeline = PipelineCrud(self.pipe_db, PII_KEY)
        # A gauge of machine speed for the flatness probes: the CRUD job on tables emptied
        # before each probe, so it does the same work at both sizes.
        self.gauge = Crud(self.base, "bench_gauge")
        self.raw_events = RawEvents(self.base)
        recorder: Any = self.ledger.recorder
        self.stored = StoredRows(self.raw, str(recorder.events_table_name))
        # The process's collector (``python -m dnd_ledger.bench`` tunes it as the CLI and
        # the service do: runtime.tune_gc); one process, so both sides of every ratio.
        self.meta["gc_thresholds"] = list(gc.get_threshold())
        self.meta["gc_frozen"] = gc.get_freeze_count()

    def _pg_databases(self) -> tuple[str, str]:
        """Two databases for the run (the ledger and baselines; the pipeline baseline,
        whose vault table has the ledger's name), dropped afterwards."""
        import psycopg

        name = f"dnd_bench_{uuid.uuid4().hex[:12]}"
        names = [name, f"{name}_pipe"]
        admin = psycopg.connect(self.o.pg_admin_url, autocommit=True)
        self._cleanup.append(admin.close)
        for n in names:
            admin.execute(f'CREATE DATABASE "{n}"')

        def drop() -> None:
            for n in names:
                admin.execute(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)')

        if not self.o.keep:
            self._cleanup.append(drop)
        self.server = ServerCpu(admin, names)
        prefix = self.o.pg_admin_url.rsplit("/", 1)[0]
        return f"{prefix}/{names[0]}", f"{prefix}/{names[1]}"

    def close(self) -> None:
        self.progress.close()
        with contextlib.suppress(Exception):
            self.ledger.close()
        dbs = [getattr(self, n, None) for n in ("raw", "base", "pipe_db")]
        for db in {id(d): d for d in dbs if d is not None}.values():
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

    def ledger_batches(
        self, items: Sequence[Item], batch: int, phase: str
    ) -> tuple[Spent, list[tuple[int, int, int]]]:
        """Ingest through the ledger; returns the time and (commands, after, upto) per batch."""
        spent = Spent()
        bounds: list[tuple[int, int, int]] = []
        last = self.head()
        for chunk in chunks(items, batch):
            commands: list[Command] = [it.command for it in chunk]
            with self.profiled(phase), timed(spent, self.server):
                outcomes = self.ledger.execute_many(commands)
                self.ledger.refresh_views()
            self.outcomes.update(o.result for o in outcomes)
            now = self.head()
            bounds.append((len(chunk), last, now))
            last = now
        return spent, bounds

    def pipeline_batches(self, items: Sequence[Item], batch: int) -> Spent:
        """The same commands through the same-pipeline CRUD service."""
        spent = Spent()
        for chunk in chunks(items, batch):
            commands = [it.command for it in chunk]
            with timed(spent, self.server):
                self.pipeline.apply(commands)
        return spent

    def crud_batches(self, items: Sequence[Item], batch: int, crud: Crud | None = None) -> Spent:
        crud = crud or self.crud
        spent = Spent()
        for chunk in chunks(items, batch):
            intents = [it.crud for it in chunk]
            with timed(spent, self.server):
                crud.apply(intents)
        return spent

    def raw_batches(self, bounds: list[tuple[int, int, int]]) -> Spent:
        rows = [self.stored.between(after, upto) for _, after, upto in bounds]
        spent = Spent()
        for r in rows:
            if r:
                with timed(spent, self.server):
                    self.raw_events.executemany(r)
        return spent

    def server_us(self, samples: list[float]) -> float | None:
        """The median server CPU per operation; None where there is no server (SQLite)."""
        return median(samples) if self.server is not None else None

    def phase(self, name: str) -> Callable[[], None]:
        self.progress.start(name)
        t = time.perf_counter()

        def done() -> None:
            self.phase_seconds[name] = round(time.perf_counter() - t, 3)
            self.rss_after[name] = round(rss_mb(), 1)
            self.stored_at[name] = self.head()

        return done


__all__ = ["AS_OF_EVENTS", "PG_ADMIN_URL", "PII_KEY", "TARGETS", "Context", "Options"]
