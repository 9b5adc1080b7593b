"""Checks on the effective timeline (``occurred_at``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from dnd_ledger.domain.errors import InvalidInput

#: Providers' and users' clocks drift; more than this ahead of ours is refused.
MAX_CLOCK_SKEW = timedelta(minutes=5)


def check_occurred_at(occurred_at: datetime, now: datetime) -> datetime:
    if occurred_at.tzinfo is None or occurred_at.utcoffset() is None:
        raise InvalidInput(f"time {occurred_at.isoformat()} has no time zone")
    if occurred_at - now > MAX_CLOCK_SKEW:
        raise InvalidInput(
            f"occurred_at {occurred_at.isoformat()} is more than "
            f"{int(MAX_CLOCK_SKEW.total_seconds() // 60)} minutes ahead of the "
            f"ledger clock ({now.isoformat()})"
        )
    return occurred_at
