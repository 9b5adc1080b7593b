"""Checks on times at the door: every time that enters is aware, convertible to UTC
and, for the effective timeline (``occurred_at``), no earlier than 1970 and not
far ahead of the ledger's clock. Accepted times are kept in UTC, so every row
derived from them reads the same however the caller wrote its offset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dnd_ledger.domain.errors import InvalidInput

#: Providers' and users' clocks drift; more than this ahead of ours is refused.
MAX_CLOCK_SKEW = timedelta(minutes=5)
#: Nothing the ledger records happened before this: a year-1 time is a client bug.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


def to_utc(name: str, t: datetime) -> datetime:
    """``t`` in UTC; refused when it has no zone or falls outside the datetime range."""
    if not isinstance(t, datetime):
        raise InvalidInput(f"{name} is not a time")
    if t.tzinfo is None or t.utcoffset() is None:
        raise InvalidInput(f"{name} {t.isoformat()} has no time zone")
    try:
        return t.astimezone(UTC)
    except (OverflowError, ValueError):
        raise InvalidInput(f"{name} {t.isoformat()} is outside the range of times") from None


def check_query_time(name: str, t: datetime | None) -> datetime | None:
    """A query bound (``as_of``, ``known_at``, ``since``, ``until``), in UTC."""
    return None if t is None else to_utc(name, t)


def check_occurred_at(occurred_at: datetime, now: datetime) -> datetime:
    """When something happened, in UTC: aware, from 1970 on, at most a little ahead."""
    t = to_utc("occurred_at", occurred_at)
    if t < EARLIEST:
        raise InvalidInput(f"occurred_at {occurred_at.isoformat()} is before 1970-01-01")
    if t - now > MAX_CLOCK_SKEW:
        raise InvalidInput(
            f"occurred_at {occurred_at.isoformat()} is more than "
            f"{int(MAX_CLOCK_SKEW.total_seconds() // 60)} minutes ahead of the "
            f"ledger clock ({now.isoformat()})"
        )
    return t
