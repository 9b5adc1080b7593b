"""The dnd-ledger application: the one place that wires the ledger, and its Python API.

:class:`DndLedger` is an event store (:mod:`dnd_ledger.storage.eventstore`) over
SQLite, PostgreSQL or memory, with the vault, the views, the notary and the
consent rules wired around it. Its commands and queries are the services'
(:mod:`dnd_ledger.services`): commands are recorded in batches (one transaction
for the whole batch), optimistic-concurrency conflicts are retried from fresh state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from dnd_ledger.commands import Command, Outcome
from dnd_ledger.domain.decide import Decision
from dnd_ledger.domain.policy import DEFAULT_POLICY, Policy
from dnd_ledger.domain.values import Channel, Direction, Mode
from dnd_ledger.notary.notary import DEFAULT_EVERY, DEFAULT_INTERVAL, Notary
from dnd_ledger.notary.signed_note import SigningKey
from dnd_ledger.projections.freshness import ViewFreshness
from dnd_ledger.projections.projector import Projector
from dnd_ledger.projections.queries import ViewReader
from dnd_ledger.services import handlers, queries
from dnd_ledger.services.consent_rules import ConsentRules
from dnd_ledger.services.erasure import Erasure, erase_personal_data
from dnd_ledger.services.queries import HistoryItem, StatusView
from dnd_ledger.storage.cache import DEFAULT_ENTRIES
from dnd_ledger.storage.eventstore import EventStore
from dnd_ledger.storage.persistence import Database, parse_db_url
from dnd_ledger.storage.pii import KeyMismatch, Keyring, SqlVault
from dnd_ledger.storage.replay import SqlReplayCache
from dnd_ledger.storage.sqlite_store import DEFAULT_CACHE_MIB

#: How long (seconds) a query may wait for the views to be shown current before it
#: fails closed with LedgerUnavailable.
VIEW_DEADLINE = 5.0


def utcnow() -> datetime:
    return datetime.now(UTC)


class DndLedger(EventStore):
    """The consent ledger. Construct with a database URL (or ``memory:``)."""

    name = "dnd_ledger"  # eventsourcing names an application after its class otherwise

    def __init__(
        self,
        db: str | Database = "memory:",
        *,
        policy: Policy = DEFAULT_POLICY,
        pii_key: bytes | None = None,
        clock: Callable[[], datetime] = utcnow,
        env: dict[str, str] | None = None,
        signing_key: SigningKey | None = None,
        checkpoint_every: int = DEFAULT_EVERY,
        checkpoint_interval: float = DEFAULT_INTERVAL,
        cache_entries: int = DEFAULT_ENTRIES,
        sqlite_cache_mib: int = DEFAULT_CACHE_MIB,
        view_deadline: float = VIEW_DEADLINE,
    ) -> None:
        super().__init__(parse_db_url(db) if isinstance(db, str) else db, env=env,
                         cache_entries=cache_entries, sqlite_cache_mib=sqlite_cache_mib)  # fmt: skip
        self.policy = policy
        self.clock = clock
        #: Held by a batch while it loads, mutates and saves.
        self.write_lock = threading.RLock()
        self.keyring = Keyring(pii_key if pii_key is not None else b"dnd-ledger memory key ")
        self.vault = SqlVault(self.sql)
        self.projector = Projector(self)
        self.notary = Notary(
            self, signing_key=signing_key, every=checkpoint_every, interval=checkpoint_interval
        )
        self.views = ViewReader(
            self.sql,
            self.projector.trail,
            sqlite_path=self.db.path if self.db.engine == "sqlite" else None,
            postgres=self.db if self.db.engine == "postgres" else None,
        )
        self.projector.readers.append(self.views)
        self.replay_cache = SqlReplayCache(self.sql)
        self.rules = ConsentRules(self)  # can-send by purpose (confirmation, quiet hours)
        self.create_tables(
            self.vault.create_table,
            self._create_meta,
            self.projector.create_tables,
            self.notary.create_tables,
            self.replay_cache.create_table,
            self.resume.create_table,
            self.keys.create_table,
            self.open_keys,  # backfilled from the log unless marked complete
        )
        self._check_key()
        # Every query is preceded by a check of the log's head against the views
        # that started after the query arrived (shared by concurrent queries).
        self.views_lock = threading.Lock()
        self.freshness = ViewFreshness(
            self.projector,
            self.views,
            self.notary,
            self.views_lock,
            events_table=self.events_table,
            deadline=view_deadline,
        )

    def close(self) -> None:
        self.views.close()
        super().close()

    def _create_meta(self) -> None:
        self.sql.execute(
            "CREATE TABLE IF NOT EXISTS dnd_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )

    def _check_key(self) -> None:
        check = self.keyring.check_value()
        self.sql.execute(
            "INSERT INTO dnd_meta (name, value) VALUES ('pii_key_check', ?) "
            "ON CONFLICT (name) DO NOTHING",
            (check,),
        )
        row = self.sql.fetchone("SELECT value FROM dnd_meta WHERE name = 'pii_key_check'")
        if row is None or row[0] != check:
            raise KeyMismatch(
                "the PII key does not match the one this ledger was created with; "
                "set DND_LEDGER_PII_KEY_FILE to the ledger's key file"
            )

    # -- commands -----------------------------------------------------------------
    def execute(self, command: Command) -> Outcome:
        """Record one command; a refusal raises a :class:`LedgerError`."""
        return self.execute_many([command], raise_errors=True)[0]

    def execute_many(
        self, commands: Sequence[Command], *, raise_errors: bool = False
    ) -> list[Outcome]:
        """Record many commands in one transaction.

        A refused command yields ``Outcome("rejected", detail={"error": ...})``
        and changes nothing; the others are recorded. Conflicts with concurrent
        writers are retried from freshly loaded state.
        """
        return handlers.execute_many(self, commands, raise_errors=raise_errors)

    # -- queries ------------------------------------------------------------------
    def refresh_views(self) -> int:
        """Bring the views and the notary up to date with the log; returns events applied.

        Raises :class:`LedgerUnavailable` when an event cannot be applied (it is
        recorded, never skipped)."""
        with self.views_lock:
            applied = self.projector.catch_up()
            self.notary.keep_up()
            return applied

    def ensure_current(self) -> None:
        """Return once the views reflect every write acknowledged before this call, in
        any process sharing the database; else raise :class:`LedgerUnavailable`."""
        self.freshness.ensure()

    def status(
        self, location_id: str, contact_id: str, *,
        as_of: datetime | None = None, known_at: datetime | None = None,
    ) -> StatusView:  # fmt: skip
        """Per-channel state: from the status view now, from the history otherwise."""
        return queries.status(self, location_id, contact_id, as_of=as_of, known_at=known_at)

    def can_send(
        self, location_id: str, contact_id: str, channel: Channel, *,
        direction: Direction = Direction.OUTBOUND, mode: Mode = Mode.AUTOMATED,
        as_of: datetime | None = None, known_at: datetime | None = None, checked: bool = False,
    ) -> Decision:  # fmt: skip
        """May we message this contact on this channel? One view row on the hot path.

        ``checked``: the caller has just called :meth:`ensure_current` for this very
        request (a batch of decisions shares one check); never pass it otherwise.
        """
        return queries.can_send(self, location_id, contact_id, channel, direction=direction,
                                mode=mode, as_of=as_of, known_at=known_at,
                                checked=checked)  # fmt: skip

    def history(self, location_id: str, contact_id: str) -> list[HistoryItem]:
        return queries.history(self, location_id, contact_id)

    def contact_addresses(self, location_id: str, contact_id: str) -> dict[str, list[str]]:
        return queries.contact_addresses(self, location_id, contact_id)

    def reveal(self, ref: str) -> str | None:
        """The personal value behind a reference, unless it was erased."""
        return self.vault.get(ref)

    def erase_personal_data(self, location_id: str, contact_id: str) -> Erasure:
        """Erase the contact's personal values (addresses, message bodies, opt-in
        evidence) from the vault; the ledger stays intact. See
        :mod:`dnd_ledger.services.erasure`."""
        return erase_personal_data(self, location_id, contact_id)


__all__ = ["DndLedger"]
