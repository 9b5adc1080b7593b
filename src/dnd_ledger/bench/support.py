"""Small pieces every phase uses: the progress bar, slicing, memory, and what was measured
on (the machine, the load, the source commit)."""

from __future__ import annotations

import hashlib
import os
import platform
import resource
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import click

from dnd_ledger import commands as cmd
from dnd_ledger.domain.values import Channel

T = TypeVar("T")


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


def slices(items: Sequence[T], n: int) -> list[Sequence[T]]:
    """``items`` in ``n`` slices of (nearly) equal length."""
    n = max(1, min(n, len(items)))
    size, extra = divmod(len(items), n)
    out, at = [], 0
    for i in range(n):
        step = size + (1 if i < extra else 0)
        out.append(items[at : at + step])
        at += step
    return out


def chunks(seq: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def rss_mb() -> float:
    # Linux reports kilobytes, macOS bytes.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def user_set(location_id: str, contact_id: str, at: datetime, request_id: str) -> cmd.Command:
    return cmd.SetDnd(location_id, contact_id, (Channel.FB,), "alice", None, at, request_id)


def loadavg() -> list[float] | None:
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


__all__ = ["Progress", "chunks", "loadavg", "machine", "rss_mb", "slices", "source_state"]
