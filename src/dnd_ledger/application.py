"""The dnd-ledger application: commands get -> mutate -> save; queries return read models.

One :class:`DndLedger` wraps an eventsourcing ``Application`` over SQLite,
PostgreSQL or memory. Commands are recorded in batches (one transaction for
the whole batch); optimistic-concurrency conflicts are retried from fresh state.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.persistence import IntegrityError, StoredEvent, Transcoder

from dnd_ledger import commands as cmd
from dnd_ledger import textcheck
from dnd_ledger.commands import Command, Outcome
from dnd_ledger.domain.address import Address, Signal, address_uuid
from dnd_ledger.domain.contact import Contact, contact_uuid
from dnd_ledger.domain.decide import Decision, decide, decide_channel
from dnd_ledger.domain.errors import (
    Conflict,
    InvalidInput,
    LedgerError,
    UnknownContact,
)
from dnd_ledger.domain.keywords import normalise
from dnd_ledger.domain.policy import DEFAULT_POLICY, Policy
from dnd_ledger.domain.reviews import opening
from dnd_ledger.domain.scope import scoped, start_reach
from dnd_ledger.domain.state import (
    CONTACT_ORIGIN,
    NO_EFFECT,
    ChannelState,
    Effect,
    Op,
    fold,
    overall,
)
from dnd_ledger.domain.timecheck import check_occurred_at, check_query_time
from dnd_ledger.domain.values import (
    ALL_CHANNELS,
    AddressKind,
    Channel,
    Direction,
    DndKind,
    EmailSignal,
    InboundClass,
    Mode,
    Overall,
    Source,
)
from dnd_ledger.idempotency import email_key, legacy_key, request_key
from dnd_ledger.notary.notary import DEFAULT_EVERY, DEFAULT_INTERVAL, Notary
from dnd_ledger.notary.signed_note import SigningKey
from dnd_ledger.projections.freshness import ViewFreshness
from dnd_ledger.projections.projector import Projector
from dnd_ledger.projections.queries import ViewReader
from dnd_ledger.services.consent_rules import ConsentRules, locate_contact, record_confirmation
from dnd_ledger.services.contact_admin import record_erasure, remove_address
from dnd_ledger.services.erasure import Erasure, erase_personal_data
from dnd_ledger.services.reviews import resolve_review
from dnd_ledger.storage.cache import DEFAULT_BUDGET, EventBudgetCache
from dnd_ledger.storage.persistence import Database, Sql, eventsourcing_env, parse_db_url
from dnd_ledger.storage.pii import (
    KeyMismatch,
    Keyring,
    SqlVault,
    normalise_email,
    normalise_phone,
)
from dnd_ledger.storage.replay import SqlReplayCache
from dnd_ledger.storage.transcoding import LedgerTranscoder

MAX_ID = 128
MAX_TEXT = 4096
MAX_ATTEMPTS = 20
MESSAGE_CHANNELS = (Channel.SMS, Channel.WHATSAPP)
#: How long (seconds) a query may wait for the views to be shown current before it
#: fails closed with LedgerUnavailable.
VIEW_DEADLINE = 5.0


_log = logging.getLogger("dnd_ledger")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class StatusView:
    location_id: str
    contact_id: str
    dnd: Overall
    channels: dict[Channel, ChannelState]
    as_of: datetime
    known_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "location_id": self.location_id,
            "contact_id": self.contact_id,
            "dnd": self.dnd.value,
            "channels": {c.value: self.channels[c].to_json() for c in ALL_CHANNELS},
            "as_of": self.as_of.isoformat(),
            "known_at": self.known_at.isoformat(),
        }


@dataclass(frozen=True)
class HistoryItem:
    version: int
    event: str
    occurred_at: datetime
    recorded_at: datetime
    source: str
    actor: str | None
    idempotency_key: str | None
    policy_version: str
    effect: dict[str, Any]
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "event": self.event,
            "occurred_at": self.occurred_at.isoformat(),
            "recorded_at": self.recorded_at.isoformat(),
            "source": self.source,
            "actor": self.actor,
            "idempotency_key": self.idempotency_key,
            "policy_version": self.policy_version,
            "effect": self.effect,
            "detail": self.detail,
        }


@dataclass
class _Unit:
    """The aggregates one batch touches, loaded once and saved together."""

    app: DndLedger
    contacts: dict[UUID, Contact | None] = field(default_factory=dict)
    addresses: dict[UUID, Address | None] = field(default_factory=dict)
    now: datetime = field(default_factory=utcnow)
    #: Aggregates created in this batch, in order: a refused command's are dropped.
    created: list[Contact | Address] = field(default_factory=list)

    def contact(self, location_id: str, contact_id: str) -> Contact | None:
        cid = contact_uuid(location_id, contact_id)
        if cid not in self.contacts:
            self.contacts[cid] = self.app._get(cid)  # type: ignore[assignment]
        return self.contacts[cid]

    def add_contact(self, contact: Contact) -> None:
        self.contacts[contact.id] = contact
        self.created.append(contact)

    def drop_created_since(self, mark: int) -> None:
        for agg in self.created[mark:]:
            agg.collect_events()  # discard its pending events
            if isinstance(agg, Contact):
                self.contacts[agg.id] = None
            else:
                self.addresses[agg.id] = None
        del self.created[mark:]

    def address(self, location_id: str, kind: AddressKind, ref: str) -> Address:
        aid = address_uuid(location_id, ref)
        if aid not in self.addresses:
            self.addresses[aid] = self.app._get(aid)  # type: ignore[assignment]
        found = self.addresses[aid]
        if found is None:
            found = Address.open(location_id, kind, ref, timestamp=self.now)
            self.addresses[aid] = found
            self.created.append(found)
        return found

    def touched(self) -> list[Contact | Address]:
        # Addresses first: the log then reads "the address said X, so the contact got X".
        return [a for a in (*self.addresses.values(), *self.contacts.values()) if a is not None]


class DndLedger(Application[UUID]):
    """The consent ledger. Construct with a database URL (or ``memory:``)."""

    name = "dnd_ledger"

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
        cache_events: int = DEFAULT_BUDGET,
        view_deadline: float = VIEW_DEADLINE,
    ) -> None:
        self.db = parse_db_url(db) if isinstance(db, str) else db
        full_env = eventsourcing_env(self.db)
        full_env["AGGREGATE_CACHE_MAXSIZE"] = "1"  # replaced below by an EventBudgetCache
        full_env["DEEPCOPY_FROM_AGGREGATE_CACHE"] = "n"
        # Saved aggregates stay cached as they are; another process's newer
        # events surface as a version conflict on save, which evicts and retries.
        full_env["AGGREGATE_CACHE_FASTFORWARD"] = "n"
        if self.db.engine == "postgres":
            full_env["CREATE_TABLE"] = "n"  # created once, under a lock, by _create_tables
        full_env.update(env or {})
        super().__init__(env=full_env)
        self.repository.cache = EventBudgetCache(cache_events)
        self.policy = policy
        self.clock = clock
        self._lock = threading.RLock()
        self._pii_pending: list[tuple[str, str, str]] = []
        self.keyring = Keyring(pii_key if pii_key is not None else b"dnd-ledger memory key ")
        # The SQL recorders (SQLite, PostgreSQL) expose their datastore and tables.
        self._sql_recorder = _untyped(self.recorder)
        self.sql = Sql(self._sql_recorder.datastore, self.db.engine)
        self.vault = SqlVault(self.sql)
        self.projector = Projector(self)
        self.notary = Notary(
            self, signing_key=signing_key, every=checkpoint_every, interval=checkpoint_interval
        )
        self.views = ViewReader(
            self.sql,
            sqlite_path=self.db.path if self.db.engine == "sqlite" else None,
            postgres=self.db if self.db.engine == "postgres" else None,
        )
        self.projector.readers.append(self.views)
        self.replay_cache = SqlReplayCache(self.sql)
        self.rules = ConsentRules(self)  # can-send by purpose (confirmation, quiet hours)
        self._create_tables()
        self._check_key()
        # Every query is preceded by a check of the log's head against the views
        # that started after the query arrived (shared by concurrent queries).
        self._views_lock = threading.Lock()
        self.freshness = ViewFreshness(
            self.projector,
            self.views,
            self.notary,
            self._views_lock,
            events_table=self._sql_recorder.events_table_name,
            deadline=view_deadline,
        )

    def close(self) -> None:
        self.views.close()
        super().close()

    # -- wiring -----------------------------------------------------------------
    def construct_transcoder(self) -> Transcoder:
        transcoder = LedgerTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def _create_tables(self) -> None:
        vault = self.vault
        if self.db.engine == "postgres":
            # Concurrent CREATE TABLE on PostgreSQL can fail: serialise it.
            with self._sql_recorder.datastore.get_connection() as conn:
                conn.execute("SELECT pg_advisory_lock(74201)")
                try:
                    self._sql_recorder.create_table()
                    vault.create_table()
                    self._create_meta()
                    self.projector.create_tables()
                    self.notary.create_tables()
                    self.replay_cache.create_table()
                finally:
                    conn.execute("SELECT pg_advisory_unlock(74201)")
        else:
            vault.create_table()
            self._create_meta()
            self.projector.create_tables()
            self.notary.create_tables()
            self.replay_cache.create_table()

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

    def _save_all(
        self, aggregates: list[Contact | Address], pii: list[tuple[str, str, str]]
    ) -> None:
        """``Application.save`` for our own aggregates: one transaction holds the
        personal data, the events and, when the views are current, their view rows.

        The library's ``save`` checks each object against runtime protocols, which
        costs more than storing the events; ours are known aggregates. Writing the
        views with the events costs one commit (one fsync) instead of three, and
        spares reading back and decoding what was just written.
        """
        processing = ProcessingEvent[UUID]()
        for agg in aggregates:
            processing.events.extend(agg.collect_events())
            processing.aggregates[agg.id] = agg
        events = processing.events
        if not events:
            return  # personal data is kept only for the events that refer to it
        stored = [self.mapper.to_stored_event(e) for e in events]
        projected = None
        with self._views_lock:
            try:
                with self.sql.transaction() as c:
                    # Events first: on PostgreSQL their insert locks the events table,
                    # so writers queue there before they touch any other row (no
                    # deadlock over a personal-data row two batches both write).
                    ids = self._insert_events(c, stored)
                    written = self.vault.put_in(c, pii)
                    projected = self._project_own(c, list(zip(ids, events, strict=True)))
            except BaseException:
                self.projector.forget()
                raise
            if projected is not None:
                self.projector.committed(projected)
        self.vault.known(written)
        if self.repository.cache and not self.repository.fastforward:
            for aggregate_id, aggregate in processing.aggregates.items():
                self.repository.cache.put(aggregate_id, aggregate)
        self._take_snapshots(processing)

    def _project_own(self, c: Any, events: list[tuple[int, Any]]) -> Any:
        """The views for the batch's events, in its transaction, under a savepoint: if
        they cannot be written now (a view table locked, any failure), the events are
        stored all the same and catch-up applies them (or records why it cannot, and
        queries fail closed meanwhile). An accepted event is never lost to a view."""
        c.execute("SAVEPOINT dnd_views")
        try:
            projected = self.projector.apply_own(c, events)
        except Exception:
            c.execute("ROLLBACK TO SAVEPOINT dnd_views")
            self.projector.forget()
            return None
        c.execute("RELEASE SAVEPOINT dnd_views")
        return projected

    def _insert_events(self, c: Any, stored: list[StoredEvent]) -> list[int]:
        """The application recorder's insert, in the caller's transaction; returns
        the notification ids."""
        recorder = self._sql_recorder
        if self.db.engine == "postgres":
            # Locks the table (commit order = id order), notifies, inserts ... RETURNING.
            recorder._insert_stored_events(c, stored)
            ids = recorder._fetch_ids_after_insert_events(c, stored)
        else:
            # One executemany (the insert comes first: it takes the write lock).
            # Each row gets max(rowid) + 1 and nobody else writes meanwhile, so
            # the batch's rowids (its notification ids) are consecutive; the
            # first one is checked to hold the batch's first event.
            table = recorder.events_table_name
            c.executemany(
                recorder.insert_events_statement,
                [(_hex(s.originator_id), s.originator_version, s.topic, s.state) for s in stored],
            )
            c.execute(f"SELECT MAX(rowid) FROM {table}")
            last = int(c.fetchone()[0])
            first = last - len(stored) + 1
            c.execute(
                f"SELECT originator_id, originator_version FROM {table} WHERE rowid = ?", (first,)
            )
            head = stored[0]
            if tuple(c.fetchone() or ()) != (_hex(head.originator_id), head.originator_version):
                raise RuntimeError(f"the batch's events are not at rowids {first}..{last}")
            ids = list(range(first, last + 1))
        if ids is None or len(ids) != len(stored):
            raise RuntimeError("the recorder did not return a notification id per event")
        return list(ids)

    def _fast_forward(self, agg: Contact) -> bool:
        """Apply events stored since the cached copy was read; True if there were any."""
        if agg.pending_events:
            return False  # changed in this batch: already as fresh as the batch
        newer = list(self.events.get(agg.id, gt=agg.version))
        if newer and agg.entries is None:
            self._restore(agg)  # a newer event may be late: it refolds the past
        for event in newer:
            assert isinstance(event, Contact.Event)
            event.mutate(agg)
        return bool(newer)

    # -- compacted aggregates (see EventBudgetCache) ----------------------------------
    def _restore(self, agg: Contact | Address) -> None:
        """Give a compacted aggregate its history back: its stored events, then pending."""
        pending = list(agg.pending_events)
        stored = self.events.get(agg.id, lte=agg.version - len(pending))
        if isinstance(agg, Contact):
            agg.restore_entries([*stored, *pending])
        else:
            agg.restore_signals([*stored, *pending])

    def _ready(self, contact: Contact, at: datetime) -> None:
        """Before an event or guard at ``at`` that would refold a compacted contact's past."""
        if contact.needs_history(at):
            self._restore(contact)

    def _signals(self, address: Address) -> list[Signal]:
        if address.signals is None:
            self._restore(address)
        assert address.signals is not None
        return address.signals

    def _get(self, aggregate_id: UUID) -> Contact | Address | None:
        try:
            agg: Any = self.repository.get(
                aggregate_id, deepcopy_from_cache=False, projector_func=_replay
            )
        except AggregateNotFoundError:
            return None
        assert isinstance(agg, Contact | Address)
        return agg

    def _evict(self, aggregate_ids: Iterable[UUID]) -> None:
        cache = self.repository.cache
        if not cache:
            return
        for aid in aggregate_ids:
            with contextlib.suppress(KeyError):
                cache.get(aid, evict=True)

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
        for attempt in range(MAX_ATTEMPTS):
            with self._lock:
                unit = _Unit(self, now=self.clock())
                self._pii_pending.clear()
                outcomes: list[Outcome] = []
                try:
                    for c in commands:
                        try:
                            outcomes.append(self._run(unit, c))
                        except LedgerError as e:
                            if raise_errors:
                                raise
                            outcomes.append(Outcome("rejected", detail={"error": str(e)}))
                    self._save_all(
                        [a for a in unit.touched() if a.pending_events], self._pii_pending
                    )
                except IntegrityError:
                    self._evict([*unit.contacts, *unit.addresses])
                except BaseException:
                    self._evict([*unit.contacts, *unit.addresses])
                    raise
                else:
                    return outcomes
            # Another writer saved the same aggregates first. Back off for a random
            # while (doubling), so two writers of one hot stream stop colliding in step.
            time.sleep(random.uniform(0, min(0.05, 0.002 * 2**attempt)))
        raise Conflict(f"gave up after {MAX_ATTEMPTS} attempts: concurrent writers kept colliding")

    def _run(self, unit: _Unit, c: Command) -> Outcome:
        handler = _HANDLERS.get(type(c))
        if handler is None:
            raise InvalidInput(f"unknown command {type(c).__name__}")
        # A refused command leaves no trace in the batch: its guards run before
        # it triggers any event, and what it created for itself is dropped.
        textcheck.check_command(c)  # nothing unchecked reaches the database
        mark, pii = len(unit.created), len(self._pii_pending)
        try:
            return handler(self, unit, c)
        except LedgerError:
            unit.drop_created_since(mark)
            del self._pii_pending[pii:]
            raise

    def _time(self, unit: _Unit, occurred_at: datetime | None) -> datetime:
        """When it happened; a time slightly ahead (clock skew) counts as now.

        Effective time cannot run ahead of what the ledger knows, so "now" reads
        the same from the status view and from the history.
        """
        if occurred_at is None:
            return unit.now
        return min(check_occurred_at(occurred_at, unit.now), unit.now)

    def _ref(self, kind: AddressKind | str, value: str) -> str:
        ref = self.keyring.ref(kind, value)
        self._pii_pending.append((ref, str(kind), value))
        return ref

    def _phone_refs(self, phones: Iterable[str]) -> list[str]:
        return list(dict.fromkeys(self._ref(AddressKind.PHONE, normalise_phone(p)) for p in phones))

    def _email_refs(self, emails: Iterable[str]) -> list[str]:
        return list(dict.fromkeys(self._ref(AddressKind.EMAIL, normalise_email(e)) for e in emails))

    def _contact(self, unit: _Unit, location_id: str, contact_id: str) -> Contact:
        _check_id("location_id", location_id)
        _check_id("contact_id", contact_id)
        contact = unit.contact(location_id, contact_id)
        if contact is None:
            raise UnknownContact.of(location_id, contact_id)
        return contact

    def _register(self, unit: _Unit, c: cmd.RegisterContact) -> Outcome:
        _check_id("location_id", c.location_id)
        _check_id("contact_id", c.contact_id)
        at = self._time(unit, c.occurred_at)
        phones, emails = self._phone_refs(c.phones), self._email_refs(c.emails)
        key = request_key(self.keyring, c.request_id, "register", phones=set(phones),
                          emails=set(emails), actor=c.actor, at=c.occurred_at)  # fmt: skip
        return self._ensure_contact(
            unit, c.location_id, c.contact_id, phones, emails, at, Source.USER, c.actor, key
        )

    def _ensure_contact(
        self,
        unit: _Unit,
        location_id: str,
        contact_id: str,
        phones: list[str],
        emails: list[str],
        at: datetime,
        source: Source,
        actor: str | None,
        key: str | None,
    ) -> Outcome:
        contact = unit.contact(location_id, contact_id)
        if contact is not None and contact.has_key(key):
            return Outcome("duplicate", contacts=(contact_id,))
        stamp = self.policy.stamp
        if contact is None:
            contact = Contact.register(
                location_id, contact_id, at, phones, emails, source, actor, key, stamp,
                timestamp=unit.now,
            )  # fmt: skip
            unit.add_contact(contact)
            new_phones, new_emails = phones, emails
            events = ["Registered"]
        else:
            new_phones = [p for p in phones if p not in contact.phones]
            new_emails = [e for e in emails if e not in contact.emails]
            if not new_phones and not new_emails:
                return Outcome("duplicate", contacts=(contact_id,))
            contact.add_addresses(
                new_phones, new_emails, at, source, actor, key, stamp, timestamp=unit.now
            )
            events = ["AddressesAdded"]
        for kind, refs in ((AddressKind.PHONE, new_phones), (AddressKind.EMAIL, new_emails)):
            for ref in refs:
                address = unit.address(location_id, kind, ref)
                address.claim(contact_id, at, timestamp=unit.now)
                # What the address said before this contact had it applies now.
                for s in self._signals(address):
                    if contact.has_key(s.idempotency_key):
                        continue
                    self._ready(contact, s.occurred_at)
                    contact.record(
                        s.event,
                        occurred_at=s.occurred_at,
                        source=s.source,
                        actor=s.actor,
                        idempotency_key=s.idempotency_key,
                        policy_version=s.policy_version,
                        effect=Effect.from_dict(s.effect),
                        detail={**s.detail, "via": s.event_id},
                        timestamp=unit.now,
                    )
                    events.append(s.event)
        return Outcome("appended", events=tuple(events), contacts=(contact_id,))

    def _set(self, unit: _Unit, c: cmd.SetDnd) -> Outcome:
        contact = self._contact(unit, c.location_id, c.contact_id)
        channels = _channels(c.channels)
        actor = _required("actor", c.actor)
        at = self._time(unit, c.occurred_at)
        reason = _optional_text("reason", c.reason)
        key = request_key(self.keyring, c.request_id, "dnd set", channels=set(channels),
                          actor=actor, reason=reason, at=c.occurred_at)  # fmt: skip
        if contact.has_key(key):
            return Outcome("duplicate", contacts=(c.contact_id,))
        effect = Effect(
            Op.BLOCK, channels, DndKind.ACTIVE, code="user",
            message=reason or f"set by {actor} from the contact record",
        )  # fmt: skip
        self._ready(contact, at)
        contact.record(
            "DndSetByUser", occurred_at=at, source=Source.USER, actor=actor, idempotency_key=key,
            policy_version=self.policy.stamp, effect=effect, detail=_drop_none(reason=reason),
            timestamp=unit.now,
        )  # fmt: skip
        return Outcome("appended", events=("DndSetByUser",), contacts=(c.contact_id,))

    def _clear(self, unit: _Unit, c: cmd.ClearDnd) -> Outcome:
        contact = self._contact(unit, c.location_id, c.contact_id)
        channels = _channels(c.channels)
        actor = _required("actor", c.actor)
        at = self._time(unit, c.occurred_at)
        reason = _optional_text("reason", c.reason)
        key = request_key(self.keyring, c.request_id, "dnd clear", channels=set(channels),
                          actor=actor, reason=reason, suppression_removed=c.suppression_removed,
                          at=c.occurred_at)  # fmt: skip
        self._ready(contact, at)  # the guard folds the state at ``at``
        while True:
            if contact.has_key(key):
                return Outcome("duplicate", contacts=(c.contact_id,))
            try:
                contact.check_can_clear(channels, at, c.suppression_removed)
                break
            except LedgerError:
                # The cached copy may lag another process's writes. An accepted
                # clear would meet them as a version conflict on save (and be
                # judged again); a refusal never reaches save, so judge it again
                # on the latest events before refusing.
                if not self._fast_forward(contact):
                    raise
        effect = Effect(
            Op.CLEAR_TEMPORARY, channels, code="user",
            message=reason or f"cleared by {actor} from the contact record",
            attested=c.suppression_removed,
        )  # fmt: skip
        detail = _drop_none(reason=reason, suppression_removed=c.suppression_removed or None)
        contact.record(
            "DndClearedByUser", occurred_at=at, source=Source.USER, actor=actor,
            idempotency_key=key, policy_version=self.policy.stamp, effect=effect, detail=detail,
            timestamp=unit.now,
        )  # fmt: skip
        return Outcome("appended", events=("DndClearedByUser",), contacts=(c.contact_id,))

    def _approve(self, unit: _Unit, c: cmd.ApproveOptIn) -> Outcome:
        contact = self._contact(unit, c.location_id, c.contact_id)
        channels = _channels(c.channels)
        approver = _required("approver", c.approver)
        ticket = _required("ticket", c.ticket)
        evidence = _required("evidence", c.evidence, MAX_TEXT)
        at = self._time(unit, c.occurred_at)
        key = request_key(self.keyring, c.request_id, "approve opt-in", channels=set(channels),
                          approver=approver, ticket=ticket, evidence=evidence,
                          at=c.occurred_at)  # fmt: skip
        if contact.has_key(key):
            return Outcome("duplicate", contacts=(c.contact_id,))
        effect = Effect(
            Op.CLEAR_ALL, channels, code="support-opt-in",
            message=f"support-approved opt-in, ticket {ticket}, approved by {approver}",
        )  # fmt: skip
        self._ready(contact, at)
        contact.record(
            "SupportOptInApproved", occurred_at=at, source=Source.SUPPORT, actor=approver,
            idempotency_key=key, policy_version=self.policy.stamp, effect=effect,
            detail={"ticket": ticket, "evidence_ref": self._ref("text", evidence)},
            timestamp=unit.now,
        )  # fmt: skip
        return Outcome("appended", events=("SupportOptInApproved",), contacts=(c.contact_id,))

    def _inbound(self, unit: _Unit, c: cmd.ReceiveInbound) -> Outcome:
        _check_id("location_id", c.location_id)
        if c.channel not in MESSAGE_CHANNELS:
            raise InvalidInput(f"inbound messages arrive on sms or whatsapp, not {c.channel}")
        message_id = _required("message_id", c.message_id)
        if len(c.body) > MAX_TEXT:
            raise InvalidInput(f"message body is longer than {MAX_TEXT} characters")
        ref = self._phone_refs([c.from_address])[0]
        at = self._time(unit, c.occurred_at)
        body = textcheck.clean_body(c.body)  # always classified and recorded, never refused
        ours = self.policy.classify_inbound(body)
        theirs = textcheck.clean_body(c.provider_opt_out_type or "").strip().upper() or None
        effective = ours
        if theirs == "STOP" and ours is not InboundClass.OPT_OUT:
            effective = InboundClass.OPT_OUT  # the provider already blocks: the safe side
        disagreement = theirs in ("STOP", "START") and {
            "STOP": InboundClass.OPT_OUT, "START": InboundClass.OPT_IN
        }[theirs] is not ours  # fmt: skip
        detail: dict[str, Any] = {
            "address_ref": ref,
            "body_ref": self._ref("text", body),
            "classification": ours.value,
            "message_id": message_id,
        }
        if body != c.body:  # the reference of the text exactly as received
            detail["received_ref"] = self.keyring.ref("text", textcheck.exact(c.body))
        if theirs:
            detail["provider_opt_out_type"] = theirs
            detail["disagreement"] = disagreement
        ch = c.channel
        if effective is InboundClass.OPT_OUT:
            word = normalise(body).upper()[:32]
            event = "OptOutKeyword"
            effect, detail = scoped(self.policy.revocation_scope, Effect(
                Op.BLOCK, (ch,), DndKind.PERMANENT, code=word or theirs,
                message=f"opt-out keyword on {ch.value}", origin=ref), at, detail)  # fmt: skip
        elif effective is InboundClass.OPT_IN:
            event = "StartReceived"
            effect = Effect(Op.OPT_IN, (ch,), code="START", message=f"opt-in keyword on {ch.value}",
                            origin=ref, also=start_reach(self.policy.revocation_scope, ch))  # fmt: skip
        elif effective is InboundClass.SUSPECTED_REVOCATION:
            event = "RevocationSuspected"
            detail.update(opening(self.policy.review.deadline, at, ch.value))
            level = self.policy.review.effect
            effect = (
                NO_EFFECT if level == "none" else
                Effect(Op.BLOCK, (ch,), DndKind(_LEVEL[level]), code="review",
                       message="message contains an opt-out word: flagged for human review",
                       origin=ref)
            )  # fmt: skip
        else:
            return Outcome("ignored", detail={"classification": ours.value})
        return self._signal(
            unit, c.location_id, AddressKind.PHONE, ref, event, at,
            f"inbound:{message_id}", effect, detail,
        )  # fmt: skip

    def _carrier(self, unit: _Unit, c: cmd.ReportCarrierStatus) -> Outcome:
        _check_id("location_id", c.location_id)
        message_id = _required("message_id", c.message_id)
        if c.error_code is None or c.error_code == 0:
            return Outcome("ignored", detail={"reason": "no error code"})
        rule = self.policy.carrier_rule(c.error_code)
        if rule is None:
            return Outcome(
                "ignored",
                detail={"reason": f"error {c.error_code} is not the contact's doing (sender side)"},
            )
        ref = self._phone_refs([c.to_address])[0]
        at = self._time(unit, c.occurred_at)
        channel = rule.channel or c.channel
        level = DndKind(_LEVEL[rule.effect])
        event = _CARRIER_EVENTS.get(c.error_code)
        if event is None:
            event = (
                "CarrierErrorTemporary"
                if c.error_code in (30003, 30005, 30006)
                else "CarrierErrorReported"
            )
        effect = Effect(Op.BLOCK, (channel,), level, code=str(c.error_code),
                        message=rule.description or f"carrier error {c.error_code}", origin=ref)  # fmt: skip
        detail = {"address_ref": ref, "message_id": message_id, "status": c.status,
                  "error_code": c.error_code}  # fmt: skip
        if event == "CarrierError21610":  # an opt-out the carrier saw: same scope as STOP
            effect, detail = scoped(self.policy.revocation_scope, effect, at, detail)
        key = f"status:{message_id}:{c.status}:{c.error_code}"
        return self._signal(
            unit, c.location_id, AddressKind.PHONE, ref, event, at, key, effect, detail
        )

    def _email(self, unit: _Unit, c: cmd.ReportEmailEvent) -> Outcome:
        _check_id("location_id", c.location_id)
        token = _required("idempotency_key", c.idempotency_key)
        rule = self.policy.email_rule(c.signal, c.reason)
        if rule.effect == "none":
            return Outcome(
                "ignored",
                detail={
                    "reason": f"{c.signal.value} ({c.reason or 'no reason'}) has no DND effect"
                },
            )
        ref = self._email_refs([c.recipient])[0]
        at = self._time(unit, c.occurred_at)
        event = _EMAIL_EVENTS[c.signal]
        reason = (c.reason or "").strip().lower() or None
        effect = Effect(
            Op.BLOCK, (Channel.EMAIL,), DndKind(_LEVEL[rule.effect]),
            code=reason or c.signal.value,
            message=f"email {c.signal.value}" + (f": {reason}" if reason else ""),
            origin=ref, suppression=rule.requires_suppression_removal,
        )  # fmt: skip
        detail = _drop_none(address_ref=ref, reason=reason, provider_event_id=c.event_id)
        key = email_key(token, normalise_email(c.recipient), ref, c.key_per_recipient)
        return self._signal(
            unit, c.location_id, AddressKind.EMAIL, ref, event, at, key, effect, detail
        )

    def _legacy(self, unit: _Unit, c: cmd.ImportLegacy) -> Outcome:
        _check_id("location_id", c.location_id)
        _check_id("contact_id", c.contact_id)
        at = self._time(unit, c.occurred_at)
        phones, emails = self._phone_refs(c.phones), self._email_refs(c.emails)
        contact = unit.contact(c.location_id, c.contact_id)
        key = legacy_key(self.keyring, c.dnd, phones, emails, c.occurred_at)
        if contact is not None and key in contact.keys:  # an identical row: nothing new
            return Outcome("duplicate", contacts=(c.contact_id,))
        reg = self._ensure_contact(
            unit,
            c.location_id,
            c.contact_id,
            phones,
            emails,
            at,
            Source.IMPORT,
            "legacy-import",
            None,
        )
        contact = unit.contact(c.location_id, c.contact_id)
        assert contact is not None
        effect = (
            Effect(Op.BLOCK, ALL_CHANNELS, DndKind.ACTIVE, code="legacy",
                   message="DND was on in the legacy single-flag system")
            if c.dnd else NO_EFFECT
        )  # fmt: skip
        self._ready(contact, at)
        contact.record(
            "LegacyDndImported", occurred_at=at, source=Source.IMPORT, actor="legacy-import",
            idempotency_key=key, policy_version=self.policy.stamp, effect=effect,
            detail={"legacy_dnd": c.dnd}, timestamp=unit.now,
        )  # fmt: skip
        events = (*(reg.events if reg.result == "appended" else ()), "LegacyDndImported")
        return Outcome("appended", events=events, contacts=(c.contact_id,))

    def _signal(
        self,
        unit: _Unit,
        location_id: str,
        kind: AddressKind,
        ref: str,
        event: str,
        at: datetime,
        key: str,
        effect: Effect,
        detail: dict[str, Any],
        source: Source = Source.PROVIDER,
        actor: str | None = None,
    ) -> Outcome:
        """Record a provider event on its address, then on every contact that has it."""
        address = unit.address(location_id, kind, ref)
        if key in address.keys:
            return Outcome("duplicate", events=(event,), contacts=tuple(address.claimants))
        signal = address.record_signal(
            event, occurred_at=at, source=source, actor=actor, idempotency_key=key,
            policy_version=self.policy.stamp, effect=effect.to_dict(), detail=detail,
            timestamp=unit.now,
        )  # fmt: skip
        for contact_id in address.claimants:
            contact = unit.contact(location_id, contact_id)
            assert contact is not None
            if contact.has_key(key):
                continue
            self._ready(contact, at)
            contact.record(
                event, occurred_at=at, source=source, actor=actor, idempotency_key=key,
                policy_version=self.policy.stamp, effect=effect,
                detail={**detail, "via": signal.event_id}, timestamp=unit.now,
            )  # fmt: skip
        state = "held until a contact registers the address" if not address.claimants else None
        return Outcome(
            "appended",
            events=(event,),
            contacts=tuple(address.claimants),
            detail=_drop_none(address=state),
        )

    # -- queries ------------------------------------------------------------------
    def _load_contact(self, location_id: str, contact_id: str) -> Contact:
        _check_id("location_id", location_id)
        _check_id("contact_id", contact_id)
        found = self._get(contact_uuid(location_id, contact_id))
        if not isinstance(found, Contact):
            raise UnknownContact.of(location_id, contact_id)
        return found

    def refresh_views(self) -> int:
        """Bring the views and the notary up to date with the log; returns events applied.

        Raises :class:`LedgerUnavailable` when an event cannot be applied (it is
        recorded, never skipped)."""
        with self._views_lock:
            applied = self.projector.catch_up()
            self.notary.keep_up()
            return applied

    def ensure_current(self) -> None:
        """Return once the views reflect every write acknowledged before this call, in
        any process sharing the database; else raise :class:`LedgerUnavailable`."""
        self.freshness.ensure()

    def status(
        self,
        location_id: str,
        contact_id: str,
        *,
        as_of: datetime | None = None,
        known_at: datetime | None = None,
    ) -> StatusView:
        """Per-channel state: from the status view now, from the history otherwise."""
        _check_id("location_id", location_id)
        _check_id("contact_id", contact_id)
        now = self.clock()
        # Checked (aware, in range); echoed back in the offset they were given in.
        check_query_time("as_of", as_of)
        check_query_time("known_at", known_at)
        as_of_t, known_t = as_of, known_at
        self.ensure_current()
        channels = self.views.channels(location_id, contact_id)
        if channels is None:
            raise UnknownContact.of(location_id, contact_id)
        if as_of_t is not None or known_t is not None:
            self._registered_by(location_id, contact_id, as_of_t, known_t)
            entries = self.views.entries(location_id, contact_id, as_of_t, known_t)
            channels = fold(entries).channels()
        return StatusView(
            location_id, contact_id, overall(channels), channels, as_of_t or now, known_t or now
        )

    def can_send(
        self,
        location_id: str,
        contact_id: str,
        channel: Channel,
        *,
        direction: Direction = Direction.OUTBOUND,
        mode: Mode = Mode.AUTOMATED,
        as_of: datetime | None = None,
        known_at: datetime | None = None,
        checked: bool = False,
    ) -> Decision:
        """May we message this contact on this channel? One view row on the hot path.

        ``checked``: the caller has just called :meth:`ensure_current` for this very
        request (a batch of decisions shares one check); never pass it otherwise.
        """
        if as_of is None and known_at is None:
            if not checked:
                self.ensure_current()
            found = self.views.channel(location_id, contact_id, channel)
            if found is not None:
                return decide_channel(found[0], found[1], channel, direction, mode)
            _check_id("location_id", location_id)
            _check_id("contact_id", contact_id)
            raise UnknownContact.of(location_id, contact_id)
        view = self.status(location_id, contact_id, as_of=as_of, known_at=known_at)
        return decide(view.channels, channel, direction, mode)

    def _registered_by(
        self, location_id: str, contact_id: str, as_of: datetime | None, known_at: datetime | None
    ) -> None:
        """A past-time query about a contact must fall after its registration: before
        it, the ledger knew nothing of the contact, and "no DND" would be a guess."""
        with self._lock:
            contact = self._load_contact(location_id, contact_id)
        for name, t, since in (("as_of", as_of, contact.registered_at),
                               ("known_at", known_at, contact.created_on)):  # fmt: skip
            if t is not None and t < since:
                raise UnknownContact(
                    f"contact {contact_id!r} was not registered in location {location_id!r} "
                    f"at {t.isoformat()} ({name}): it was registered at {since.isoformat()}"
                )

    def history(self, location_id: str, contact_id: str) -> list[HistoryItem]:
        contact_id_uuid = contact_uuid(location_id, contact_id)
        self._load_contact(location_id, contact_id)
        items = []
        for e in self.events.get(contact_id_uuid):
            assert isinstance(e, Contact.Event)
            name = type(e).__name__
            d = e.__dict__
            items.append(
                HistoryItem(
                    version=e.originator_version,
                    event=name,
                    occurred_at=d.get("occurred_at") or e.timestamp,
                    recorded_at=e.timestamp,
                    source=str(d.get("source", "")),
                    actor=d.get("actor"),
                    idempotency_key=d.get("idempotency_key"),
                    policy_version=d.get("policy_version", ""),
                    effect=d.get("effect", {}),
                    detail=_history_detail(name, d),
                )
            )
        return items

    def contact_addresses(self, location_id: str, contact_id: str) -> dict[str, list[str]]:
        with self._lock:
            contact = self._load_contact(location_id, contact_id)
            return {"phones": list(contact.phones), "emails": list(contact.emails)}

    def reveal(self, ref: str) -> str | None:
        """The personal value behind a reference, unless it was erased."""
        return self.vault.get(ref)

    def erase_personal_data(self, location_id: str, contact_id: str) -> Erasure:
        """Erase the contact's personal values (addresses, message bodies, opt-in
        evidence) from the vault; the ledger stays intact. See :mod:`dnd_ledger.services.erasure`."""
        return erase_personal_data(self, location_id, contact_id)


