"""The Contact aggregate: one contact of one location, its addresses and DND history.

Every change is an event; the DND state is the fold of the events' effects by
``occurred_at`` (see :mod:`dnd_ledger.domain.state`). Payloads hold keyed
references (``ref``) to phone numbers, email addresses and texts, never the
values themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate

from dnd_ledger.domain import keys as idem
from dnd_ledger.domain import rulings
from dnd_ledger.domain.errors import HistoryNotLoaded, InvalidInput
from dnd_ledger.domain.state import ChannelChange, DndState, Effect, Entry, fold
from dnd_ledger.domain.values import Channel, Source


class Contact(Aggregate):
    class Registered(Aggregate.Created):
        location_id: str
        contact_id: str
        occurred_at: datetime
        phones: list[str]
        emails: list[str]
        source: Source
        actor: str | None
        idempotency_key: str | None
        policy_version: str

    class AddressesAdded(Aggregate.Event):
        occurred_at: datetime
        phones: list[str]
        emails: list[str]
        source: Source
        actor: str | None
        idempotency_key: str | None
        policy_version: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Contact)
            aggregate._add_addresses(self.phones, self.emails)
            if self.idempotency_key:
                aggregate._keep_key(self.idempotency_key)

    class AddressRemoved(Aggregate.Event):
        """Addresses that are no longer the contact's. DND that came from them stays."""

        occurred_at: datetime
        phones: list[str]
        emails: list[str]
        source: Source
        actor: str | None
        idempotency_key: str | None
        policy_version: str
        detail: dict[str, Any]

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Contact)
            aggregate.phones = [p for p in aggregate.phones if p not in self.phones]
            aggregate.emails = [e for e in aggregate.emails if e not in self.emails]
            if self.idempotency_key:
                aggregate._keep_key(self.idempotency_key)

    class PersonalDataErased(Aggregate.Event):
        """The contact's personal values were erased from the vault (references only)."""

        occurred_at: datetime
        source: Source
        actor: str | None
        idempotency_key: str | None
        policy_version: str
        detail: dict[str, Any]

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Contact)

    class DndEvent(Aggregate.Event):
        """Base of every event that may change DND; its effect says how."""

        occurred_at: datetime
        source: Source
        actor: str | None
        idempotency_key: str | None
        policy_version: str
        effect: dict[str, Any]
        detail: dict[str, Any]

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Contact)
            aggregate._take(self)

    # The events' names are what the audit trail shows; they say what happened.
    class DndSetByUser(DndEvent): ...

    class DndClearedByUser(DndEvent): ...

    class SupportOptInApproved(DndEvent): ...

    class OptOutKeyword(DndEvent): ...

    class StartReceived(DndEvent): ...

    class RevocationSuspected(DndEvent): ...

    class CarrierErrorTemporary(DndEvent):
        """Twilio 30003, 30005, 30006: the handset or number is unreachable for now."""

    class CarrierError30004(DndEvent):
        """Twilio 30004: message blocked by the recipient."""

    class CarrierError21610(DndEvent):
        """Twilio 21610: the recipient has unsubscribed (replied STOP)."""

    class WhatsAppBlocked63014(DndEvent):
        """Twilio 63014: the user blocked the sender on WhatsApp."""

    class CarrierErrorReported(DndEvent):
        """Any other carrier code the operator's policy maps to an effect."""

    class MailgunPermanentFailure(DndEvent): ...

    class MailgunTemporaryFailure(DndEvent): ...

    class MailgunComplaint(DndEvent): ...

    class MailgunUnsubscribed(DndEvent): ...

    class LegacyDndImported(DndEvent): ...

    class RevocationConfirmed(DndEvent):
        """A reviewer judged a suspected revocation to be one: permanent DND."""

    class RevocationDismissed(DndEvent):
        """A reviewer judged it not a revocation: the review's temporary DND is lifted."""

    class ContactLocated(DndEvent):
        """Where the contact lives (region, time zone), for quiet hours (no DND change)."""

    class OptOutConfirmationSent(DndEvent):
        """The one confirmation text after an opt-out went out (changes no channel)."""

    def __init__(
        self,
        location_id: str,
        contact_id: str,
        occurred_at: datetime,
        phones: list[str],
        emails: list[str],
        source: Source,
        actor: str | None,
        idempotency_key: str | None,
        policy_version: str,
    ) -> None:
        self.location_id = location_id
        self.contact_id = contact_id
        self.registered_at = occurred_at
        self.phones: list[str] = []
        self.emails: list[str] = []
        #: Every effect, for a refold when an event arrives late; None once the
        #: aggregate is compacted for the cache (see :meth:`compact`).
        self.entries: list[Entry] | None = []
        #: Its events' keys (once compacted: those since, ``key_lookup`` has the rest).
        self.keys: Set[str] = idem.NO_KEYS
        #: Request keys by request id (``request:ID`` -> the key with its content mark).
        self.requests: Mapping[str, str] = idem.NO_REQUESTS
        self.key_lookup: idem.KeyLookup | None = None
        #: Every key and request id it recorded, as a fixed-size filter (kept compacted).
        self.key_filter = 0
        self.state = DndState()
        self._last_occurred: datetime | None = None
        #: What each event not yet stored changed (version -> its ChannelChange).
        self._changes: dict[int, ChannelChange] = {}
        #: The effect of the DND event being applied, for its note (None: not one).
        self._applied: Effect | None = None
        self._add_addresses(phones, emails)
        if idempotency_key:
            self._keep_key(idempotency_key)

    # -- commands ---------------------------------------------------------------
    @classmethod
    def register(
        cls,
        location_id: str,
        contact_id: str,
        occurred_at: datetime,
        phones: list[str],
        emails: list[str],
        source: Source,
        actor: str | None,
        idempotency_key: str | None,
        policy_version: str,
        timestamp: datetime | None = None,
    ) -> Contact:
        return cls._create(
            cls.Registered,
            timestamp=timestamp,
            id=idem.contact_uuid(location_id, contact_id),
            location_id=location_id,
            contact_id=contact_id,
            occurred_at=occurred_at,
            phones=phones,
            emails=emails,
            source=source,
            actor=actor,
            idempotency_key=idempotency_key,
            policy_version=policy_version,
        )

    def add_addresses(
        self,
        phones: list[str],
        emails: list[str],
        occurred_at: datetime,
        source: Source,
        actor: str | None,
        idempotency_key: str | None,
        policy_version: str,
        timestamp: datetime | None = None,
    ) -> None:
        new_phones = [p for p in phones if p not in self.phones]
        new_emails = [e for e in emails if e not in self.emails]
        if new_phones or new_emails:
            self.trigger_event(
                self.AddressesAdded,
                timestamp=timestamp,
                occurred_at=occurred_at,
                phones=new_phones,
                emails=new_emails,
                source=source,
                actor=actor,
                idempotency_key=idempotency_key,
                policy_version=policy_version,
            )

    def record(
        self,
        event: str,
        *,
        occurred_at: datetime,
        source: Source,
        actor: str | None,
        idempotency_key: str | None,
        policy_version: str,
        effect: Effect,
        detail: dict[str, Any] | None = None,
        timestamp: datetime | None = None,
    ) -> None:
        """Record a DND event by name (see :data:`EVENT_CLASSES`)."""
        try:
            cls = EVENT_CLASSES[event]
        except KeyError:
            raise InvalidInput(f"unknown event {event!r}") from None
        self.trigger_event(
            cls,
            timestamp=timestamp,
            occurred_at=occurred_at,
            source=source,
            actor=actor,
            idempotency_key=idempotency_key,
            policy_version=policy_version,
            effect=effect.to_dict(),
            detail=detail or {},
        )

    def trigger_event(self, event_class: Any, **kwargs: Any) -> None:
        """The library's trigger, noting the channels before and after the event: the
        views of a batch are written from these, not by folding the events again."""
        if not self._pending_events:
            self._changes = {}
        before = self.state.channels()
        self._applied = None
        super().trigger_event(event_class, **kwargs)
        self._changes[self.version] = ChannelChange(before, self.state.channels(), self._applied)
        self._applied = None

    def change_of(self, version: int) -> ChannelChange | None:
        """What this contact's event ``version`` changed, if it is one of the events
        triggered since the last were stored (None otherwise)."""
        return self._changes.get(version)

    @property
    def last_occurred(self) -> datetime | None:
        """The latest effective time of the contact's DND events (None: none yet)."""
        return self._last_occurred

    # -- guards -----------------------------------------------------------------
    def check_can_clear(
        self, channels: tuple[Channel, ...], occurred_at: datetime, suppression_removed: bool
    ) -> None:
        """Refuse a user's clear of permanent DND, or of an unattested suppression."""
        rulings.check_can_clear(self.state_at(occurred_at), channels, suppression_removed)

    # -- queries ----------------------------------------------------------------
    def has_key(self, key: str | None) -> bool:
        """Whether ``key`` is recorded (a reused request id raises, see
        :func:`~dnd_ledger.domain.keys.is_held`)."""
        lookup = self.key_lookup
        stored = None if lookup is None else idem.StoredKeys(lookup, self.id, self.key_filter)
        return key is not None and idem.is_held(
            key, self.keys, self.requests, self.contact_id, stored
        )

    def state_at(self, as_of: datetime | None = None, known_at: datetime | None = None) -> DndState:
        if known_at is None and (
            as_of is None or self._last_occurred is None or as_of >= self._last_occurred
        ):
            return self.state
        if self.entries is None:
            raise HistoryNotLoaded(f"contact {self.id} is compacted: restore its entries first")
        return fold(self.entries, as_of=as_of, known_at=known_at)

    # -- memory -----------------------------------------------------------------
    def compact(self, keys: idem.KeyLookup) -> None:
        """Forget the entries and the idempotency keys (the event store and ``keys`` hold
        them; so all its events must be stored): a cached contact keeps its current fold
        and addresses, and its memory does not grow with its history."""
        if self._pending_events:
            raise RuntimeError(f"contact {self.id} has events not stored: it cannot compact")
        self.entries = None
        self._changes = {}
        self._applied = None  # left by a replay (only trigger_event clears it)
        self.keys = idem.NO_KEYS
        self.requests = idem.NO_REQUESTS
        self.key_lookup = keys

    def needs_history(self, occurred_at: datetime) -> bool:
        """Compacted, and an event or a guard at ``occurred_at`` would refold the past."""
        return (
            self.entries is None
            and self._last_occurred is not None
            and occurred_at < self._last_occurred
        )

    def restore_entries(self, events: Iterable[Any]) -> None:
        """Rebuild the entries from this contact's events (stored, then pending)."""
        self.entries = [_entry(e) for e in events if isinstance(e, Contact.DndEvent)]

    # -- mutators (applied from events, also on replay) -------------------------
    def _keep_key(self, key: str) -> None:
        self.keys = idem.added(self.keys, key)
        self.key_filter = idem.filter_with(self.key_filter, key)
        self.requests = idem.with_request(self.requests, key)

    def _add_addresses(self, phones: list[str], emails: list[str]) -> None:
        self.phones.extend(p for p in phones if p not in self.phones)
        self.emails.extend(e for e in emails if e not in self.emails)

    def _take(self, event: Contact.DndEvent) -> None:
        entry = _entry(event)
        in_order = self._last_occurred is None or entry.occurred_at >= self._last_occurred
        entries = self.entries
        if entries is None:
            if not in_order:  # raised before any change: the aggregate stays as it was
                raise HistoryNotLoaded(
                    f"contact {self.id} is compacted: a late event needs its entries"
                )
        else:
            entries.append(entry)
        if event.idempotency_key:
            self._keep_key(event.idempotency_key)
        self._applied = entry.effect
        if in_order:
            self._last_occurred = entry.occurred_at
            self.state.apply(entry)
        else:
            # Arrived out of order: refold so each effect applies in effective time.
            assert entries is not None
            self.state = fold(entries)


def _entry(event: Contact.DndEvent) -> Entry:
    return Entry(
        occurred_at=event.occurred_at,
        recorded_at=event.timestamp,
        seq=event.originator_version,
        event=type(event).__name__,
        event_id=f"{event.originator_id}:{event.originator_version}",
        effect=Effect.from_dict(event.effect),
    )


#: Every DND event class by name (each one nested in Contact).
EVENT_CLASSES: dict[str, type[Contact.DndEvent]] = {
    cls.__name__: cls
    for cls in vars(Contact).values()
    if isinstance(cls, type) and issubclass(cls, Contact.DndEvent) and cls is not Contact.DndEvent
}

__all__ = ["EVENT_CLASSES", "Contact"]
