"""Times at the HTTP door: ISO 8601 with a zone, within range, never a bare number.

pydantic reads a number (or a numeric string such as ``known_at=4``) as Unix
seconds; here that is refused, since a stray number must not read as 1970.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator

from dnd_ledger.domain.errors import InvalidInput
from dnd_ledger.domain.timecheck import to_utc

_ISO = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _iso_text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO.match(value.strip()):
        raise ValueError(
            "not an ISO 8601 time with a zone, e.g. 2026-11-28T09:30:00Z (a number is not a time)"
        )
    return value


def _in_range(value: datetime) -> datetime:
    try:
        return to_utc("time", value)
    except InvalidInput as e:
        raise ValueError(str(e)) from None


#: An aware ISO 8601 time, converted to UTC; 422 otherwise.
Time = Annotated[AwareDatetime, BeforeValidator(_iso_text), AfterValidator(_in_range)]

__all__ = ["Time"]
