"""Mailgun webhooks and Events API items as :class:`ReportEmailEvent` commands.

Four events say something about a recipient's consent: ``failed`` (split by
``severity`` into permanent and temporary), ``complained`` and ``unsubscribed``.
They become commands carrying Mailgun's ``reason`` untouched (``bounce``,
``suppress-complaint``, ...): what a reason does to the contact is the domain
policy's call. Every other event (delivered, opened, clicked, accepted, stored,
...) is :class:`Ignored`.

Idempotency keys. A webhook is keyed by its ``signature.token``: Mailgun's event
ids are unique only per day, the token is unique per event delivery. An Events
API item has no token, so it is keyed ``mailgun-event:<id>:<timestamp>`` with the
timestamp printed to the microsecond: id and time together are unique, and the
same item fetched twice yields the same key. The two key spaces differ, so an
event seen both as a webhook and through a backfill of the Events API is stored
twice; its effect is the same both times (same signal, same ``occurred_at``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

from dnd_ledger.commands import ReportEmailEvent
from dnd_ledger.domain.values import EmailSignal
from dnd_ledger.providers.outcomes import Ignored
from dnd_ledger.providers.payload import PayloadError, load_json_object, validate_model

#: Seconds since 1970 of 9999-12-31: later times cannot be a datetime.
_MAX_EPOCH = 253_402_300_799.0
_SIGNALS = {
    "complained": EmailSignal.COMPLAINED,
    "unsubscribed": EmailSignal.UNSUBSCRIBED,
}
_FAILED = {
    "permanent": EmailSignal.FAILED_PERMANENT,
    "temporary": EmailSignal.FAILED_TEMPORARY,
}


def _epoch(value: object) -> object:
    # bool is an int to Python, never a time to Mailgun.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected seconds since 1970 as a number")
    # A chained comparison, not float(): it is exact for huge ints and False for NaN.
    if not 0 <= value <= _MAX_EPOCH:
        raise ValueError("is not a time between 1970 and 9999")
    return float(value)


def _signed_timestamp(value: object) -> object:
    # Documented as an int, sent as a string: the signed text is its decimal form.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _lower_word(value: str) -> str | None:
    return value.strip().lower() or None


def _event_name(value: str) -> str:
    name = value.strip().lower()
    if not name:
        raise ValueError("must name the event")
    return name


Text = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=256)]
Word = Annotated[str, StringConstraints(strict=True, max_length=64), AfterValidator(_lower_word)]
EventName = Annotated[
    str, StringConstraints(strict=True, max_length=64), AfterValidator(_event_name)
]
Epoch = Annotated[float, BeforeValidator(_epoch)]
SignedTimestamp = Annotated[
    str, BeforeValidator(_signed_timestamp), StringConstraints(strict=True, max_length=32)
]


class MailgunSignature(BaseModel):
    """The ``signature`` block of a webhook: HMAC-SHA256 over timestamp + token."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    timestamp: SignedTimestamp
    token: Text
    signature: Text
    parent_signature: Text | None = Field(default=None, alias="parent-signature")


class DeliveryStatus(BaseModel):
    """The remote server's answer (SMTP code and text), kept for reference."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    code: int | str | None = None
    message: str | None = None
    description: str | None = None
    attempt_no: int | None = Field(default=None, alias="attempt-no")


class MailgunEvent(BaseModel):
    """One event: a webhook's ``event-data`` or an Events API item (same shape)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event: EventName
    id: Text
    timestamp: Epoch
    recipient: Annotated[str, StringConstraints(strict=True, max_length=512)] | None = None
    severity: Word | None = None
    reason: Word | None = None
    log_level: Word | None = Field(default=None, alias="log-level")
    delivery_status: DeliveryStatus | None = Field(default=None, alias="delivery-status")

    @property
    def occurred_at(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp, UTC)


class MailgunWebhook(BaseModel):
    """A webhook body: ``{"signature": {...}, "event-data": {...}}``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    signature: MailgunSignature
    event_data: MailgunEvent = Field(alias="event-data")


def parse_webhook(raw: bytes | str | Mapping[str, object]) -> MailgunWebhook:
    """Validate a webhook body (raw bytes, text or decoded JSON); raises PayloadError."""
    data = raw if isinstance(raw, Mapping) else load_json_object(raw)
    return validate_model(MailgunWebhook, data)


def parse_event(item: Mapping[str, object]) -> MailgunEvent:
    """Validate one Events API item; raises PayloadError."""
    return validate_model(MailgunEvent, item)


def webhook_to_command(webhook: MailgunWebhook, location_id: str) -> ReportEmailEvent | Ignored:
    """The command for a parsed (and separately verified) webhook, keyed by its token."""
    token = webhook.signature.token
    return event_to_command(webhook.event_data, location_id, token, where="event-data.")


def events_item_key(event: MailgunEvent) -> str:
    """The idempotency key of an Events API item: id plus microsecond timestamp."""
    return f"mailgun-event:{event.id}:{event.timestamp:.6f}"


def events_item_to_command(
    item: Mapping[str, object], location_id: str
) -> ReportEmailEvent | Ignored:
    """The command for one Events API item (which has no signature token)."""
    event = parse_event(item)
    return event_to_command(event, location_id, events_item_key(event))


def event_to_command(
    event: MailgunEvent, location_id: str, idempotency_key: str, where: str = ""
) -> ReportEmailEvent | Ignored:
    """Map one event to a command, or to Ignored when it carries no consent signal.

    ``where`` prefixes field names in errors (``event-data.`` for a webhook).
    """
    if event.event == "failed":
        signal = _FAILED.get(event.severity or "")
        if signal is None:
            problem = "a failed event needs 'permanent' or 'temporary'"
            raise PayloadError(f"{where}severity", problem)
    elif event.event in _SIGNALS:
        signal = _SIGNALS[event.event]
    else:
        return Ignored(f"mailgun event '{event.event}' carries no consent signal")
    return ReportEmailEvent(
        location_id=location_id,
        recipient=_recipient(event, where),
        signal=signal,
        idempotency_key=idempotency_key,
        reason=event.reason,
        event_id=event.id,
        occurred_at=event.occurred_at,
    )


def _recipient(event: MailgunEvent, where: str) -> str:
    recipient = (event.recipient or "").strip().lower()
    if not recipient:
        raise PayloadError(f"{where}recipient", f"is required for a '{event.event}' event")
    if "@" not in recipient:
        raise PayloadError(f"{where}recipient", "is not an email address")
    return recipient
