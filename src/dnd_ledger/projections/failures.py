"""A batch the projector could not apply: kept in ``dnd_projection_errors`` for every
process to see (the web service's health check, ``dnd-ledger views status``), until a
later catch-up gets past it."""

from __future__ import annotations

from datetime import UTC, datetime

from dnd_ledger.projections.rows import iso
from dnd_ledger.storage.persistence import Sql

#: The name of the projector's row in ``dnd_projection_errors``.
ERROR_NAME = "views"


class Failed(Exception):
    """Applying the batch failed at the event at ``position``."""

    def __init__(self, position: int, cause: BaseException) -> None:
        super().__init__(position, cause)
        self.position = position
        self.cause = cause


class ErrorRecord:
    """The projector's row in ``dnd_projection_errors``."""

    def __init__(self, sql: Sql) -> None:
        self.sql = sql

    def read(self) -> tuple[int, str, str] | None:
        """The recorded failure, if the views are stuck: (position, error, when)."""
        row = self.sql.fetchone(
            "SELECT position, error, at FROM dnd_projection_errors WHERE name = ?", (ERROR_NAME,)
        )
        return None if row is None else (int(row[0]), str(row[1]), str(row[2]))

    def record(self, position: int, cause: BaseException) -> None:
        text = f"{type(cause).__name__}: {cause}"[:2000]
        try:
            self.sql.execute(
                "INSERT INTO dnd_projection_errors (name, position, error, at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET position = excluded.position,"
                " error = excluded.error, at = excluded.at",
                (ERROR_NAME, position, text, iso(datetime.now(UTC))),
            )
        except Exception:  # the database itself failed: the caller fails closed anyway
            return

    def clear(self, position: int) -> None:
        """Forget a failure at or before ``position``: the views got past it."""
        self.sql.execute(
            "DELETE FROM dnd_projection_errors WHERE name = ? AND position <= ?",
            (ERROR_NAME, position),
        )
