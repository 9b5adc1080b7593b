"""Query parameters parsed strictly: one helper for every time a URL carries.

``parse_time`` accepts ISO 8601 with a zone (``Z`` or ``+hh:mm``) and nothing
else: a time without a zone, a bare number (pydantic would read it as Unix
seconds) or a time that leaves the years 0001-9999 once moved to UTC
(``0001-01-01T00:00:00+01:00``) is refused. Used as ``QueryTime``, a refusal is
FastAPI's 422 naming the parameter.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BeforeValidator

_ISO = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?([Zz]|[+-]\d{2}(:?\d{2})?)"
)
EXAMPLE = "2026-11-28T09:30:00Z"


def parse_time(value: object) -> datetime:
    """An aware datetime in UTC, or ValueError saying what is wrong (never the value)."""
    if isinstance(value, datetime):
        t = value
    elif isinstance(value, str) and _ISO.fullmatch(value.strip()):
        try:
            t = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"is not a valid ISO 8601 time (e.g. {EXAMPLE})") from None
    else:
        raise ValueError(f"expected an ISO 8601 time with a time zone (e.g. {EXAMPLE})")
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError("has no time zone: add Z or an offset such as +01:00")
    try:
        return t.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range: it must fall in the years 0001-9999 in UTC") from None


QueryTime = Annotated[datetime, BeforeValidator(parse_time)]
