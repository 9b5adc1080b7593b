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

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met(self.value, self.ratio)

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
            "target": None if self.target is None else self.target.to_json(),
            "met": self.met,
            "note": self.note,
        }


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


def table(figures: list[Figure]) -> str:
    head = ("figure", "value", "baseline", "ratio", "target", "met")
    rows = [head]
    for f in figures:
        base = (
            "-" if f.baseline_label is None else f"{fmt(f.baseline, f.unit)} ({f.baseline_label})"
        )
        ratio = "-" if f.ratio is None else f"{f.ratio:.2f}x"
        met = {None: "", True: "yes", False: "NO"}[f.met]
        rows.append((
            f.label, fmt(f.value, f.unit), base, ratio, f.target.text if f.target else "", met,
        ))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = []
    for n, r in enumerate(rows):
        cells = [
            r[i].rjust(widths[i]) if i in (1, 3) else r[i].ljust(widths[i]) for i in range(len(r))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(path: Path, meta: dict[str, Any], figures: list[Figure]) -> None:
    doc = {"meta": meta, "figures": [f.to_json() for f in figures]}
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")


__all__ = ["Figure", "Target", "fmt", "median", "percentile", "table", "write_json"]
