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
    if direction is Direction.OUTBOUND:
        if state.status is DndKind.INACTIVE:
            return _plain(channel, direction, mode, state.status, "outbound.no-dnd")
        kind = "permanent" if state.status is DndKind.PERMANENT else "temporary"
        # DND blocks every outbound message, automated and manual alike.
        return _caused(
            state, channel, direction, mode,
            f"{kind} DND on {channel.value} since {_iso(state)} ({state.event}: {state.message})",
            "outbound.dnd-blocks-all",
        )  # fmt: skip

    # Inbound: only a contact whose DND is on for every channel is gated.
    if contact_overall is not Overall.ON:
        return _plain(channel, direction, mode, state.status, "inbound.accept")
    if channel is Channel.CALL:
        return _caused(
            state, channel, direction, mode,
            "inbound call rejected: DND is on for all channels", "inbound.call-rejected",
        )  # fmt: skip
    return _caused(
        state, channel, direction, mode,
        f"inbound {channel.value} accepted by the carrier but blocked at system level "
        "(not delivered to the inbox): DND is on for all channels; "
        "opt-in and opt-out keywords are still processed",
        "inbound.blocked-at-system-level",
    )  # fmt: skip


def _caused(
    state: ChannelState, channel: Channel, direction: Direction, mode: Mode, reason: str, rule: str
) -> Decision:
    """A refusal: it names the code and the event that caused the DND."""
    return Decision(
        False, channel, direction, mode, state.status, reason, state.code, rule,
        state.event, state.event_id,
    )  # fmt: skip


#: Decisions that name no cause depend only on these inputs: made once, then shared.
_PLAIN: dict[tuple[Channel, Direction, Mode, DndKind, str], Decision] = {}
_PLAIN_REASONS = {
    "outbound.no-dnd": "no DND on {channel}",
    "inbound.accept": "inbound accepted: DND is not on for all channels",
}


def _plain(
    channel: Channel, direction: Direction, mode: Mode, status: DndKind, rule: str
) -> Decision:
    key = (channel, direction, mode, status, rule)
    found = _PLAIN.get(key)
    if found is None:
        reason = _PLAIN_REASONS[rule].format(channel=channel.value)
        found = _PLAIN[key] = Decision(True, channel, direction, mode, status, reason, None, rule)
    return found


def _iso(state: ChannelState) -> str:
    return state.since.isoformat() if state.since else "unknown"
