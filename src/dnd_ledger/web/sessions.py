"""The audit page's sessions, kept server-side so signing out ends them everywhere.

A session is a random id; the ledger's database holds its SHA-256, the token
name it stands for and when it expires, so every worker process sees the same
sessions and ``POST /v1/sign-out`` revokes one for all of them. The cookie also
carries an HMAC (see :class:`dnd_ledger.web.auth.TokenBook`), so a forged or
garbled cookie is refused before the database is asked.
"""

from __future__ import annotations

import hashlib
import time

from dnd_ledger.storage.persistence import Sql

#: Serialises CREATE TABLE across processes on PostgreSQL (the ledger uses 74201).
_LOCK = 74202


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("ascii")).hexdigest()


class SessionStore:
    TABLE = "dnd_web_sessions"

    def __init__(self, sql: Sql) -> None:
        self.sql = sql

    def create_table(self) -> None:
        statement = (
            f"CREATE TABLE IF NOT EXISTS {self.TABLE} "
            "(id TEXT PRIMARY KEY, token_name TEXT NOT NULL, expires BIGINT NOT NULL)"
        )
        if self.sql.engine != "postgres":
            self.sql.execute(statement)
            return
        with self.sql.datastore.get_connection() as conn:
            conn.execute(f"SELECT pg_advisory_lock({_LOCK})")
            try:
                self.sql.execute(statement)
            finally:
                conn.execute(f"SELECT pg_advisory_unlock({_LOCK})")

    def add(self, session_id: str, token_name: str, expires: int) -> None:
        now = int(time.time())
        with self.sql.transaction() as c:
            c.execute(self.sql.q(f"DELETE FROM {self.TABLE} WHERE expires < ?"), (now,))
            c.execute(
                self.sql.q(f"INSERT INTO {self.TABLE} (id, token_name, expires) VALUES (?, ?, ?)"),
                (_key(session_id), token_name, expires),
            )

    def alive(self, session_id: str, token_name: str, now: float) -> bool:
        row = self.sql.fetchone(
            f"SELECT token_name, expires FROM {self.TABLE} WHERE id = ?", (_key(session_id),)
        )
        return row is not None and row[0] == token_name and int(row[1]) >= now

    def revoke(self, session_id: str) -> None:
        self.sql.execute(f"DELETE FROM {self.TABLE} WHERE id = ?", (_key(session_id),))
