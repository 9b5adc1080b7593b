"""Wall time and CPU time of a timed section, side by side.

The machine is shared, so wall time moves with whatever else runs; CPU time
(``time.process_time``: this process, every thread) is steadier. SQLite runs in
this process, so its work is in the CPU time. PostgreSQL's is not: on a local
server :class:`ServerCpu` adds the CPU time of the run's database backends, read
from ``/proc/<pid>/stat`` before and after each section (clock ticks, 10 ms).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Spent:
    """Seconds spent: wall clock, this process's CPU, the database server's CPU."""

    wall: float = 0.0
    cpu: float = 0.0
    server: float = 0.0

    def add(self, other: Spent) -> None:
        self.wall += other.wall
        self.cpu += other.cpu
        self.server += other.server

    @property
    def total_cpu(self) -> float:
        return self.cpu + self.server

    def per_op_us(self, n: int) -> tuple[float, float]:
        """(wall, CPU incl. server) microseconds per operation."""
        return self.wall * 1e6 / n, self.total_cpu * 1e6 / n


class ServerCpu:
    """CPU seconds of the PostgreSQL backends serving databases ``names`` (same machine)."""

    TICK = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0

    def __init__(self, admin: Any, names: list[str]) -> None:
        self.admin = admin  # an autocommit connection to another database
        self.names = names
        self.available = Path("/proc/self/stat").exists()

    def read(self) -> float:
        if not self.available:
            return 0.0
        rows = self.admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = ANY(%s)", (self.names,)
        ).fetchall()
        total = 0
        for (pid,) in rows:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # ended, or not on this machine
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / self.TICK


@contextmanager
def timed(spent: Spent, server: ServerCpu | None = None) -> Iterator[None]:
    """Add the section's wall, CPU and (when given) server CPU time to ``spent``."""
    s0 = server.read() if server is not None else 0.0
    c0 = time.process_time()
    w0 = time.perf_counter()
    try:
        yield
    finally:
        w1 = time.perf_counter()
        c1 = time.process_time()
        s1 = server.read() if server is not None else 0.0
        spent.wall += w1 - w0
        spent.cpu += c1 - c0
        spent.server += s1 - s0


__all__ = ["ServerCpu", "Spent", "timed"]