def _hex(originator_id: UUID | str) -> str:
    return originator_id.hex if isinstance(originator_id, UUID) else originator_id


def _replay(aggregate: Any, events: Iterable[Any]) -> Any:
    """The library's ``project_aggregate`` without its per-event runtime-protocol
    ``isinstance`` check (most of the cost of a replay); our events all mutate."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


def _untyped(obj: object) -> Any:
    return obj


def _history_detail(name: str, d: dict[str, Any]) -> dict[str, Any]:
    if name in ("Registered", "AddressesAdded", "AddressRemoved"):
        addresses = {"phones": list(d.get("phones", [])), "emails": list(d.get("emails", []))}
        return {**addresses, **d.get("detail", {})}
    return dict(d.get("detail", {}))


_LEVEL = {"temporary": "active", "permanent": "permanent"}
_CARRIER_EVENTS = {
    30004: "CarrierError30004",
    21610: "CarrierError21610",
    63014: "WhatsAppBlocked63014",
}
_EMAIL_EVENTS = {
    EmailSignal.FAILED_PERMANENT: "MailgunPermanentFailure",
    EmailSignal.FAILED_TEMPORARY: "MailgunTemporaryFailure",
    EmailSignal.COMPLAINED: "MailgunComplaint",
    EmailSignal.UNSUBSCRIBED: "MailgunUnsubscribed",
}

_HANDLERS: dict[type[Any], Callable[[DndLedger, _Unit, Any], Outcome]] = {
    cmd.RegisterContact: DndLedger._register,
    cmd.SetDnd: DndLedger._set,
    cmd.ClearDnd: DndLedger._clear,
    cmd.ApproveOptIn: DndLedger._approve,
    cmd.ReceiveInbound: DndLedger._inbound,
    cmd.ReportCarrierStatus: DndLedger._carrier,
    cmd.ReportEmailEvent: DndLedger._email,
    cmd.ImportLegacy: DndLedger._legacy,
    cmd.RemoveAddress: remove_address,
    cmd.RecordErasure: record_erasure,
    cmd.RecordConfirmation: record_confirmation,
    cmd.ResolveReview: resolve_review,
    cmd.LocateContact: locate_contact,
}


def _check_id(name: str, value: str) -> None:
    if not value or not value.strip():
        raise InvalidInput(f"{name} is empty")
    if len(value) > MAX_ID or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidInput(f"{name} is longer than {MAX_ID} characters or has control characters")


def _required(name: str, value: str | None, limit: int = 256) -> str:
    text = (value or "").strip()
    if not text:
        raise InvalidInput(f"{name} is required")
    if len(text) > limit:
        raise InvalidInput(f"{name} is longer than {limit} characters")
    return text


def _optional_text(name: str, value: str | None) -> str | None:
    return _required(name, value, MAX_TEXT) if value and value.strip() else None


def _channels(channels: Sequence[Channel]) -> tuple[Channel, ...]:
    if not channels:
        raise InvalidInput("no channel given: name channels or use all")
    out = []
    for ch in channels:
        try:
            out.append(Channel(ch))
        except ValueError:
            raise InvalidInput(
                f"unknown channel {ch!r}; channels are {', '.join(c.value for c in ALL_CHANNELS)}"
            ) from None
    return tuple(dict.fromkeys(out))


def _drop_none(**kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}


__all__ = ["CONTACT_ORIGIN", "DndLedger", "HistoryItem", "StatusView"]
