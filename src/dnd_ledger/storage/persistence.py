"""Database URLs, and SQL on the eventsourcing datastore's connections.

``./file.db``, ``sqlite:///path`` (the embedded default), ``postgresql://...``
(production) or ``memory:`` (tests). The ledger's own tables (personal data,
replay cache, views) live in the same database and are reached through the
eventsourcing datastore's connection pool, so they share its transactions.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import parse_qs, unquote, urlparse

from dnd_ledger.domain.errors import InvalidInput

Engine = Literal["sqlite", "postgres", "memory"]


@dataclass(frozen=True)
class Database:
    engine: Engine
    path: str = ""  # sqlite file
    dbname: str = ""
    host: str = ""
    port: str = "5432"
    user: str = ""
    password: str = ""
    schema: str = ""

    @property
    def display(self) -> str:
        if self.engine == "sqlite":
            return f"sqlite:///{self.path}"
        if self.engine == "postgres":
            return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"
        return "memory:"


def parse_db_url(url: str) -> Database:
    url = url.strip()
    if not url:
        raise InvalidInput("database URL is empty")
    if url in ("memory:", ":memory:", "memory://"):
        return Database(engine="memory")
    if url.startswith(("postgresql://", "postgres://")):
        u = urlparse(url)
        dbname = unquote(u.path.lstrip("/"))
        shown = _redacted(url)  # no message ever shows the password
        if not dbname:
            raise InvalidInput(f"database URL {shown!r} names no database")
        try:
            port = u.port
        except ValueError:
            raise InvalidInput(f"database URL {shown!r} has a port that is not 0-65535") from None
        query = parse_qs(u.query)
        host = unquote(u.hostname or "") or query.get("host", ["/var/run/postgresql"])[0]
        return Database(
            engine="postgres",
            dbname=dbname,
            host=host,
            port=str(port or 5432),
            user=unquote(u.username or "") or os.environ.get("PGUSER", "") or _login_name(),
            password=unquote(u.password or ""),
            schema=query.get("schema", [""])[0],
        )
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        # sqlite:////abs/path keeps its leading slash; sqlite:///rel/path is relative.
        return Database(engine="sqlite", path=path)
    if "://" in url:
        raise InvalidInput(
            f"unsupported database URL {_redacted(url)!r}: use a file path, sqlite:///path or "
            "postgresql://..."
        )
    return Database(engine="sqlite", path=url)


def _redacted(url: str) -> str:
    """``url`` with the password of ``scheme://user:password@`` replaced by ``***``."""
    return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", url)


def _login_name() -> str:
    try:
        return os.getlogin()
    except OSError:
        import getpass

        return getpass.getuser()


class Cursor(Protocol):
    def execute(self, sql: Any, params: Any = ..., /) -> Any: ...
    def executemany(self, sql: Any, params: Any, /) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> Any: ...


class Sql:
    """Runs the ledger's own SQL on the eventsourcing datastore, in either dialect.

    Statements are written with ``?`` placeholders; PostgreSQL gets ``%s``.
    """

    def __init__(self, datastore: Any, engine: Engine) -> None:
        self.datastore = datastore
        self.engine = engine

    def q(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.engine == "postgres" else statement

    @property
    def dialect(self) -> str:
        return "postgres" if self.engine == "postgres" else "sqlite"

    @contextmanager
    def transaction(self, *, commit: bool = True) -> Iterator[Cursor]:
        with self.datastore.transaction(commit=commit) as cursor:
            yield cursor

    def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        with self.transaction() as c:
            c.execute(self.q(statement), tuple(params))

    def fetchall(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.transaction(commit=False) as c:
            c.execute(self.q(statement), tuple(params))
            return [row_values(r) for r in c.fetchall()]

    def fetchall_in(
        self, c: Any, statement: str, params: Sequence[Any] = ()
    ) -> list[tuple[Any, ...]]:
        """``fetchall`` in the caller's open transaction ``c`` (sees its own writes)."""
        c.execute(self.q(statement), tuple(params))
        return [row_values(r) for r in c.fetchall()]

    def table_exists(self, name: str) -> bool:
        """Whether table ``name`` exists (on PostgreSQL: on the search path)."""
        if self.engine == "postgres":
            row = self.fetchone("SELECT to_regclass(?) IS NOT NULL", (name,))
        else:
            row = self.fetchone(
                "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
            )
        return bool(row and row[0])

    def fetchone(self, statement: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        with self.transaction(commit=False) as c:
            c.execute(self.q(statement), tuple(params))
            row = c.fetchone()
            return None if row is None else row_values(row)

    def lookup(self, statement: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """``fetchone`` of one statement already in this dialect (:meth:`q`), which reads
        the latest committed rows: on PostgreSQL on an autocommit connection of the pool,
        one round trip instead of three (BEGIN, the statement, COMMIT)."""
        if self.engine != "postgres":
            with self.transaction(commit=False) as c:
                c.execute(statement, tuple(params))
                row = c.fetchone()
        else:
            with self.datastore.cursor() as c:
                c.execute(statement, tuple(params))
                row = c.fetchone()
        return None if row is None else row_values(row)


def row_values(row: Any) -> tuple[Any, ...]:
    # eventsourcing's cursors return sqlite3.Row or psycopg dict rows.
    if isinstance(row, dict):
        return tuple(row.values())
    return tuple(row)
