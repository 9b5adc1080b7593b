"""Turning decoded events into view rows: the pure part of the projector."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from dnd_ledger.domain.state import ChannelState, DndState, Effect, Entry, fold, overall
from dnd_ledger.domain.values import ALL_CHANNELS, Channel, DndKind, Overall


@dataclass
class ContactView:
    """A contact's state while the projector works through a batch."""

    aggregate_id: str
    location_id: str
    contact_id: str
    version: int = 0
    last_occurred: datetime | None = None
    state: DndState = field(default_factory=DndState)
    channels: dict[Channel, ChannelState] = field(default_factory=dict)
    overall: Overall = Overall.OFF
    #: Entries of this contact seen in this batch, for a refold on a late event.
    batch_entries: list[Entry] = field(default_factory=list)
    dirty: set[Channel] = field(default_factory=set)
    new: bool = False

    def __post_init__(self) -> None:
        if not self.channels:
            self.channels = self.state.channels()
            self.overall = overall(self.channels)

    def statuses(self) -> dict[str, str]:
        channels = self.channels
        return {NAME[c]: NAME[channels[c].status] for c in ALL_CHANNELS}

    def take(self, entry: Entry, history: list[Entry] | None) -> None:
        """Apply an entry; ``history`` is every earlier entry when it arrived late."""
        self.batch_entries.append(entry)
        if self.last_occurred is None or entry.occurred_at >= self.last_occurred:
            self.last_occurred = entry.occurred_at
            self.state.apply(entry)
            touched = entry.effect.touched
        else:
            assert history is not None
            self.state = fold([*history, entry])
            touched = ALL_CHANNELS
        self.version = entry.seq
        for c in touched:
            now = self.state.channel(c)
            if now != self.channels[c]:
                self.channels[c] = now
                self.dirty.add(c)
        self.overall = overall(self.channels)


# Enum ``.value`` is a slow descriptor; the projector reads these names per event.
NAME: dict[Channel | DndKind | Overall, str] = {
    **{m: m.value for m in Channel},
    **{m: m.value for m in DndKind},
    **{m: m.value for m in Overall},
}
_DIMENSION = {c: f"channel:{c.value}" for c in ALL_CHANNELS}


def stats_keys(cv: ContactView) -> Counter[tuple[str, str]]:
    keys: Counter[tuple[str, str]] = Counter({("overall", NAME[cv.overall]): 1})
    channels = cv.channels
    for c in ALL_CHANNELS:
        keys[(_DIMENSION[c], NAME[channels[c].status])] += 1
    return keys


def effect_words(effect: Effect) -> str:
    if effect.op.value == "block":
        return "permanent DND" if effect.level is DndKind.PERMANENT else "temporary DND"
    return {
        "clear-temporary": "clear temporary DND",
        "opt-in": "opt-in: clear DND from this address",
        "clear-all": "clear all DND",
        "clear-review": "clear the review's temporary DND",
        "none": "none",
    }[effect.op.value]


def changed(
    before: dict[str, str], after: dict[str, str], channels: tuple[Channel, ...]
) -> tuple[str, str]:
    """Before/after of the channels an event names (or of those it changed)."""
    names = [NAME[c] for c in channels] or [k for k in after if before.get(k) != after[k]]
    return (
        orjson.dumps({n: before.get(n, "inactive") for n in names}).decode(),
        orjson.dumps({n: after[n] for n in names}).decode(),
    )


def evidence_of(detail: dict[str, Any]) -> str | None:
    for key in ("evidence_ref", "body_ref", "message_id", "provider_event_id"):
        if detail.get(key):
            return str(detail[key])
    return None
