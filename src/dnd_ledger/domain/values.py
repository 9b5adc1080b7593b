"""Value types of the consent domain."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    CALL = "call"  # calls and voicemail
    FB = "fb"  # Facebook Messenger
    GMB = "gmb"  # Google Business messages
    WHATSAPP = "whatsapp"


ALL_CHANNELS: tuple[Channel, ...] = tuple(Channel)
#: Channels reached through a phone number (SMS, calls, WhatsApp).
PHONE_CHANNELS: frozenset[Channel] = frozenset({Channel.SMS, Channel.CALL, Channel.WHATSAPP})


class Purpose(StrEnum):
    """Why a message goes out; some rules depend on it (quiet hours, the confirmation)."""

    MARKETING = "marketing"
    INFORMATIONAL = "informational"
    OPT_OUT_CONFIRMATION = "opt-out-confirmation"


class DndKind(StrEnum):
    """Per-channel DND state."""

    INACTIVE = "inactive"
    ACTIVE = "active"  # temporary DND
    PERMANENT = "permanent"


class Overall(StrEnum):
    ON = "on"  # all six channels DND
    OFF = "off"  # none
    PARTIAL = "partial"  # some


class Source(StrEnum):
    USER = "user"
    SUPPORT = "support"
    PROVIDER = "provider"
    SYSTEM = "system"
    IMPORT = "import"


class AddressKind(StrEnum):
    PHONE = "phone"
    EMAIL = "email"


class Direction(StrEnum):
    OUTBOUND = "outbound"
    INBOUND = "inbound"


class Mode(StrEnum):
    AUTOMATED = "automated"
    MANUAL = "manual"


class InboundClass(StrEnum):
    """How the keyword classifier reads an inbound message body."""

    OPT_OUT = "opt-out"
    OPT_IN = "opt-in"
    SUSPECTED_REVOCATION = "suspected-revocation"
    MESSAGE = "message"


class EmailSignal(StrEnum):
    """What an email provider reported about a recipient."""

    FAILED_PERMANENT = "failed-permanent"
    FAILED_TEMPORARY = "failed-temporary"
    COMPLAINED = "complained"
    UNSUBSCRIBED = "unsubscribed"
