"""Per-channel DND state and the fold that rebuilds it from recorded effects.

Each event carries an :class:`Effect`, computed by the policy when the event was
recorded. A contact's state is the fold of its effects ordered by
``occurred_at`` (ties: recording order), each effect applying on its own terms:
a user's clear removes temporary DND only, whatever came before it in the fold.

A channel may be DND for several reasons at once (a STOP from one phone, a
carrier error on another, a user's toggle); each reason is a :class:`Block`.
The channel's status is the strongest of its blocks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from dnd_ledger.domain.values import ALL_CHANNELS, Channel, DndKind, Overall

#: Origin of a block set on the contact record itself rather than by an address.
CONTACT_ORIGIN = "contact"


class Op(StrEnum):
    NONE = "none"  # recorded for the audit trail, changes no channel
    BLOCK = "block"  # add a reason for DND (temporary or permanent)
    CLEAR_TEMPORARY = "clear-temporary"  # a user's clear: temporary DND only
    OPT_IN = "opt-in"  # START from an address: its own blocks and all temporary ones
    CLEAR_ALL = "clear-all"  # support-approved opt-in: everything on the channels
    CLEAR_REVIEW = "clear-review"  # a dismissed review: that origin's review DND only


@dataclass(frozen=True, slots=True)
class Effect:
    op: Op
    channels: tuple[Channel, ...] = ()
    level: DndKind | None = None
    code: str | None = None
    message: str | None = None
    origin: str = CONTACT_ORIGIN
    suppression: bool = False  # clearing needs the suppression-removed attestation
    attested: bool = False  # the user attested the suppression was removed
    #: OPT_IN only: other channels where this origin's own blocks are lifted too
    #: (where a revoke-all opt-out from the same address reached).
    also: tuple[Channel, ...] = ()

    @property
    def touched(self) -> tuple[Channel, ...]:
        return (*self.channels, *self.also) if self.also else self.channels

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"op": self.op.value, "channels": [c.value for c in self.channels]}
        if self.level is not None:
            d["level"] = self.level.value
        for name in ("code", "message"):
            if getattr(self, name) is not None:
                d[name] = getattr(self, name)
        if self.origin != CONTACT_ORIGIN:
            d["origin"] = self.origin
        if self.suppression:
            d["suppression"] = True
        if self.attested:
            d["attested"] = True
        if self.also:
            d["also"] = [c.value for c in self.also]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Effect:
        # Members by dict lookup (an Enum call is several times slower); a value that
        # is not one goes to the Enum, which raises as before.
        level = d.get("level")
        return cls(
            op=_OPS.get(d["op"]) or Op(d["op"]),
            channels=_channels(d.get("channels", ())),
            level=(_LEVELS.get(level) or DndKind(level)) if level is not None else None,
            code=d.get("code"),
            message=d.get("message"),
            origin=d.get("origin", CONTACT_ORIGIN),
            suppression=bool(d.get("suppression", False)),
            attested=bool(d.get("attested", False)),
            also=_channels(d.get("also", ())),
        )


_OPS: dict[Any, Op] = {m.value: m for m in Op}
_LEVELS: dict[Any, DndKind] = {m.value: m for m in DndKind}
_CHANNELS: dict[Any, Channel] = {m.value: m for m in Channel}


def _channels(values: Iterable[Any]) -> tuple[Channel, ...]:
    return tuple(_CHANNELS.get(c) or Channel(c) for c in values)


NO_EFFECT = Effect(op=Op.NONE)


@dataclass(frozen=True, slots=True)
class Block:
    """One reason a channel is DND."""

    level: DndKind
    origin: str
    since: datetime
    code: str | None
    message: str | None
    event: str  # name of the event that caused it
    event_id: str  # "<contact-or-address id>:<version>" of that event
    suppression: bool = False


def block_to_dict(b: Block) -> dict[str, Any]:
    return {
        "level": b.level.value, "origin": b.origin, "since": b.since.isoformat(),
        "code": b.code, "message": b.message, "event": b.event, "event_id": b.event_id,
        "suppression": b.suppression,
    }  # fmt: skip


def block_from_dict(d: Mapping[str, Any]) -> Block:
    return Block(
        level=DndKind(d["level"]), origin=d["origin"], since=datetime.fromisoformat(d["since"]),
        code=d.get("code"), message=d.get("message"), event=d["event"], event_id=d["event_id"],
        suppression=bool(d.get("suppression", False)),
    )  # fmt: skip


class Entry(NamedTuple):
    """An effect in the fold, with both timelines and the event that carried it.

    A named tuple: histories of thousands are built per past-time query, and a
    frozen dataclass costs several times more to construct.
    """

    occurred_at: datetime
    recorded_at: datetime
    seq: int  # recording order within the stream
    event: str
    event_id: str
    effect: Effect


@dataclass(frozen=True, slots=True)
class ChannelState:
    status: DndKind
    since: datetime | None = None
    code: str | None = None
    message: str | None = None
    event: str | None = None
    event_id: str | None = None
    origin: str | None = None
    suppression: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "since": self.since.isoformat() if self.since else None,
            "code": self.code,
            "message": self.message,
        }


INACTIVE = ChannelState(DndKind.INACTIVE)
#: Every channel's state (a contact's channels at one point in its history).
Channels = dict[Channel, ChannelState]
#: A contact's channels before its first event.
ALL_INACTIVE: Mapping[Channel, ChannelState] = dict.fromkeys(ALL_CHANNELS, INACTIVE)


class ChannelChange(NamedTuple):
    """What one event did to a contact: the channels before and after it, and its effect
    (None for an event that is not a DND event)."""

    before: Channels
    after: Channels
    effect: Effect | None


@dataclass
class DndState:
    """The blocks of every channel; a mutable accumulator for the fold."""

    blocks: dict[Channel, list[Block]] = field(
        default_factory=lambda: {c: [] for c in ALL_CHANNELS}
    )
    #: Each channel's state as last computed from its blocks; :meth:`apply` drops the
    #: channels it changes. Not part of the value: two states with equal blocks are equal.
    memo: dict[Channel, ChannelState] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def apply(self, entry: Entry) -> None:
        eff = entry.effect
        memo = self.memo
        for ch in eff.channels:
            memo.pop(ch, None)
        for ch in eff.also:
            memo.pop(ch, None)
        for ch in eff.channels:
            blocks = self.blocks[ch]
            if eff.op is Op.BLOCK:
                assert eff.level is not None
                self._add(blocks, entry, eff)
            elif eff.op is Op.CLEAR_TEMPORARY:
                blocks[:] = [
                    b
                    for b in blocks
                    if b.level is DndKind.PERMANENT or (b.suppression and not eff.attested)
                ]
            elif eff.op is Op.OPT_IN:
                blocks[:] = [
                    b for b in blocks if b.level is DndKind.PERMANENT and b.origin != eff.origin
                ]
            elif eff.op is Op.CLEAR_ALL:
                blocks.clear()
            elif eff.op is Op.CLEAR_REVIEW:
                blocks[:] = [
                    b
                    for b in blocks
                    if not (
                        b.level is DndKind.ACTIVE and b.origin == eff.origin and b.code == "review"
                    )
                ]
        for ch in eff.also:  # OPT_IN's reach: only what this origin set there
            self.blocks[ch][:] = [b for b in self.blocks[ch] if b.origin != eff.origin]

    @staticmethod
    def _add(blocks: list[Block], entry: Entry, eff: Effect) -> None:
        assert eff.level is not None
        for i, b in enumerate(blocks):
            if b.level is eff.level and b.origin == eff.origin:
                # The same kind of reason from the same origin: it keeps its
                # original since, takes the newest explanation.
                blocks[i] = replace(
                    b,
                    code=eff.code,
                    message=eff.message,
                    event=entry.event,
                    event_id=entry.event_id,
                    suppression=b.suppression or eff.suppression,
                )
                return
        blocks.append(
            Block(
                level=eff.level,
                origin=eff.origin,
                since=entry.occurred_at,
                code=eff.code,
                message=eff.message,
                event=entry.event,
                event_id=entry.event_id,
                suppression=eff.suppression,
            )
        )

    def channel(self, ch: Channel) -> ChannelState:
        found = self.memo.get(ch)
        if found is None:
            found = self.memo[ch] = self._channel(ch)
        return found

    def _channel(self, ch: Channel) -> ChannelState:
        blocks = self.blocks[ch]
        if not blocks:
            return INACTIVE
        top = max(b.level is DndKind.PERMANENT for b in blocks)
        level = DndKind.PERMANENT if top else DndKind.ACTIVE
        first = min((b for b in blocks if b.level is level), key=lambda b: b.since)
        return ChannelState(
            status=level,
            since=first.since,
            code=first.code,
            message=first.message,
            event=first.event,
            event_id=first.event_id,
            origin=first.origin,
            suppression=any(b.suppression for b in blocks if b.level is DndKind.ACTIVE),
        )

    def to_list(self) -> list[dict[str, Any]]:
        return [
            {"channel": ch.value, **block_to_dict(b)} for ch, bs in self.blocks.items() for b in bs
        ]

    @classmethod
    def from_list(cls, items: Iterable[Mapping[str, Any]]) -> DndState:
        state = cls()
        for d in items:
            state.blocks[Channel(d["channel"])].append(block_from_dict(d))
        return state

    def channels(self) -> Channels:
        return {c: self.channel(c) for c in ALL_CHANNELS}

    def permanent_blocks(self, ch: Channel) -> list[Block]:
        return [b for b in self.blocks[ch] if b.level is DndKind.PERMANENT]

    def suppression_blocks(self, ch: Channel) -> list[Block]:
        return [b for b in self.blocks[ch] if b.level is DndKind.ACTIVE and b.suppression]


def overall(channels: Mapping[Channel, ChannelState]) -> Overall:
    dnd = sum(1 for s in channels.values() if s.status is not DndKind.INACTIVE)
    if dnd == 0:
        return Overall.OFF
    if dnd == len(ALL_CHANNELS):
        return Overall.ON
    return Overall.PARTIAL


def sort_key(e: Entry) -> tuple[datetime, int]:
    return (e.occurred_at, e.seq)


def fold(
    entries: Iterable[Entry],
    as_of: datetime | None = None,
    known_at: datetime | None = None,
) -> DndState:
    """The state at effective time ``as_of`` as known at ``known_at`` (None: everything)."""
    chosen = [
        e
        for e in entries
        if (as_of is None or e.occurred_at <= as_of)
        and (known_at is None or e.recorded_at <= known_at)
    ]
    chosen.sort(key=sort_key)
    state = DndState()
    for e in chosen:
        state.apply(e)
    return state


def describe(block: Block) -> str:
    kind = "permanent" if block.level is DndKind.PERMANENT else "temporary"
    origin = "" if block.origin == CONTACT_ORIGIN else f" from address {block.origin[:12]}"
    code = f" code {block.code}" if block.code else ""
    return f"{kind} DND by {block.event}{code}{origin} since {block.since.isoformat()}"
