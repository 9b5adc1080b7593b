"""Twilio messaging webhooks (inbound message, status callback) as ledger commands.

Twilio posts form fields. The inbound webhook becomes a :class:`ReceiveInbound`
(its MessageSid is the idempotency key); the status callback becomes a
:class:`ReportCarrierStatus` carrying the ErrorCode untouched, because which
codes affect a contact is the domain policy's decision, not this adapter's. Only
a callback without any error code is :class:`Ignored`: it says nothing about the
recipient. WhatsApp traffic arrives on the same webhooks with ``whatsapp:``
addresses; the prefix picks the channel and is stripped from the address.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import parse_qsl

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

from dnd_ledger.commands import ReceiveInbound, ReportCarrierStatus
from dnd_ledger.domain.values import Channel
from dnd_ledger.providers.outcomes import Ignored
from dnd_ledger.providers.payload import (
    MAX_BODY_BYTES,
    MAX_PAYLOAD_BYTES,
    PayloadError,
    check_form,
    decode_utf8,
    field_name,
    rfc2822_time,
    validate_model,
)

_WHATSAPP = "whatsapp:"
_OTHER_PREFIX = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,19}):")
_DIGITS = re.compile(r"[0-9]{1,9}")
_DLR_DATE = re.compile(r"[0-9]{10}")
_STATUS = re.compile(r"[a-z_-]{1,32}")


def _form_int(value: object) -> object:
    # Form values are text; accept digits only (no signs, spaces, floats or bools).
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    raise ValueError("expected a whole number of up to 9 digits")


def _error_code(value: object) -> object:
    return None if value == "" else _form_int(value)


def _blank_is_absent(value: object) -> object:
    # An optional field sent empty says nothing; refusing it would drop the message.
    return None if value == "" else value


def _body_size(value: str) -> str:
    size = len(value.encode("utf-8"))
    if size > MAX_BODY_BYTES:
        raise ValueError(f"is {size} bytes, over the {MAX_BODY_BYTES}-byte limit")
    return value


def _status(value: str) -> str:
    status = value.strip().lower()
    if not _STATUS.fullmatch(status):
        raise ValueError("expected a status word such as 'delivered' or 'undelivered'")
    return status


def _opt_out_type(value: str) -> str | None:
    # Known values are STOP, START and HELP. Others pass through as text: refusing
    # the message would also drop the body, which may itself be an opt-out.
    return value.strip().upper() or None


def _dlr_done_date(value: object) -> object:
    if value == "":
        return None
    if not isinstance(value, str) or not _DLR_DATE.fullmatch(value):
        raise ValueError("expected YYMMDDhhmm")
    try:
        return datetime(
            2000 + int(value[0:2]),
            int(value[2:4]),
            int(value[4:6]),
            int(value[6:8]),
            int(value[8:10]),
            tzinfo=UTC,
        )
    except ValueError:
        raise ValueError("is not a valid YYMMDDhhmm date") from None


def _date_sent(value: object) -> object:
    # The Messages API writes RFC 2822 ("Thu, 30 Jul 2015 20:12:33 +0000"); an
    # export may hold ISO 8601. Either must say its zone.
    if value == "" or value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError("expected a date (RFC 2822 or ISO 8601)")
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = rfc2822_time(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            raise ValueError("is not a date (RFC 2822 or ISO 8601)") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError("has no time zone")
    return parsed.astimezone(UTC)


Sid = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Za-z0-9]{2,64}$")]
Address = Annotated[
    str, StringConstraints(strict=True, strip_whitespace=True, min_length=1, max_length=256)
]
FormInt = Annotated[int, BeforeValidator(_form_int)]
ErrorCode = Annotated[int | None, BeforeValidator(_error_code)]
Body = Annotated[str, StringConstraints(strict=True), AfterValidator(_body_size)]
OptOutType = Annotated[
    str, StringConstraints(strict=True, max_length=32), AfterValidator(_opt_out_type)
]
Status = Annotated[str, StringConstraints(strict=True), AfterValidator(_status)]
DlrDoneDate = Annotated[datetime | None, BeforeValidator(_dlr_done_date)]
DateSent = Annotated[datetime | None, BeforeValidator(_date_sent)]
OptionalSid = Annotated[Sid | None, BeforeValidator(_blank_is_absent)]
OptionalAddress = Annotated[Address | None, BeforeValidator(_blank_is_absent)]
OptionalInt = Annotated[FormInt | None, BeforeValidator(_blank_is_absent)]


class TwilioInbound(BaseModel):
    """Twilio's inbound message webhook; fields beyond these are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    message_sid: Sid = Field(alias="MessageSid")
    account_sid: Sid = Field(alias="AccountSid")
    messaging_service_sid: OptionalSid = Field(default=None, alias="MessagingServiceSid")
    from_address: Address = Field(alias="From")
    to_address: Address = Field(alias="To")
    body: Body = Field(alias="Body")
    num_media: OptionalInt = Field(default=None, alias="NumMedia")
    num_segments: OptionalInt = Field(default=None, alias="NumSegments")
    opt_out_type: OptOutType | None = Field(default=None, alias="OptOutType")
    #: When the message was sent: absent from live webhooks, present in archived
    #: forms and Messages API exports (``date_sent``).
    date_sent: DateSent = Field(
        default=None, validation_alias=AliasChoices("DateSent", "date_sent")
    )


