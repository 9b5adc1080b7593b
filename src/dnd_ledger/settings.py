"""One settings object, fed by flags and the environment, and the one place that wires the ledger."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from dnd_ledger.application import DndLedger
from dnd_ledger.domain.errors import InvalidInput
from dnd_ledger.domain.policy import Policy, load_policy
from dnd_ledger.notary.notary import DEFAULT_EVERY, DEFAULT_INTERVAL
from dnd_ledger.notary.signed_note import NoteError, SigningKey, load_private_key
from dnd_ledger.storage.cache import DEFAULT_BUDGET
from dnd_ledger.storage.persistence import Database, parse_db_url
from dnd_ledger.storage.pii import load_or_create_key

DEFAULT_DB = "./dnd-ledger.db"


class Settings(BaseModel):
    """Where the ledger lives and what it runs with.

    ``db``: ``DND_LEDGER_DB`` (a path, ``sqlite:///path`` or ``postgresql://...``).
    ``policy``: ``DND_LEDGER_POLICY`` (TOML or JSON; default: built-in policy).
    ``pii_key`` / ``pii_key_file``: ``DND_LEDGER_PII_KEY`` (hex) /
    ``DND_LEDGER_PII_KEY_FILE``; for SQLite the default is a key file beside the
    database (``<db>.pii-key``, created on first use).
    ``signing_key_file``: ``DND_LEDGER_SIGNING_KEY``, the notary's Ed25519 key file
    (``dnd-ledger keys generate``); without it checkpoints are unsigned.
    ``checkpoint_every`` / ``checkpoint_interval``: ``DND_LEDGER_CHECKPOINT_EVERY``
    (events, default 1000) / ``DND_LEDGER_CHECKPOINT_INTERVAL`` (seconds, default 60).
    ``cache_events``: ``DND_LEDGER_CACHE_EVENTS``, how many events the cached contacts
    and addresses may hold in memory (default 100,000).
    """

    model_config = ConfigDict(frozen=True)

    db: str = DEFAULT_DB
    policy: str | None = None
    pii_key: str | None = None
    pii_key_file: str | None = None
    signing_key_file: str | None = None
    checkpoint_every: int = Field(DEFAULT_EVERY, ge=1)
    checkpoint_interval: float = Field(DEFAULT_INTERVAL, ge=0)
    cache_events: int = Field(DEFAULT_BUDGET, ge=0)
    _env_problem: str | None = PrivateAttr(default=None)  # reported by open(), as one line

    @classmethod
    def from_env(cls, **overrides: str | None) -> Settings:
        values: dict[str, str | None] = {
            "db": os.environ.get("DND_LEDGER_DB") or DEFAULT_DB,
            "policy": os.environ.get("DND_LEDGER_POLICY") or None,
            "pii_key": os.environ.get("DND_LEDGER_PII_KEY") or None,
            "pii_key_file": os.environ.get("DND_LEDGER_PII_KEY_FILE") or None,
            "signing_key_file": os.environ.get("DND_LEDGER_SIGNING_KEY") or None,
            "checkpoint_every": os.environ.get("DND_LEDGER_CHECKPOINT_EVERY") or None,
            "checkpoint_interval": os.environ.get("DND_LEDGER_CHECKPOINT_INTERVAL") or None,
            "cache_events": os.environ.get("DND_LEDGER_CACHE_EVENTS") or None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        problem = None
        for name, low, integer in (
            ("checkpoint_every", 1, True),
            ("checkpoint_interval", 0, False),
            ("cache_events", 0, True),
        ):
            raw = values[name]
            if raw is not None and not _at_least(raw, low, integer=integer):
                problem = f"DND_LEDGER_{name.upper()} must be a number, at least {low}: {raw!r}"
                values[name] = None
        settings = cls.model_validate({k: v for k, v in values.items() if v is not None})
        settings._env_problem = problem
        return settings

    @property
    def database(self) -> Database:
        return parse_db_url(self.db)

    def load_policy(self) -> Policy:
        return load_policy(self.policy)

    def key(self, db: Database, *, create: bool = True) -> bytes:
        """The PII key; a missing key file is created only when ``create``."""
        if self.pii_key:
            try:
                return bytes.fromhex(self.pii_key)
            except ValueError:
                raise InvalidInput("DND_LEDGER_PII_KEY must be hex") from None
        if self.pii_key_file:
            return _key_file(Path(self.pii_key_file), create)
        if db.engine == "sqlite":
            return _key_file(Path(db.path + ".pii-key"), create)
        if db.engine == "memory":
            return b"dnd-ledger in-memory key (tests)"
        raise InvalidInput(
            "PostgreSQL needs the installation's PII key: set DND_LEDGER_PII_KEY_FILE "
            "(a file holding a hex key; created if missing) or DND_LEDGER_PII_KEY"
        )

    def open(self, *, create: bool = True, policy: Policy | None = None) -> DndLedger:
        """The ledger; without ``create``, a missing PII key file is refused, not made.
        ``policy`` replaces the configured one (the demo's moved revoke-all date)."""
        if self._env_problem:
            raise InvalidInput(self._env_problem)
        db = self.database
        return DndLedger(
            db,
            policy=policy or self.load_policy(),
            pii_key=self.key(db, create=create),
            signing_key=self.signing_key(),
            checkpoint_every=self.checkpoint_every,
            checkpoint_interval=self.checkpoint_interval,
            cache_events=self.cache_events,
        )

    def signing_key(self) -> SigningKey | None:
        """The notary's key, from its file; the key never goes into the database."""
        if not self.signing_key_file:
            return None
        path = Path(self.signing_key_file)
        try:
            return load_private_key(path.read_bytes())
        except FileNotFoundError:
            raise InvalidInput(
                f"DND_LEDGER_SIGNING_KEY names {path}, which does not exist; "
                f"create it with: dnd-ledger keys generate --out {path}"
            ) from None
        except (OSError, NoteError) as e:
            raise InvalidInput(f"cannot use the signing key file {path}: {e}") from e


def _key_file(path: Path, create: bool) -> bytes:
    if not create and not path.exists():
        raise InvalidInput(
            f"the PII key file {path} does not exist: point DND_LEDGER_PII_KEY_FILE at the "
            "ledger's key (dnd-ledger init creates one for a new ledger)"
        )
    return load_or_create_key(path)


def _at_least(raw: str, low: int, *, integer: bool) -> bool:
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        return False
    return low <= value < float("inf")
