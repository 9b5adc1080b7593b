"""``dnd-ledger projections ...`` and ``stats``: the views and their counts."""

from __future__ import annotations

import io
import sys
import time
from typing import Any

import click

from dnd_ledger.cli.common import Ctx, ledger_errors, pass_ctx
from dnd_ledger.cli.format import dumps, format_option, render_rows
from dnd_ledger.cli.output import table
from dnd_ledger.domain.errors import LedgerUnavailable
from dnd_ledger.projections.contact_views import CHANNEL_NAMES
from dnd_ledger.projections.schema import VIEWS
from dnd_ledger.services.reviews import review_counts


@click.group()
def projections() -> None:
    """The views: their positions, rebuilding them, keeping them current."""


@projections.command("status")
@format_option
@pass_ctx
@ledger_errors
def projections_status(c: Ctx, fmt: str) -> None:
    """Each view's position in the log and how far behind it is.

    When the views are stuck on an event they could not apply, it names the event's
    position and the error, and exits with status 3 (decisions fail closed meanwhile).

    Example: dnd-ledger projections status --json
    """
    ledger = c.ledger
    head = ledger.projector.head()
    positions = ledger.projector.positions()
    stuck = ledger.projector.error()
    error = None
    if stuck is not None and stuck[0] > min(positions.values()):
        error = f"stuck at position {stuck[0]} since {stuck[2]}: {stuck[1]}"
    views = [
        {
            "view": v,
            "position": p,
            "head": head,
            "lag": head - p,
            "error": error if p < head else None,
        }
        for v, p in positions.items()
    ]
    if fmt != "table":
        click.echo(render_rows(views, fmt, ["view", "position", "head", "lag", "error"]))
    else:
        click.echo(
            table(["view", "position", "head", "lag"], [list(v.values())[:4] for v in views])
        )
        if error:
            click.echo(f"views {error}")
    if error:
        sys.exit(3)


@projections.command("rebuild")
@click.argument("name", required=False, type=click.Choice([*VIEWS, "all"]), default="all")
@pass_ctx
@ledger_errors
def projections_rebuild(c: Ctx, name: str) -> None:
    """Rebuild a view (or all) from the log, in one pass with a progress bar.

    status, audit and stats derive from the same contact state and are rebuilt together.

    Example: dnd-ledger projections rebuild audit
    """
    ledger = c.ledger
    names = list(VIEWS) if name == "all" else [name]
    total = ledger.projector.head()
    started = time.perf_counter()
    show = sys.stderr.isatty()
    out: Any = sys.stderr if show else io.StringIO()
    with click.progressbar(length=total, label=f"rebuilding {name}", file=out) as bar:
        done = ledger.projector.rebuild(names, progress=bar.update)
    took = time.perf_counter() - started
    click.echo(f"rebuilt {name}: {done} events in {took:.2f}s")


@projections.command("run")
@click.option("--follow", is_flag=True, help="Keep running, polling for new events.")
@click.option("--interval", type=float, default=0.5, show_default=True, help="Poll interval (s).")
@pass_ctx
@ledger_errors
def projections_run(c: Ctx, follow: bool, interval: float) -> None:
    """Catch the views and the notary up with the log (with --follow, keep them current).

    Run as its own process beside services sharing a PostgreSQL ledger.

    Example: dnd-ledger --db postgresql://ledger@db/ledger projections run --follow
    """
    ledger = c.ledger
    total = ledger.projector.catch_up()
    ledger.notary.catch_up()
    click.echo(f"applied {total} events")
    while follow:
        time.sleep(interval)
        try:
            n = ledger.projector.catch_up()
        except LedgerUnavailable as e:  # recorded for every process; tried again next turn
            click.echo(f"Error: {e}", err=True)
            continue
        ledger.notary.keep_up()
        if n:
            click.echo(f"applied {n} events")


def stats_json(dims: dict[str, dict[str, int]]) -> dict[str, Any]:
    """One location's counts with every status named, zeros included."""
    overall = {v: dims.get("overall", {}).get(v, 0) for v in ("on", "off", "partial")}
    channels = {
        ch: {
            s: dims.get(f"channel:{ch}", {}).get(s, 0) for s in ("inactive", "active", "permanent")
        }
        for ch in CHANNEL_NAMES
    }
    reviews = {"open": 0, "overdue": 0, **dims.get("reviews", {})}
    return {
        "contacts": sum(overall.values()),
        "overall": overall,
        "channels": channels,
        "reviews": reviews,
    }


@click.command()
@click.argument("location", required=False)
@format_option
@pass_ctx
@ledger_errors
def stats(c: Ctx, location: str | None, fmt: str) -> None:
    """Contacts by overall DND status and by channel and status, per location.

    With --json: {LOCATION: {"contacts": N, "overall": {"on", "off", "partial"},
    "channels": {CHANNEL: {"inactive", "active", "permanent"}}}}, zeros included.

    Example: dnd-ledger stats loc-1 --json
    """
    ledger = c.ledger
    ledger.ensure_current()
    data: dict[str, Any] = ledger.views.stats(location)
    for loc, counts in review_counts(ledger, location).items():
        data.setdefault(loc, {})["reviews"] = counts
    if fmt == "json":
        click.echo(dumps({loc: stats_json(dims) for loc, dims in data.items()}))
        return
    rows = [
        {"location": loc, "dimension": dim, "value": value, "contacts": n}
        for loc, dims in data.items()
        for dim, values in dims.items()
        for value, n in values.items()
    ]
    click.echo(render_rows(rows, fmt, ["location", "dimension", "value", "contacts"]))
