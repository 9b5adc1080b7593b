"""Figures, their baselines and targets; the table for people and the JSON for machines."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Better = Literal["higher", "lower"]


@dataclass(frozen=True)
class Target:
    """A target on the ratio (figure / baseline) or on the value itself."""

    on: Literal["ratio", "value"]
    op: Literal[">=", "<=", "<"]
    bound: float
    text: str

    def met(self, value: float | None, ratio: float | None) -> bool | None:
        x = ratio if self.on == "ratio" else value
        if x is None:
            return None
        if self.op == ">=":
            return x >= self.bound
        if self.op == "<=":
            return x <= self.bound
        return x < self.bound

    def to_json(self) -> dict[str, Any]:
        return {"on": self.on, "op": self.op, "bound": self.bound, "text": self.text}


@dataclass
class Figure:
    key: str
    label: str
    unit: str
    better: Better
    value: float | None
    samples: list[float] = field(default_factory=list)
    baseline_label: str | None = None
    baseline: float | None = None
    baseline_samples: list[float] = field(default_factory=list)
    target: Target | None = None
    note: str = ""
    #: CPU microseconds per operation (this process, plus the database server's on
    #: PostgreSQL: ``server_us`` of it), for the figure and for its baseline.
    cpu_us: float | None = None
    baseline_cpu_us: float | None = None
    server_us: float | None = None
    baseline_server_us: float | None = None
    cpu_samples: list[float] = field(default_factory=list)
    baseline_cpu_samples: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    @property
    def wall_us(self) -> float | None:
        """Wall microseconds per operation."""
        return _per_op_us(self.value, self.unit)

    @property
    def baseline_wall_us(self) -> float | None:
        return _per_op_us(self.baseline, self.unit)

    @property
    def cpu_ratio(self) -> float | None:
        """The ratio in CPU time, read like :attr:`ratio` (for a rate, baseline CPU per
        operation over the figure's; for a latency, the figure's over the baseline's)."""
        if not self.cpu_us or not self.baseline_cpu_us:
            return None
        if self.better == "higher":
            return self.baseline_cpu_us / self.cpu_us
        return self.cpu_us / self.baseline_cpu_us

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met(self.value, self.ratio)

    @property
    def met_cpu(self) -> bool | None:
        """The target judged on CPU time (ratio targets only)."""
        if self.target is None or self.target.on != "ratio" or self.cpu_ratio is None:
            return None
        return self.target.met(None, self.cpu_ratio)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "unit": self.unit,
            "better": self.better,
            "value": self.value,
            "samples": self.samples,
            "baseline": (
                None
                if self.baseline_label is None
                else {
                    "label": self.baseline_label,
                    "value": self.baseline,
                    "samples": self.baseline_samples,
                }
            ),
            "ratio": self.ratio,
            "wall_us": self.wall_us,
            "baseline_wall_us": self.baseline_wall_us,
            "cpu_us": self.cpu_us,
            "baseline_cpu_us": self.baseline_cpu_us,
            "server_us": self.server_us,
            "baseline_server_us": self.baseline_server_us,
            "cpu_samples": self.cpu_samples,
            "baseline_cpu_samples": self.baseline_cpu_samples,
            "cpu_ratio": self.cpu_ratio,
            "target": None if self.target is None else self.target.to_json(),
            "met": self.met,
            "met_cpu": self.met_cpu,
            "note": self.note,
        }


RATES = {"cmd/s", "/s", "ev/s"}


def _per_op_us(x: float | None, unit: str) -> float | None:
    if not x:
        return None
    if unit in RATES:
        return 1e6 / x
    if unit == "ms":
        return x * 1000
    return None


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def percentile(xs: list[float], p: float) -> float | None:
    """Nearest-rank percentile (``p`` in 0..100)."""
    if not xs:
        return None
    s = sorted(xs)
    k = max(0, min(len(s) - 1, round(p / 100 * len(s) + 0.5) - 1))
    return s[k]


def fmt(x: float | None, unit: str = "") -> str:
    if x is None:
        return "-"
    if abs(x) >= 1000:
        text = f"{x:,.0f}"
    elif abs(x) >= 100:
        text = f"{x:.0f}"
    elif abs(x) >= 10:
        text = f"{x:.1f}"
    else:
        text = f"{x:.2f}"
    return f"{text} {unit}".rstrip()


def _x(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


def _pair(wall: float | None, cpu: float | None) -> str:
    if wall is None and cpu is None:
        return "-"
    return f"{fmt(wall)} / {fmt(cpu)}"


#: Right-aligned columns of :func:`table`.
_NUMERIC = (1, 2, 4, 5, 6)


def table(figures: list[Figure]) -> str:
    """Each figure beside its baseline: the value, wall / CPU microseconds per operation
    for both, the ratio in wall time and in CPU time, the target and whether it is met
    (in wall time / in CPU time)."""
    head = ("figure", "value", "us/op wall / CPU", "baseline", "baseline us/op wall / CPU",
            "ratio", "CPU ratio", "target", "met (wall/CPU)")  # fmt: skip
    rows = [head]
    for f in figures:
        base = (
            "-" if f.baseline_label is None else f"{fmt(f.baseline, f.unit)} ({f.baseline_label})"
        )
        met = "/".join(
            {None: "-", True: "yes", False: "NO"}[m] for m in (f.met, f.met_cpu)
        ) if f.target else ""  # fmt: skip
        rows.append((
            f.label, fmt(f.value, f.unit), _pair(f.wall_us, f.cpu_us), base,
            _pair(f.baseline_wall_us, f.baseline_cpu_us), _x(f.ratio), _x(f.cpu_ratio),
            f.target.text if f.target else "", met,
        ))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = []
    for n, r in enumerate(rows):
        cells = [
            r[i].rjust(widths[i]) if i in _NUMERIC else r[i].ljust(widths[i]) for i in range(len(r))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(path: Path, meta: dict[str, Any], figures: list[Figure]) -> None:
    doc = {"meta": meta, "figures": [f.to_json() for f in figures]}
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")


__all__ = ["Figure", "Target", "fmt", "median", "percentile", "table", "write_json"]
