"""Shared fixtures: a controllable clock and a ledger on every backend.

PostgreSQL tests create their own uniquely named database and drop it
afterwards. Without a reachable server they skip with the reason, except under
CI=true, where they must run.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dnd_ledger.application import DndLedger

PG_ADMIN_URL = os.environ.get(
    "DND_LEDGER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
TEST_KEY = b"test-key-0123456789abcdef"


class Clock:
    """A clock the tests move by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _pg_unavailable_reason() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except Exception as e:  # any failure to connect means: no server here
        return f"PostgreSQL not reachable at {PG_ADMIN_URL}: {e}"


_PG_REASON: list[str | None] = []


def pg_reason() -> str | None:
    if not _PG_REASON:
        _PG_REASON.append(_pg_unavailable_reason())
    return _PG_REASON[0]


def require_postgres() -> None:
    reason = pg_reason()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true requires PostgreSQL: {reason}")
    pytest.skip(reason)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    require_postgres()
    import psycopg

    name = f"dnd_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


BACKENDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory:"
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    url: str = request.getfixturevalue("pg_url")
    return url


#: Two ledgers (processes) sharing one database file or server.
SHARED_DATABASES = pytest.mark.parametrize(
    "db_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
def two_ledgers(db_url: str, clock: Clock) -> Iterator[tuple[DndLedger, DndLedger]]:
    first = DndLedger(db_url, pii_key=TEST_KEY, clock=clock)
    second = DndLedger(db_url, pii_key=TEST_KEY, clock=clock)
    try:
        yield first, second
    finally:
        second.close()
        first.close()


@pytest.fixture
def ledger(db_url: str, clock: Clock) -> Iterator[DndLedger]:
    app = DndLedger(db_url, pii_key=TEST_KEY, clock=clock)
    try:
        yield app
    finally:
        app.close()


def poison_opt_outs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the projector fail on every OptOutKeyword, as on an event it cannot apply."""

    from dnd_ledger.domain.contact import Contact
    from dnd_ledger.projections.batch import Batch

    take = Batch.take

    def poisoned(self: Any, position: int, event: Any) -> None:
        if isinstance(event, Contact.OptOutKeyword):
            raise OverflowError("date value out of range")
        take(self, position, event)

    monkeypatch.setattr(Batch, "take", poisoned)
    # The writer's own batch takes a contact's events from its aggregate instead.
    from dnd_ledger.projections import own

    from_aggregate = own._contact

    def poisoned_own(work: Any, position: int, event: Any, *rest: Any) -> None:
        if isinstance(event, Contact.OptOutKeyword):
            raise OverflowError("date value out of range")
        from_aggregate(work, position, event, *rest)

    monkeypatch.setattr(own, "_contact", poisoned_own)


@contextmanager
def raw(db_url: str) -> Iterator[Callable[[str, tuple[Any, ...]], object]]:
    """Statements on the ledger's database outside any ledger, committed at the end."""
    if db_url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(db_url) as pg:  # commits when the block ends
            yield lambda statement, params: pg.execute(statement.replace("?", "%s"), params)
        return
    conn = sqlite3.connect(db_url)
    try:
        yield conn.execute
        conn.commit()
    finally:
        conn.close()


def open_together(
    n: int, db_url: str, key: bytes, clock: Clock
) -> tuple[list[DndLedger], list[BaseException]]:
    """``n`` ledgers opened on ``db_url`` at once, one per thread: those opened and the
    errors of the others (the caller closes the ledgers)."""
    opened: list[DndLedger] = []
    failed: list[BaseException] = []
    go = threading.Barrier(n)

    def open_one() -> None:
        go.wait()
        try:
            opened.append(DndLedger(db_url, pii_key=key, clock=clock))
        except BaseException as e:  # reported to the caller
            failed.append(e)

    threads = [threading.Thread(target=open_one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return opened, failed
