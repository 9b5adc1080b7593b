"""Opening a ledger from the command line: never by accident, never slowly, never leaking.

Only ``dnd-ledger init`` (and ``demo``, which makes its own) creates a ledger;
every other command refuses a missing one, so a mistyped ``--db`` cannot start
an empty ledger (with a new PII key) that answers "allowed" for everyone. On
PostgreSQL the server is asked first, with a short timeout, so a missing
database or role fails at once with the server's own words. No message ever
shows the password of a URL.
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from dnd_ledger.domain.errors import InvalidInput
from dnd_ledger.files import SQLITE_SIDECARS
from dnd_ledger.settings import Settings
from dnd_ledger.storage.persistence import Database, _redacted

#: How long to wait for the PostgreSQL server to answer the first connection (seconds).
CONNECT_TIMEOUT = 3


def redact(text: str) -> str:
    """``text`` with the password of any ``scheme://user:password@`` in it replaced."""
    return _redacted(text)


def _no_ledger(db: Database) -> InvalidInput:
    return InvalidInput(f"no ledger at {db.display}; create it with dnd-ledger init")


def check_postgres(db: Database, *, exists: bool) -> None:
    """Connect once (fast); with ``exists``, also require the ledger's tables."""
    try:
        with psycopg.connect(
            dbname=db.dbname, host=db.host, port=db.port, user=db.user,
            password=db.password or None, connect_timeout=CONNECT_TIMEOUT,
        ) as conn:  # fmt: skip
            if not exists:
                return
            row = conn.execute(  # every ledger has its meta table (the PII key's check)
                "SELECT 1 FROM information_schema.tables WHERE table_name = 'dnd_meta'"
            ).fetchone()
    except psycopg.Error as e:
        cause = " ".join(str(e).split()) or type(e).__name__
        if db.password:
            cause = cause.replace(db.password, "***")
        raise InvalidInput(f"cannot connect to {db.display}: {redact(cause)}") from None
    if row is None:
        raise _no_ledger(db)


def ledger_files(settings: Settings, db: Database) -> list[Path]:
    """The files that hold the ledger's data and secrets (those that exist are checked)."""
    paths = []
    if db.engine == "sqlite":
        paths += [Path(db.path + suffix) for suffix in ("", *SQLITE_SIDECARS)]
        paths.append(Path(settings.pii_key_file or db.path + ".pii-key"))
    elif settings.pii_key_file:
        paths.append(Path(settings.pii_key_file))
    if settings.signing_key_file:
        paths.append(Path(settings.signing_key_file))
    return paths


def require_ledger(settings: Settings, db: Database, *, create: bool) -> None:
    """Refuse (InvalidInput) a ledger that is missing, unless ``create``; check the server."""
    if db.engine == "postgres":
        if not settings.pii_key and not settings.pii_key_file:
            settings.key(db)  # says that PostgreSQL needs one, before any connection
        check_postgres(db, exists=not create)
    elif db.engine == "sqlite" and not create and not Path(db.path).exists():
        raise _no_ledger(db)
