"""Quiet hours through the ledger, on every backend: Florida and New York numbers at
19:59, 20:01 and 21:01 local, on both sides of the end of daylight saving time
(2026-11-01 in the United States)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.domain.errors import InvalidInput
from dnd_ledger.domain.values import Channel, Purpose

L = "loc-1"
FL_PHONE, NY_PHONE, LA_PHONE = "+13055550100", "+12125550100", "+14155550100"
SMS, CALL = Channel.SMS, Channel.CALL
MKT = Purpose.MARKETING
#: Local midnight in New York on a day in daylight time (UTC-4) and one in standard time (UTC-5).
EDT_DAY = datetime(2026, 10, 30, 4, 0, tzinfo=UTC)
EST_DAY = datetime(2026, 11, 2, 5, 0, tzinfo=UTC)


def local(day: datetime, h: int, m: int) -> datetime:
    return day + timedelta(hours=h, minutes=m)


@pytest.fixture
def people(ledger: DndLedger) -> DndLedger:
    ledger.execute(c.RegisterContact(L, "fl", (FL_PHONE,)))
    ledger.execute(c.RegisterContact(L, "ny", (NY_PHONE,)))
    return ledger


@pytest.mark.parametrize("day", [EDT_DAY, EST_DAY], ids=["EDT", "EST"])
@pytest.mark.parametrize(
    ("who", "hh", "mm", "rule"),
    [
        ("fl", 19, 59, None), ("fl", 20, 1, "quiet-hours.US-FL"), ("fl", 21, 1, "quiet-hours.US-FL"),
        ("ny", 19, 59, None), ("ny", 20, 1, None), ("ny", 21, 1, "quiet-hours.US"),
    ],
)  # fmt: skip
def test_quiet_hours_by_the_number(
    people: DndLedger, day: datetime, who: str, hh: int, mm: int, rule: str | None
) -> None:
    d = people.rules.can_send(L, who, SMS, purpose=MKT, at=local(day, hh, mm))
    assert d.allowed is (rule is None), d.reason
    if rule is not None:
        assert d.rule == rule
        zone = "EDT" if day is EDT_DAY else "EST"
        assert f"it is {hh:02d}:{mm:02d} in America/New_York ({zone})" in d.reason


def test_only_the_listed_purposes_and_channels(people: DndLedger) -> None:
    late = local(EST_DAY, 21, 30)
    assert not people.rules.can_send(L, "ny", CALL, purpose=MKT, at=late).allowed
    assert people.rules.can_send(L, "ny", SMS, purpose=Purpose.INFORMATIONAL, at=late).allowed
    assert people.rules.can_send(L, "ny", SMS, at=late).allowed  # no purpose: DND only
    assert people.rules.can_send(L, "ny", Channel.EMAIL, purpose=MKT, at=late).allowed


def test_the_contacts_own_region_and_zone_win(people: DndLedger) -> None:
    # A New York number whose owner lives in Florida, in Chicago's zone.
    people.execute(c.LocateContact(L, "ny", "US-FL", "America/Chicago"))
    at = local(EST_DAY, 21, 1)  # 20:01 in Chicago
    d = people.rules.can_send(L, "ny", SMS, purpose=MKT, at=at)
    assert (d.allowed, d.rule) == (False, "quiet-hours.US-FL")
    assert "it is 20:01 in America/Chicago (CST)" in d.reason
    assert people.rules.can_send(L, "ny", SMS, purpose=MKT, at=local(EST_DAY, 20, 30)).allowed


def test_a_contact_with_numbers_in_two_zones_is_quiet_if_either_is(people: DndLedger) -> None:
    people.execute(c.RegisterContact(L, "ny", (LA_PHONE,)))
    # 09:30 in New York is 06:30 in San Francisco: quiet there.
    d = people.rules.can_send(L, "ny", SMS, purpose=MKT, at=local(EST_DAY, 9, 30))
    assert (d.allowed, d.rule) == (False, "quiet-hours.US")
    assert "America/Los_Angeles" in d.reason
    assert people.rules.can_send(L, "ny", SMS, purpose=MKT, at=local(EST_DAY, 12, 0)).allowed


def test_dnd_still_comes_first(people: DndLedger) -> None:
    people.execute(c.SetDnd(L, "fl", (SMS,), "alice"))
    d = people.rules.can_send(L, "fl", SMS, purpose=MKT, at=local(EST_DAY, 12, 0))
    assert (d.allowed, d.rule) == (False, "outbound.dnd-blocks-all")


def test_a_bad_location_appends_nothing(people: DndLedger) -> None:
    before = len(people.history(L, "ny"))
    with pytest.raises(InvalidInput, match="unknown time zone"):
        people.execute(c.LocateContact(L, "ny", None, "Mars/Base"))
    with pytest.raises(InvalidInput, match="not like US or US-FL"):
        people.execute(c.LocateContact(L, "ny", "Florida", None))
    assert len(people.history(L, "ny")) == before
