"""The Mailgun replay cache, kept in the ledger's database so it survives restarts.

A Mailgun signature covers only (timestamp, token), not the payload, so a
captured signature could be replayed with another body: each token is accepted
once. Several service processes share the table, so a replay sent to another
process is refused too. ``forget`` undoes ``remember`` when the event that came
with the token could not be stored, so the provider's retry is not refused.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from dnd_ledger.storage.persistence import Sql

#: Tokens older than this are dropped; at least twice the freshness window (15 min).
RETENTION = timedelta(hours=1)


class SqlReplayCache:
    TABLE = "dnd_replay_tokens"

    def __init__(self, sql: Sql, retention: timedelta = RETENTION) -> None:
        self.sql = sql
        self.retention = retention

    def create_table(self) -> None:
        self.sql.execute(
            f"CREATE TABLE IF NOT EXISTS {self.TABLE} (token TEXT PRIMARY KEY, seen_at TEXT NOT NULL)"
        )

    def remember(self, token: str, seen_at: datetime) -> bool:
        """True if the token is new (and is now remembered), False if seen before."""
        q = self.sql.q
        with self.sql.transaction() as c:
            c.execute(
                q(f"DELETE FROM {self.TABLE} WHERE seen_at < ?"),
                ((seen_at - self.retention).isoformat(),),
            )
            c.execute(
                q(
                    f"INSERT INTO {self.TABLE} (token, seen_at) VALUES (?, ?) ON CONFLICT DO NOTHING RETURNING token"
                ),
                (token, seen_at.isoformat()),
            )
            return c.fetchone() is not None

    def forget(self, token: str) -> None:
        self.sql.execute(f"DELETE FROM {self.TABLE} WHERE token = ?", (token,))
