"""A benchmark run: the phases in order, each timing the ledger and, in the same run,
its baseline (wall time and CPU time, see :mod:`dnd_ledger.bench.timing`).

Order of a run (one process, one database engine):

1. setup: the contact population registers (ledger, same-pipeline CRUD, bare CRUD
   table, bare event table), and one contact gets a history of 1,000 events;
2. ingest: the stream in ``reps`` slices; per slice the ledger (``execute_many``
   per batch, then ``refresh_views``), the same-pipeline CRUD service, the bare
   CRUD table and ``executemany`` of the rows the ledger just stored, one after
   the other;
3. flatness, small: a probe stream at the small stored size;
4. single-command latency, alternating a ledger ``execute`` and a one-row INSERT;
5. can-send: ``can_send`` against the primary-key SELECT of the same view row;
6. past-time status (``as_of``) of the contact with 1,000 events;
7. rebuild of every view against reading and decoding the notification log;
8. flatness, large: the store is filled to ``--large`` events through the
   ledger, then the same probe runs again;
9. peak RSS.

The phases live in :mod:`~dnd_ledger.bench.write_phases` and
:mod:`~dnd_ledger.bench.read_phases`; the stores and shared steps in
:mod:`~dnd_ledger.bench.context`.
"""

from __future__ import annotations

import io
import pstats
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from dnd_ledger.bench import read_phases, write_phases
from dnd_ledger.bench.context import PG_ADMIN_URL, TARGETS, Context, Options
from dnd_ledger.bench.report import Figure
from dnd_ledger.bench.support import loadavg, machine
from dnd_ledger.bench.workload import MIX


class Run(Context):
    """One benchmark run: opens the stores, runs the phases, closes (and drops) them."""

    def run(self) -> tuple[dict[str, Any], list[Figure]]:
        t0 = time.perf_counter()
        started = datetime.now().astimezone()
        self.open()
        try:
            write_phases.setup(self)
            write_phases.ingest(self)
            write_phases.flatness_small(self)
            write_phases.latency(self)
            read_phases.can_send(self)
            read_phases.as_of(self)
            read_phases.rebuild(self)
            write_phases.fill_and_flatness_large(self)
            read_phases.peak_rss(self)
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
            "loadavg_end": loadavg(),
            "profiled": self.o.profile_dir is not None,
            # CPU time: this process (SQLite runs in it); on PostgreSQL plus the run's
            # database backends (server_cpu: whether /proc could be read for them).
            "server_cpu": self.server is not None and self.server.available,
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


__all__ = ["PG_ADMIN_URL", "TARGETS", "Options", "Run"]
