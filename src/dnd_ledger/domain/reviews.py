"""Review deadlines for suspected revocations, as data and pure functions.

FCC 24-24 (CG Docket No. 02-278) and 47 CFR 64.1200(a)(10): a consumer may
revoke consent by any reasonable means, and a revocation must be honoured
within ten business days of its receipt (in force 2025-04-11). A message that
only *contains* an opt-out word (``RevocationSuspected``) opens a review item
whose deadline is the ``business_days``-th business day after the day it was
received: weekends and the ``holidays`` package's calendar (the US federal
holidays by default) do not count. Days are taken in UTC; an item is overdue
once that day has ended.

The deadline is computed when the message is recorded and kept in the event's
detail, so a later change of the policy's numbers never moves an open item.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

SUSPECTED = "RevocationSuspected"
CONFIRMED = "RevocationConfirmed"
DISMISSED = "RevocationDismissed"
RESOLUTIONS = {"revocation": CONFIRMED, "not-revocation": DISMISSED}


class DeadlineRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    business_days: int = Field(default=10, ge=1, le=60)
    #: A country (ISO 3166-1 alpha-2) of the ``holidays`` package, e.g. "US".
    holiday_calendar: str = "US"
    citation: str = "FCC 24-24; 47 CFR 64.1200(a)(10): honour revocations within 10 business days"

    @field_validator("holiday_calendar")
    @classmethod
    def _known_calendar(cls, value: str) -> str:
        try:
            _calendar(value, 2026)
        except NotImplementedError:
            raise ValueError(f"no holiday calendar for {value!r}") from None
        return value


@lru_cache(maxsize=64)
def _calendar(country: str, year: int) -> frozenset[date]:
    import holidays  # ~0.1 s to import: only when a deadline is computed

    return frozenset(holidays.country_holidays(country, years=[year, year + 1]))


def is_business_day(day: date, country: str) -> bool:
    return day.weekday() < 5 and day not in _calendar(country, day.year)


def deadline(received: datetime, rule: DeadlineRule) -> date:
    """The last day to act on a message received at ``received``."""
    day, left = received.astimezone(UTC).date(), rule.business_days
    while left:
        day += timedelta(days=1)
        if is_business_day(day, rule.holiday_calendar):
            left -= 1
    return day


def is_overdue(due: date, now: datetime) -> bool:
    return now.astimezone(UTC).date() > due


@dataclass
class ReviewItem:
    """One suspected revocation, from the address's audit rows."""

    item: str  # the inbound message's id
    location_id: str
    address_ref: str
    channel: str
    received_at: str
    deadline: str
    contacts: list[str] = field(default_factory=list)
    resolution: str | None = None  # "revocation" or "not-revocation" once resolved

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {
            "item": self.item,
            "location_id": self.location_id,
            "contacts": self.contacts,
            "channel": self.channel,
            "received_at": self.received_at,
            "deadline": self.deadline,
            "overdue": self.overdue(now),
            "resolution": self.resolution,
        }

    def overdue(self, now: datetime) -> bool:
        return self.resolution is None and is_overdue(date.fromisoformat(self.deadline), now)


def items_from(rows: Iterable[Mapping[str, Any]], rule: DeadlineRule) -> list[ReviewItem]:
    """Review items from audit rows (``location_id, contact_id, address_ref, occurred_at,
    event, detail``) in log order; items recorded before deadlines were kept get one now."""
    items: dict[tuple[str, str], ReviewItem] = {}
    for r in rows:
        d, loc, event = r["detail"], r["location_id"], r["event"]
        if event == f"Address.{SUSPECTED}":
            received = datetime.fromisoformat(r["occurred_at"])
            due = d.get("review_deadline") or deadline(received, rule).isoformat()
            key = (loc, str(d.get("message_id")))
            items[key] = ReviewItem(key[1], loc, r["address_ref"], d.get("channel", "sms"),
                                    received.isoformat(), due)  # fmt: skip
        elif event == SUSPECTED:
            found = items.get((loc, str(d.get("message_id"))))
            if found is not None and r["contact_id"] not in found.contacts:
                found.contacts.append(r["contact_id"])
        elif event in (f"Address.{CONFIRMED}", f"Address.{DISMISSED}"):
            found = items.get((loc, str(d.get("item"))))
            if found is not None:
                found.resolution = d.get("resolution")
    return sorted(items.values(), key=lambda i: (i.received_at, i.item))


def opening(rule: DeadlineRule, received: datetime, channel: str) -> dict[str, Any]:
    """What a suspected revocation's detail records about its review."""
    return {"review": "required", "channel": channel,
            "review_deadline": deadline(received, rule).isoformat()}  # fmt: skip
