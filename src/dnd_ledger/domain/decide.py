"""Pure send/receive decisions from a contact's channel states.

Every decision names the rule that made it and, when DND is the reason, the
event that caused that DND.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dnd_ledger.domain.state import ChannelState, overall
from dnd_ledger.domain.values import Channel, Direction, DndKind, Mode, Overall


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    channel: Channel
    direction: Direction
    mode: Mode
    status: DndKind
    reason: str
    code: str | None
    rule: str
    event: str | None = None
    event_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "channel": self.channel.value,
            "direction": self.direction.value,
            "mode": self.mode.value,
            "status": self.status.value,
            "reason": self.reason,
            "code": self.code,
            "rule": self.rule,
            "event": self.event,
        }


def decide(
    channels: Mapping[Channel, ChannelState],
    channel: Channel,
    direction: Direction = Direction.OUTBOUND,
    mode: Mode = Mode.AUTOMATED,
) -> Decision:
    return decide_channel(channels[channel], overall(channels), channel, direction, mode)


def decide_channel(
    state: ChannelState,
    contact_overall: Overall,
    channel: Channel,
    direction: Direction = Direction.OUTBOUND,
    mode: Mode = Mode.AUTOMATED,
) -> Decision:
    """The decision from one channel's state and the contact's overall status."""

    def made(allowed: bool, reason: str, rule: str, cause: bool = True) -> Decision:
        return Decision(
            allowed=allowed,
            channel=channel,
            direction=direction,
            mode=mode,
            status=state.status,
            reason=reason,
            code=state.code if cause else None,
            rule=rule,
            event=state.event if cause else None,
            event_id=state.event_id if cause else None,
        )

    if direction is Direction.OUTBOUND:
        if state.status is DndKind.INACTIVE:
            return made(True, f"no DND on {channel.value}", "outbound.no-dnd", cause=False)
        kind = "permanent" if state.status is DndKind.PERMANENT else "temporary"
        # DND blocks every outbound message, automated and manual alike.
        return made(
            False,
            f"{kind} DND on {channel.value} since {_iso(state)} ({state.event}: {state.message})",
            "outbound.dnd-blocks-all",
        )

    # Inbound: only a contact whose DND is on for every channel is gated.
    if contact_overall is not Overall.ON:
        return made(
            True, "inbound accepted: DND is not on for all channels", "inbound.accept", cause=False
        )
    if channel is Channel.CALL:
        return made(
            False, "inbound call rejected: DND is on for all channels", "inbound.call-rejected"
        )
    return made(
        False,
        f"inbound {channel.value} accepted by the carrier but blocked at system level "
        "(not delivered to the inbox): DND is on for all channels; "
        "opt-in and opt-out keywords are still processed",
        "inbound.blocked-at-system-level",
    )


def _iso(state: ChannelState) -> str:
    return state.since.isoformat() if state.since else "unknown"
