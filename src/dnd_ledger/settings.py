"""One settings object, fed by flags and the environment, and the one place that wires the ledger."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from dnd_ledger.application import DndLedger
from dnd_ledger.domain.errors import InvalidInput
from dnd_ledger.domain.policy import Policy, load_policy
from dnd_ledger.persistence import Database, parse_db_url
from dnd_ledger.pii import load_or_create_key

DEFAULT_DB = "./dnd-ledger.db"


class Settings(BaseModel):
    """Where the ledger lives and what it runs with.

    ``db``: ``DND_LEDGER_DB`` (a path, ``sqlite:///path`` or ``postgresql://...``).
    ``policy``: ``DND_LEDGER_POLICY`` (TOML or JSON; default: built-in policy).
    ``pii_key`` / ``pii_key_file``: ``DND_LEDGER_PII_KEY`` (hex) /
    ``DND_LEDGER_PII_KEY_FILE``; for SQLite the default is a key file beside the
    database (``<db>.pii-key``, created on first use).
    """

    model_config = ConfigDict(frozen=True)

    db: str = DEFAULT_DB
    policy: str | None = None
    pii_key: str | None = None
    pii_key_file: str | None = None

    @classmethod
    def from_env(cls, **overrides: str | None) -> Settings:
        values: dict[str, str | None] = {
            "db": os.environ.get("DND_LEDGER_DB") or DEFAULT_DB,
            "policy": os.environ.get("DND_LEDGER_POLICY") or None,
            "pii_key": os.environ.get("DND_LEDGER_PII_KEY") or None,
            "pii_key_file": os.environ.get("DND_LEDGER_PII_KEY_FILE") or None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)

    @property
    def database(self) -> Database:
        return parse_db_url(self.db)

    def load_policy(self) -> Policy:
        return load_policy(self.policy)

    def key(self, db: Database) -> bytes:
        if self.pii_key:
            try:
                return bytes.fromhex(self.pii_key)
            except ValueError:
                raise InvalidInput("DND_LEDGER_PII_KEY must be hex") from None
        if self.pii_key_file:
            return load_or_create_key(Path(self.pii_key_file))
        if db.engine == "sqlite":
            return load_or_create_key(Path(db.path + ".pii-key"))
        if db.engine == "memory":
            return b"dnd-ledger in-memory key (tests)"
        raise InvalidInput(
            "PostgreSQL needs the installation's PII key: set DND_LEDGER_PII_KEY_FILE "
            "(a file holding a hex key; created if missing) or DND_LEDGER_PII_KEY"
        )

    def open(self) -> DndLedger:
        db = self.database
        return DndLedger(db, policy=self.load_policy(), pii_key=self.key(db))
