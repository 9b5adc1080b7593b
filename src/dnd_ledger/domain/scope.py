"""Revocation scope: which channels an opt-out blocks, by the date it occurred.

Primary texts:

- FCC 24-24 (Report and Order, CG Docket No. 02-278, adopted 2024-02-15): a
  consumer may revoke consent by any reasonable means; revocations are honoured
  within 10 business days (47 CFR 64.1200(a)(10), in force 2025-04-11).
- 47 CFR 64.1200(a)(10), "revoke-all": a revocation applies to all future
  robocalls *and* robotexts from the caller, not just the channel it came on.
  Its effective date was delayed to 2026-04-11 and then, by the Consumer and
  Governmental Affairs Bureau's order of 2026-01-06 (CG Docket No. 02-278),
  to 2027-01-31. An FNPRM (2025-10-28) may still change it, which
  is why the rule is policy data with a date, not code.

A :class:`ScopeRule` applies to opt-outs that *occurred* on or after its date
(00:00 UTC of that day, which is before midnight anywhere in the United
States: the safe side); earlier opt-outs keep the scope they had. The scope is
computed once, when the opt-out is recorded, and stored in the event's effect,
so replays, past-time queries and the offline bundle verifier need no policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dnd_ledger.domain.state import Effect
from dnd_ledger.domain.values import Channel


class ScopeRule(BaseModel):
    """From ``effective_from`` on, an opt-out on one of ``opt_out_on`` blocks ``blocks``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9.-]*$")
    effective_from: date
    opt_out_on: tuple[Channel, ...] = Field(min_length=1)
    blocks: tuple[Channel, ...] = Field(min_length=1)
    citation: str = ""

    @model_validator(mode="after")
    def _blocks_its_own_channels(self) -> ScopeRule:
        missing = [c.value for c in self.opt_out_on if c not in self.blocks]
        if missing:
            raise ValueError(
                f"scope rule {self.name!r}: an opt-out always blocks its own channel; "
                f"add {missing} to blocks"
            )
        return self

    @property
    def starts(self) -> datetime:
        return datetime.combine(self.effective_from, time(0), tzinfo=UTC)


REVOKE_ALL = ScopeRule(
    name="revoke-all",
    effective_from=date(2027, 1, 31),
    opt_out_on=(Channel.SMS, Channel.CALL),
    blocks=(Channel.SMS, Channel.CALL),
    citation="47 CFR 64.1200(a)(10) (FCC 24-24), effective 2027-01-31 per CGB order 2026-01-06",
)
DEFAULT_SCOPE: tuple[ScopeRule, ...] = (REVOKE_ALL,)


def check_rules(rules: Sequence[ScopeRule]) -> None:
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise ValueError(f"scope rule names must be unique: {names}")


def rule_in_force(rules: Sequence[ScopeRule], channel: Channel, at: datetime) -> ScopeRule | None:
    """The newest rule in force at ``at`` for an opt-out on ``channel`` (None: its own only)."""
    found: ScopeRule | None = None
    for r in rules:
        newer = found is None or r.effective_from > found.effective_from
        if channel in r.opt_out_on and r.starts <= at and newer:
            found = r
    return found


def scoped(
    rules: Sequence[ScopeRule], effect: Effect, at: datetime, detail: dict[str, Any]
) -> tuple[Effect, dict[str, Any]]:
    """An opt-out's effect widened by the rule in force when it occurred, and its
    detail naming that rule (the audit trail's answer to "why is call blocked?")."""
    if len(effect.channels) != 1:
        return effect, detail
    own = effect.channels[0]
    rule = rule_in_force(rules, own, at)
    if rule is None:
        return effect, detail
    extra = tuple(c for c in rule.blocks if c != own)
    if not extra:
        return effect, {**detail, "scope_rule": rule.name}
    names = ", ".join(c.value for c in extra)
    widened = replace(
        effect,
        channels=(own, *extra),
        message=f"{effect.message}; {names} blocked too by scope rule {rule.name} "
        f"(opt-outs from {rule.effective_from.isoformat()})",
    )
    return widened, {**detail, "scope_rule": rule.name, "widened_to": [c.value for c in extra]}


def start_reach(rules: Sequence[ScopeRule], channel: Channel) -> tuple[Channel, ...]:
    """Other channels a START on ``channel`` reaches: wherever an opt-out on it could
    have reached. There it lifts only blocks set by the same address."""
    reach: list[Channel] = []
    for r in rules:
        if channel in r.opt_out_on:
            reach.extend(c for c in r.blocks if c != channel and c not in reach)
    return tuple(reach)