class TwilioStatus(BaseModel):
    """Twilio's message status callback; fields beyond these are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    message_sid: Sid = Field(alias="MessageSid")
    message_status: Status = Field(alias="MessageStatus")
    error_code: ErrorCode = Field(default=None, alias="ErrorCode")
    to_address: Address = Field(alias="To")
    from_address: OptionalAddress = Field(default=None, alias="From")
    account_sid: OptionalSid = Field(default=None, alias="AccountSid")
    raw_dlr_done_date: DlrDoneDate = Field(default=None, alias="RawDlrDoneDate")


def parse_form(raw: bytes) -> list[tuple[str, str]]:
    """Decode an ``application/x-www-form-urlencoded`` body strictly as UTF-8.

    Returns the (name, value) pairs in order, repeats kept, as the Twilio
    signature check needs them; ``dict(pairs)`` gives the form for the parsers.
    """
    text = decode_utf8(raw, "body", MAX_PAYLOAD_BYTES)
    try:
        return parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=1000)
    except UnicodeDecodeError:
        raise PayloadError("body", "has a percent-encoded value that is not UTF-8") from None
    except ValueError:
        raise PayloadError("body", "has more than 1000 form fields") from None


def _read_fields() -> frozenset[str]:
    names = set()
    for model in (TwilioInbound, TwilioStatus):
        names |= {f.alias or n for n, f in model.model_fields.items()}
    return frozenset(names)


#: The form fields the ledger reads (an ambiguous repeat of one of them is refused).
READ_FIELDS = _read_fields()


def single_valued(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """The form as a dict; a field the ledger reads, repeated with different values, is
    refused (``Body=STOP&Body=hello`` must not be resolved by taking one of them)."""
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form and form[name] != value and name in READ_FIELDS:
            raise PayloadError(field_name(name), "is repeated with different values")
        form[name] = value
    return form


def parse_inbound(form: Mapping[str, object]) -> TwilioInbound:
    """Validate an inbound message form; raises :class:`PayloadError`."""
    return validate_model(TwilioInbound, check_form(form))


def parse_status(form: Mapping[str, object]) -> TwilioStatus:
    """Validate a status callback form; raises :class:`PayloadError`."""
    return validate_model(TwilioStatus, check_form(form))


def inbound_to_command(form: Mapping[str, object], location_id: str) -> ReceiveInbound:
    """The :class:`ReceiveInbound` for an inbound SMS or WhatsApp message."""
    message = parse_inbound(form)
    channel, address = channel_and_address(message.from_address, "From")
    return ReceiveInbound(
        location_id=location_id,
        channel=channel,
        from_address=address,
        body=message.body,
        message_id=message.message_sid,
        # A live webhook carries no time (it is the moment it arrives); an archived
        # form's DateSent places it where it happened, not when it was backfilled.
        occurred_at=message.date_sent,
        provider_opt_out_type=message.opt_out_type,
    )


def status_to_command(
    form: Mapping[str, object], location_id: str
) -> ReportCarrierStatus | Ignored:
    """The :class:`ReportCarrierStatus` for a status callback that carries an error code."""
    status = parse_status(form)
    if not status.error_code:
        return Ignored(f"status callback '{status.message_status}' carries no error code")
    channel, address = channel_and_address(status.to_address, "To")
    return ReportCarrierStatus(
        location_id=location_id,
        channel=channel,
        to_address=address,
        message_id=status.message_sid,
        status=status.message_status,
        error_code=status.error_code,
        occurred_at=status.raw_dlr_done_date,
    )


def channel_and_address(address: str, field: str) -> tuple[Channel, str]:
    """``whatsapp:+1...`` is WhatsApp, a bare number is SMS; other channels are refused."""
    if address[: len(_WHATSAPP)].lower() == _WHATSAPP:
        channel, address = Channel.WHATSAPP, address[len(_WHATSAPP) :].strip()
    elif prefix := _OTHER_PREFIX.match(address):
        raise PayloadError(field, f"channel prefix '{prefix.group(1)}:' is not supported")
    else:
        channel = Channel.SMS
    if not address:
        raise PayloadError(field, "has no address after the channel prefix")
    return channel, address
