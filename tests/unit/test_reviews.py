"""Review deadlines as pure functions (no I/O): business days over US federal holidays."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from dnd_ledger.domain.policy import DEFAULT_POLICY, Policy
from dnd_ledger.domain.reviews import DeadlineRule, deadline, is_overdue, items_from

RULE = DeadlineRule()


def at(y: int, m: int, d: int, h: int = 12) -> datetime:
    return datetime(y, m, d, h, tzinfo=UTC)


def test_the_default_is_ten_business_days_on_the_us_calendar() -> None:
    assert DEFAULT_POLICY.review.deadline == RULE
    assert (RULE.business_days, RULE.holiday_calendar) == (10, "US")


def test_a_plain_fortnight() -> None:
    assert deadline(at(2026, 3, 2), RULE) == date(2026, 3, 16)  # Mon -> Mon, two weeks


def test_over_veterans_day_and_thanksgiving() -> None:
    # Fri 20 Nov: 23, 24, 25, (26 Thanksgiving), 27, 30, 1, 2, 3, 4, 7 Dec.
    assert deadline(at(2026, 11, 20), RULE) == date(2026, 12, 7)
    # Mon 9 Nov: 10, (11 Veterans Day), 12, 13, 16..20, 23, 24.
    assert deadline(at(2026, 11, 9), RULE) == date(2026, 11, 24)


def test_over_christmas_and_new_year() -> None:
    # Mon 21 Dec: 22, 23, 24, (25), 28, 29, 30, 31, (1 Jan), 4, 5, 6.
    assert deadline(at(2026, 12, 21), RULE) == date(2027, 1, 6)


def test_the_day_is_the_utc_day_the_message_came_in() -> None:
    # Fri 6 Nov 23:00 UTC: 9, 10, (11), 12, 13, 16, 17, 18, 19, 20, 23.
    assert deadline(at(2026, 11, 6, 23), RULE) == date(2026, 11, 23)
    assert deadline(datetime(2026, 11, 7, 1, tzinfo=UTC), RULE) == date(2026, 11, 23)  # Sat


def test_the_numbers_are_policy() -> None:
    five = DeadlineRule(business_days=5)
    assert deadline(at(2026, 11, 20), five) == date(2026, 11, 30)
    assert Policy.model_validate({"review": {"deadline": {"business_days": 3}}}).review.deadline
    with pytest.raises(ValueError, match="no holiday calendar"):
        DeadlineRule(holiday_calendar="XX")
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        DeadlineRule(business_days=0)


def test_overdue_once_the_deadline_day_has_ended() -> None:
    due = date(2026, 12, 7)
    assert not is_overdue(due, datetime(2026, 12, 7, 23, 59, tzinfo=UTC))
    assert is_overdue(due, datetime(2026, 12, 8, 0, 0, tzinfo=UTC))


def test_items_from_audit_rows() -> None:
    def row(event: str, contact: str | None, **detail: object) -> dict[str, object]:
        return {"location_id": "l", "contact_id": contact, "address_ref": "r",
                "occurred_at": "2026-11-20T12:00:00+00:00", "event": event, "detail": detail}  # fmt: skip

    rows = [
        row("Address.RevocationSuspected", None, message_id="SM1", channel="sms"),
        row("RevocationSuspected", "ada", message_id="SM1"),
        row("RevocationSuspected", "bob", message_id="SM1"),
        row("Address.RevocationSuspected", None, message_id="SM2", review_deadline="2030-01-01"),
        row("Address.RevocationDismissed", None, item="SM2", resolution="not-revocation"),
    ]
    first, second = items_from(rows, RULE)
    assert (first.item, first.contacts, first.deadline) == ("SM1", ["ada", "bob"], "2026-12-07")
    assert first.overdue(datetime(2026, 12, 8, tzinfo=UTC))
    assert (second.deadline, second.resolution) == ("2030-01-01", "not-revocation")
    assert not second.overdue(datetime(2031, 1, 1, tzinfo=UTC))  # resolved: never overdue
