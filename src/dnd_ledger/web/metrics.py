"""The service's Prometheus metrics, served at ``GET /metrics`` (``prometheus-client``).

Counted in each process (summed over ``serve --workers N`` through the client's
multi-process mode: ``serve`` gives the workers one fresh directory in
``PROMETHEUS_MULTIPROC_DIR``):

- ``dnd_ledger_requests_total{route, method, status}`` and
  ``dnd_ledger_request_duration_seconds{route, method}`` (a histogram), by route
  template, never by raw path;
- ``dnd_ledger_decisions_total{channel, result}``: can-send answers, ``allowed``,
  ``blocked`` or ``unavailable`` (no decision: the views could not be trusted);
- ``dnd_ledger_webhooks_total{provider, outcome}``: provider callbacks,
  ``accepted``, ``refused`` (signature, timestamp, replay: 403), ``invalid``
  (other 4xx) or ``error`` (5xx).

Read from the database when scraped, so every worker reports the same figure:
``dnd_ledger_view_lag_events{view}`` (events in the log that a view has not yet
applied), and any backlog a :data:`BACKLOGS` source reports.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import multiprocess as _multiprocess
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dnd_ledger.web.auth import hash_token

if TYPE_CHECKING:
    from dnd_ledger.application import DndLedger

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

REQUESTS = Counter(
    "dnd_ledger_requests", "HTTP requests by route template and status.",
    ["route", "method", "status"], registry=None,
)  # fmt: skip
LATENCY = Histogram(
    "dnd_ledger_request_duration_seconds", "HTTP request latency by route template.",
    ["route", "method"], buckets=_LATENCY_BUCKETS, registry=None,
)  # fmt: skip
DECISIONS = Counter(
    "dnd_ledger_decisions", "can-send answers by channel and result.",
    ["channel", "result"], registry=None,
)  # fmt: skip
WEBHOOKS = Counter(
    "dnd_ledger_webhooks", "Provider webhooks by provider and outcome.",
    ["provider", "outcome"], registry=None,
)  # fmt: skip
_COUNTED = (REQUESTS, LATENCY, DECISIONS, WEBHOOKS)

#: Installation-wide backlogs, read when scraped: name -> (help, reader of
#: ``{label value: count}`` from the ledger). Other modules add theirs.
BACKLOGS: dict[str, tuple[str, Callable[[DndLedger], dict[str, int]]]] = {}


def decision(channel: str, allowed: bool | None) -> None:
    """Count one can-send answer (``None``: unavailable, no decision made)."""
    result = "unavailable" if allowed is None else ("allowed" if allowed else "blocked")
    DECISIONS.labels(channel, result).inc()


def webhook_outcome(status: int) -> str:
    if status < 400:
        return "accepted"
    if status == 403:
        return "refused"
    return "invalid" if status < 500 else "error"


class _FromDatabase(Collector):
    """Gauges read from the database at scrape time (the same in every worker)."""

    def __init__(self, ledger: DndLedger) -> None:
        self.ledger = ledger

    def collect(self) -> Iterator[Metric]:
        failed: list[str] = []  # what could not be read: the scrape still answers
        lag = GaugeMetricFamily(
            "dnd_ledger_view_lag_events", "Events of the log a view has not applied yet.",
            labels=["view"],
        )  # fmt: skip
        try:
            head = self.ledger.projector.head()
            for view, position in sorted(self.ledger.projector.positions().items()):
                lag.add_metric([view], max(0, head - position))
        except Exception as e:
            failed.append(f"views: {type(e).__name__}")
        yield lag
        for name, (help_text, read) in sorted(BACKLOGS.items()):
            family = GaugeMetricFamily(name, help_text, labels=["name"])
            try:
                for label, count in sorted(read(self.ledger).items()):
                    family.add_metric([label], count)
            except Exception as e:
                failed.append(f"{name}: {type(e).__name__}")
            yield family
        up = GaugeMetricFamily(
            "dnd_ledger_database_up", "1 when every database figure above could be read."
        )
        up.add_metric([], 0 if failed else 1)
        yield up


def render(ledger: DndLedger) -> tuple[bytes, str]:
    """The Prometheus text exposition: this installation's counters and gauges."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get(MULTIPROC_ENV):
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        for metric in _COUNTED:
            registry.register(metric)
    registry.register(_FromDatabase(ledger))
    return generate_latest(registry), CONTENT_TYPE_LATEST


def token_ok(expected_sha256: str | None, authorization: str | None) -> bool:
    """``/metrics``'s optional bearer token (its SHA-256 in ``metrics_token_sha256``)."""
    if expected_sha256 is None:
        return True
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(hash_token(token.strip()), expected_sha256.lower())


__all__ = [
    "BACKLOGS",
    "DECISIONS",
    "MULTIPROC_ENV",
    "decision",
    "render",
    "token_ok",
    "webhook_outcome",
]
