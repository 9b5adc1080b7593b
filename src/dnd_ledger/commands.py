"""Commands: what callers (CLI, HTTP, provider adapters) ask the ledger to record.

Plain frozen dataclasses holding raw values as received (phone numbers, email
addresses, message bodies). The application turns raw personal data into keyed
references before anything is stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from dnd_ledger.domain.values import Channel, EmailSignal


@dataclass(frozen=True)
class RegisterContact:
    location_id: str
    contact_id: str
    phones: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    occurred_at: datetime | None = None
    actor: str | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class SetDnd:
    """A user sets temporary DND on channels from the contact record."""

    location_id: str
    contact_id: str
    channels: tuple[Channel, ...]
    actor: str
    reason: str | None = None
    occurred_at: datetime | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class ClearDnd:
    """A user clears DND on channels from the contact record."""

    location_id: str
    contact_id: str
    channels: tuple[Channel, ...]
    actor: str
    reason: str | None = None
    suppression_removed: bool = False
    occurred_at: datetime | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class ApproveOptIn:
    """Support approves a re-opt-in backed by the contact's opt-in evidence."""

    location_id: str
    contact_id: str
    channels: tuple[Channel, ...]
    approver: str
    ticket: str
    evidence: str
    occurred_at: datetime | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class ReceiveInbound:
    """An inbound SMS or WhatsApp message from an address.

    ``message_id`` is the provider's message id (Twilio MessageSid), the
    idempotency key. ``provider_opt_out_type`` is the provider's own reading of
    the message (Twilio Advanced Opt-Out: STOP, START, HELP), kept beside ours.
    """

    location_id: str
    channel: Channel
    from_address: str
    body: str
    message_id: str
    occurred_at: datetime | None = None
    provider_opt_out_type: str | None = None


@dataclass(frozen=True)
class ReportCarrierStatus:
    """A carrier delivery status for an outbound message to an address.

    ``error_code`` is the carrier/provider error code (Twilio ErrorCode), or
    None when the status carries none.
    """

    location_id: str
    channel: Channel
    to_address: str
    message_id: str
    status: str
    error_code: int | None = None
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class ReportEmailEvent:
    """An email provider's report about a recipient (bounce, complaint, ...).

    ``idempotency_key`` is the provider's delivery-unique token (Mailgun
    ``signature.token``); ``event_id`` is kept for reference only. The key must
    not hold personal data: one that is unique only per recipient (a suppression
    row) sets ``key_per_recipient`` and the ledger adds the recipient's keyed
    reference.
    """

    location_id: str
    recipient: str
    signal: EmailSignal
    idempotency_key: str
    reason: str | None = None
    event_id: str | None = None
    occurred_at: datetime | None = None
    key_per_recipient: bool = False


@dataclass(frozen=True)
class ImportLegacy:
    """One row of the legacy single-flag DND export."""

    location_id: str
    contact_id: str
    dnd: bool
    phones: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class RemoveAddress:
    """Addresses a contact no longer has (DND that came from them stays)."""

    location_id: str
    contact_id: str
    actor: str
    phones: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    reason: str | None = None
    occurred_at: datetime | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class RecordErasure:
    """The record of an erasure (see :mod:`dnd_ledger.services.contact_admin`): references only."""

    location_id: str
    contact_id: str
    actor: str
    reason: str
    erased: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()


@dataclass(frozen=True)
class RecordConfirmation:
    """The one confirmation text after an opt-out was sent to ``to_address``."""

    location_id: str
    channel: Channel
    to_address: str
    message_sid: str
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class ResolveReview:
    """A reviewer's verdict on a suspected revocation (``revocation``/``not-revocation``)."""

    location_id: str
    item: str
    resolution: str
    actor: str
    note: str
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class LocateContact:
    """Where a contact lives: a region (``US-FL``) and/or an IANA time zone."""

    location_id: str
    contact_id: str
    region: str | None = None
    time_zone: str | None = None
    occurred_at: datetime | None = None
    actor: str | None = None


Command = (
    RegisterContact
    | SetDnd
    | ClearDnd
    | ApproveOptIn
    | ReceiveInbound
    | ReportCarrierStatus
    | ReportEmailEvent
    | ImportLegacy
    | RemoveAddress
    | RecordErasure
    | RecordConfirmation
    | ResolveReview
    | LocateContact
)


@dataclass(frozen=True)
class Outcome:
    """What recording one command did.

    ``result`` is ``appended`` (events were stored), ``duplicate`` (the
    idempotency key was already held: nothing stored) or ``ignored`` (the
    command has no effect on any contact under the policy: nothing stored).
    """

    result: str
    events: tuple[str, ...] = ()
    contacts: tuple[str, ...] = ()
    detail: dict[str, object] = field(default_factory=dict)
