"""Quiet hours for marketing, by the recipient's region and local time.

Primary texts: 47 CFR 64.1200(c)(1) (no telephone solicitation before 8:00 or
after 21:00 at the called party's location); the Florida Telephone
Solicitation Act (Fla. Stat. 501.059), the Oklahoma Telephone Solicitation Act
and Maryland's Stop the Spam Calls Act: 8:00 to 20:00. Their limit of three messages per 24 hours on one subject is not kept
here.

A rule ``{region, start, end, channels, purposes}`` is quiet from ``start`` to
``end`` local time (across midnight when ``start > end``). Region ``US``
matches every ``US-XX``. When the recipient's zone is not certain (a number
whose area spans several zones, or none known), quiet in any candidate zone is
quiet: the safe side.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dnd_ledger.domain.values import Channel, Purpose

#: Every zone of the United States: the candidates when nothing narrower is known.
US_ZONES = (
    "America/New_York", "America/Chicago", "America/Denver", "America/Phoenix",
    "America/Los_Angeles", "America/Anchorage", "America/Adak", "Pacific/Honolulu",
    "America/Puerto_Rico", "America/St_Thomas", "Pacific/Guam", "Pacific/Saipan",
    "Pacific/Pago_Pago",
)  # fmt: skip

_STATES = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA",
    "Colorado": "CO", "Connecticut": "CT", "Delaware": "DE", "District of Columbia": "DC",
    "Washington D.C.": "DC", "Florida": "FL", "Georgia": "GA", "Hawaii": "HI", "Idaho": "ID",
    "Illinois": "IL", "Indiana": "IN", "Iowa": "IA", "Kansas": "KS", "Kentucky": "KY",
    "Louisiana": "LA", "Maine": "ME", "Maryland": "MD", "Massachusetts": "MA",
    "Michigan": "MI", "Minnesota": "MN", "Mississippi": "MS", "Missouri": "MO",
    "Montana": "MT", "Nebraska": "NE", "Nevada": "NV", "New Hampshire": "NH",
    "New Jersey": "NJ", "New Mexico": "NM", "New York": "NY", "North Carolina": "NC",
    "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK", "Oregon": "OR",
    "Pennsylvania": "PA", "Rhode Island": "RI", "South Carolina": "SC", "South Dakota": "SD",
    "Tennessee": "TN", "Texas": "TX", "Utah": "UT", "Vermont": "VT", "Virginia": "VA",
    "Washington": "WA", "West Virginia": "WV", "Wisconsin": "WI", "Wyoming": "WY",
}  # fmt: skip


def check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (an IANA name such as America/New_York)"
        ) from None
    return name


class QuietRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str = Field(pattern=r"^[A-Z]{2}(-[A-Z]{2})?$")
    start: time
    end: time
    channels: tuple[Channel, ...] = (Channel.SMS, Channel.CALL)
    purposes: tuple[Purpose, ...] = (Purpose.MARKETING,)
    citation: str = ""

    @field_validator("start", "end")
    @classmethod
    def _whole_minutes(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("quiet hours are local times: no zone")
        return value

    @property
    def name(self) -> str:
        return f"quiet-hours.{self.region}"

    def matches(self, region: str) -> bool:
        return region == self.region or region.startswith(f"{self.region}-")

    def quiet_at(self, local: time) -> bool:
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


_STATE_RULE = "state telephone solicitation acts (FL: Fla. Stat. 501.059; OK; MD): 8:00-20:00"
DEFAULT_QUIET: tuple[QuietRule, ...] = (
    QuietRule(region="US", start=time(21), end=time(8),
              citation="47 CFR 64.1200(c)(1): 8:00-21:00 at the called party's location"),
    QuietRule(region="US-FL", start=time(20), end=time(8), citation=_STATE_RULE),
    QuietRule(region="US-OK", start=time(20), end=time(8), citation=_STATE_RULE),
    QuietRule(region="US-MD", start=time(20), end=time(8), citation=_STATE_RULE),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Place:
    """Where the recipient may be: regions and candidate time zones."""

    regions: tuple[str, ...]
    zones: tuple[str, ...]


def region_from_description(description: str, country: str) -> str:
    """``US-FL`` from phonenumbers' "Florida" or "Miami, FL"; the country alone otherwise."""
    if country != "US":
        return country
    if description in _STATES:
        return f"US-{_STATES[description]}"
    _, _, tail = description.rpartition(", ")
    return f"US-{tail}" if tail in _STATES.values() else "US"


@dataclass(frozen=True, slots=True)
class Quiet:
    rule: QuietRule
    zone: str
    local: datetime

    def reason(self) -> str:
        return (
            f"quiet hours for {self.rule.region} ({self.rule.start:%H:%M}-{self.rule.end:%H:%M} "
            f"local): it is {self.local:%H:%M} in {self.zone} ({self.local:%Z})"
        )


def quiet(
    rules: Sequence[QuietRule], channel: Channel, purpose: Purpose, at: datetime, place: Place
) -> Quiet | None:
    """The quiet-hours rule that blocks this message now, or None. The most specific
    region's rule is reported first; any candidate zone being quiet is enough. A region
    known only to its country (``US``: no state recorded or found) may be any of its
    states, so every state's rule applies too (the safe side)."""
    zones = place.zones or US_ZONES
    applicable = [
        r for r in rules
        if channel in r.channels and purpose in r.purposes
        and any(r.matches(region) or r.region.startswith(f"{region}-")
                for region in place.regions if region)
    ]  # fmt: skip
    applicable.sort(key=lambda r: -len(r.region))
    for r in applicable:
        for zone in zones:
            local = at.astimezone(ZoneInfo(zone))
            if r.quiet_at(local.time().replace(tzinfo=None)):
                return Quiet(r, zone, local)
    return None


def merge_places(places: Iterable[Place]) -> Place:
    regions: list[str] = []
    zones: list[str] = []
    for p in places:
        regions.extend(r for r in p.regions if r not in regions)
        zones.extend(z for z in p.zones if z not in zones)
    return Place(tuple(regions), tuple(zones))
