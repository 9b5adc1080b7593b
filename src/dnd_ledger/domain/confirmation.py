"""The one confirmation text after an opt-out, as data and pure functions.

FCC 24-24 (Report and Order, CG Docket No. 02-278, 2024-02-15) and 47 CFR
64.1200(a)(12): after a consumer revokes consent, the sender may send one
text confirming the opt-out, with no marketing; it is presumed lawful when
sent within five minutes of the revocation. Only the channel's own opt-out
keyword (OptOutKeyword) opens that window: any other DND keeps the channel
closed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from dnd_ledger.domain.values import Channel

if TYPE_CHECKING:
    from dnd_ledger.domain.address import Signal

OPT_OUT_EVENT = "OptOutKeyword"
CONFIRMATION_EVENT = "OptOutConfirmationSent"


class ConfirmationRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Seconds after the opt-out occurred in which the one confirmation may go out.
    window_seconds: int = Field(default=300, ge=0, le=86_400)
    channels: tuple[Channel, ...] = (Channel.SMS,)
    citation: str = "FCC 24-24; 47 CFR 64.1200(a)(12): one confirmation text within 5 minutes"


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    rule: str
    reason: str


def latest_opt_out(
    signals: Iterable[Signal], channel: Channel, by: datetime | None = None
) -> Signal | None:
    """The address's newest opt-out keyword that came in on ``channel`` (by ``by``)."""
    found: Signal | None = None
    for s in signals:
        came_on = (s.effect.get("channels") or [None])[0]
        mine = s.event == OPT_OUT_EVENT and came_on == channel.value
        in_time = by is None or s.occurred_at <= by
        if mine and in_time and (found is None or s.occurred_at >= found.occurred_at):
            found = s
    return found


def confirmation_of(signals: Iterable[Signal], opt_out: Signal) -> Signal | None:
    """The confirmation recorded for that opt-out, if any."""
    for s in signals:
        if s.event == CONFIRMATION_EVENT and s.detail.get("opt_out") == opt_out.event_id:
            return s
    return None


def delay_seconds(opt_out: Signal, at: datetime) -> float:
    return round((at - opt_out.occurred_at).total_seconds(), 3)


def judge(
    rule: ConfirmationRule, opt_out: Signal, confirmed: Signal | None, at: datetime
) -> Verdict:
    """May the one confirmation text for ``opt_out`` go out at ``at``?"""
    when = opt_out.occurred_at.isoformat()
    if confirmed is not None:
        return Verdict(False, "confirmation.already-sent",
                       f"a confirmation was already recorded for the opt-out at {when} "
                       f"(message {confirmed.detail.get('message_sid')}); only one is allowed")  # fmt: skip
    delay = delay_seconds(opt_out, at)
    if delay > rule.window_seconds:
        return Verdict(False, "confirmation.window-passed",
                       f"the opt-out at {when} was {delay:.0f} s ago: the confirmation window "
                       f"is {rule.window_seconds} s")  # fmt: skip
    return Verdict(True, "confirmation.within-window",
                   f"one opt-out confirmation text allowed: opt-out at {when}, {delay:.0f} s ago "
                   f"(window {rule.window_seconds} s), none recorded yet")  # fmt: skip
