"""Rows of a Mailgun suppression-list CSV export as :class:`ReportEmailEvent` commands.

Addresses already on a Mailgun suppression list (bounces, complaints,
unsubscribes) were refused by Mailgun before the ledger existed; importing the
export records why each address cannot be mailed. All three lists mean a
permanent failure, told apart by the reason Mailgun itself uses when it drops a
message to a suppressed address (``suppress-bounce``, ``suppress-complaint``,
``suppress-unsubscribe``), so the domain policy maps them like live events.

An export row has no event id or token, so the idempotency key is made of what
identifies the suppression: list, address and creation time (normalised to UTC
ISO 8601, so the same row exported twice, in either date format, has one key).
The address enters the key as its keyed reference, added by the ledger
(``key_per_recipient``): stored keys hold no personal data.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from datetime import UTC, datetime

from dnd_ledger.commands import ReportEmailEvent
from dnd_ledger.domain.values import EmailSignal
from dnd_ledger.providers.payload import PayloadError, rfc2822_time

#: Suppression list name -> the failure reason Mailgun reports for it.
SUPPRESSION_REASONS = {
    "bounces": "suppress-bounce",
    "complaints": "suppress-complaint",
    "unsubscribes": "suppress-unsubscribe",
}
_REQUIRED = ("address", "created_at")
_UNIX_SECONDS = re.compile(r"[0-9]{1,11}")


def parse_header(line: str) -> list[str]:
    """The column names of the header line; it must name ``address`` and ``created_at``."""
    names = [name.strip().lower() for name in _fields(line, "header")]
    missing = [name for name in _REQUIRED if name not in names]
    if missing:
        raise PayloadError("header", f"lacks the column(s) {', '.join(missing)}")
    return names


def row_to_command(
    line: str, header: Sequence[str], list_name: str, location_id: str
) -> ReportEmailEvent:
    """The command for one export row (one line: Mailgun's export has no multi-line cells)."""
    values = _fields(line, "row")
    if len(values) != len(header):
        raise PayloadError("row", f"has {len(values)} fields where the header has {len(header)}")
    row = dict(zip(header, values, strict=True))
    address = row["address"].strip().lower()
    if "@" not in address or len(address) > 512:
        raise PayloadError("address", "is not an email address")
    created_at = parse_created_at(row["created_at"])
    return ReportEmailEvent(
        location_id=location_id,
        recipient=address,
        signal=EmailSignal.FAILED_PERMANENT,
        idempotency_key=f"mailgun-suppression:{list_name}:{created_at.isoformat()}",
        key_per_recipient=True,
        reason=SUPPRESSION_REASONS[list_name],
        occurred_at=created_at,
    )


def parse_created_at(text: str) -> datetime:
    """A suppression's creation time, in UTC.

    Mailgun's API writes RFC 2822 (``Fri, 21 Oct 2011 11:02:55 UTC``); exports
    and spreadsheets may hold ISO 8601 or Unix seconds. A time without a zone
    is taken as UTC, the zone Mailgun reports in.
    """
    value = text.strip()
    if not value:
        raise PayloadError("created_at", "is required")
    try:
        if _UNIX_SECONDS.fullmatch(value):
            return datetime.fromtimestamp(int(value), UTC)
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = rfc2822_time(value)
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        raise PayloadError(
            "created_at", "is not a date (RFC 2822, ISO 8601 or Unix seconds)"
        ) from None


def _fields(line: str, field: str) -> list[str]:
    try:
        return next(csv.reader([line], strict=True))
    except (csv.Error, StopIteration):
        raise PayloadError(field, "is not a valid CSV line") from None
