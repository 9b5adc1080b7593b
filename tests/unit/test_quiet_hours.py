"""Quiet hours as pure functions (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from dnd_ledger.domain.policy import DEFAULT_POLICY, Policy
from dnd_ledger.domain.quiet_hours import (
    DEFAULT_QUIET,
    Place,
    QuietRule,
    quiet,
    region_from_description,
)
from dnd_ledger.domain.values import Channel, Purpose

SMS, CALL, EMAIL = Channel.SMS, Channel.CALL, Channel.EMAIL
MKT = Purpose.MARKETING
FL = Place(("US-FL",), ("America/New_York",))
NY = Place(("US-NY",), ("America/New_York",))


def utc(h: int, m: int, day: int = 3) -> datetime:
    return datetime(2026, 12, day, h, m, tzinfo=UTC)


def test_the_defaults() -> None:
    assert DEFAULT_POLICY.quiet_hours == DEFAULT_QUIET
    assert [(r.region, r.start, r.end) for r in DEFAULT_QUIET] == [
        ("US", time(21), time(8)), ("US-FL", time(20), time(8)),
        ("US-OK", time(20), time(8)), ("US-MD", time(20), time(8)),
    ]  # fmt: skip
    assert all(r.channels == (SMS, CALL) and r.purposes == (MKT,) for r in DEFAULT_QUIET)


def test_florida_is_quiet_from_20_and_new_york_from_21() -> None:
    # 00:59 / 01:01 / 02:01 UTC are 19:59 / 20:01 / 21:01 EST.
    assert quiet(DEFAULT_QUIET, SMS, MKT, utc(0, 59), FL) is None
    found = quiet(DEFAULT_QUIET, SMS, MKT, utc(1, 1), FL)
    assert found is not None
    assert found.rule.name == "quiet-hours.US-FL"
    assert "it is 20:01 in America/New_York (EST)" in found.reason()
    assert quiet(DEFAULT_QUIET, SMS, MKT, utc(1, 1), NY) is None
    late = quiet(DEFAULT_QUIET, CALL, MKT, utc(2, 1), NY)
    assert late is not None
    assert late.rule.name == "quiet-hours.US"


def test_morning_ends_at_eight_local() -> None:
    assert quiet(DEFAULT_QUIET, SMS, MKT, utc(12, 59), NY) is not None  # 07:59 EST
    assert quiet(DEFAULT_QUIET, SMS, MKT, utc(13, 0), NY) is None


def test_other_purposes_and_channels_are_not_affected() -> None:
    assert quiet(DEFAULT_QUIET, SMS, Purpose.INFORMATIONAL, utc(2, 1), NY) is None
    assert quiet(DEFAULT_QUIET, EMAIL, MKT, utc(2, 1), NY) is None
    assert quiet(DEFAULT_QUIET, SMS, MKT, utc(2, 1), Place(("GB",), ("Europe/London",))) is None


def test_several_zones_quiet_in_any_is_quiet() -> None:
    both = Place(("US",), ("America/New_York", "America/Los_Angeles"))
    # 05:30 UTC: 00:30 in New York (quiet), 21:30 in Los Angeles (quiet too).
    assert quiet(DEFAULT_QUIET, SMS, MKT, utc(5, 30), both) is not None
    # 14:30 UTC: 09:30 New York, 06:30 Los Angeles: quiet in Los Angeles.
    found = quiet(DEFAULT_QUIET, SMS, MKT, utc(14, 30), both)
    assert found is not None
    assert found.zone == "America/Los_Angeles"
    assert quiet(DEFAULT_QUIET, SMS, MKT, utc(17, 0), both) is None  # 12:00 / 09:00
    # Nothing known: every US zone is a candidate (Honolulu is UTC-10).
    assert quiet(DEFAULT_QUIET, SMS, MKT, utc(17, 0), Place(("US",), ())) is not None


def test_a_contact_whose_state_is_unknown_gets_every_states_rule() -> None:
    # 01:30 UTC on 3 Dec: 20:30 in New York and Florida, 21:30 in Puerto Rico. A contact known
    # only to be in the US may be in Florida: its 20:00 rule applies (the safe side).
    anywhere = Place(("US",), ())
    found = quiet(DEFAULT_QUIET, CALL, MKT, utc(1, 30), anywhere)
    assert found is not None
    assert found.rule.name in {"quiet-hours.US-FL", "quiet-hours.US-OK", "quiet-hours.US-MD"}
    eastern = Place(("US",), ("America/New_York",))
    assert quiet(DEFAULT_QUIET, CALL, MKT, utc(1, 30), eastern) is not None
    assert quiet(DEFAULT_QUIET, CALL, MKT, utc(1, 30), NY) is None  # a known state: its rule
    puerto_rico = quiet(DEFAULT_QUIET, SMS, MKT, utc(1, 30), Place(("US-NY",), ()))
    assert puerto_rico is not None  # every US zone, Puerto Rico's (21:30) among them
    assert puerto_rico.zone == "America/Puerto_Rico"


def test_regions_from_phonenumbers_descriptions() -> None:
    assert region_from_description("Florida", "US") == "US-FL"
    assert region_from_description("New York, NY", "US") == "US-NY"
    assert region_from_description("", "US") == "US"
    assert region_from_description("London", "GB") == "GB"


def test_a_rule_that_does_not_cross_midnight() -> None:
    lunch = QuietRule(region="US", start=time(12), end=time(13))
    assert lunch.quiet_at(time(12, 30))
    assert not lunch.quiet_at(time(13))


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"region": "Florida", "start": "20:00", "end": "08:00"}, "String should match"),
        ({"region": "US", "start": "25:00", "end": "08:00"}, "valid time"),
        ({"region": "US", "start": "20:00", "end": "08:00", "purposes": ["spam"]}, "Input should"),
    ],
)
def test_bad_quiet_rules_are_refused(bad: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Policy.model_validate({"quiet_hours": [bad]})
