"""View rows to and from domain values: the pure part the projector and the readers share.

Events become rows here (a contact's state through a batch, the before/after and
effect words of an audit row), and audit rows become the fold's entries again.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from dnd_ledger.domain.address import Address
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


def contact_audit_row(
    position: int,
    e: Any,
    location_id: str,
    contact_id: str,
    effect: Effect | None,
    before: str,
    after: str,
) -> tuple[Any, ...]:
    """The audit row of a contact's event (see ``_AUDIT_INSERT`` for the columns);
    ``effect`` is a DND event's decoded effect, ``before``/``after`` what it changed."""
    if effect is not None:
        channels, words, effect_data, detail = (
            effect.touched,
            effect_words(effect),
            e.effect,
            e.detail,
        )
    else:
        channels, words, effect_data = (), "none", {}
        detail = {k: list(getattr(e, k)) for k in ("phones", "emails") if hasattr(e, k)}
        detail.update(getattr(e, "detail", {}))
    return (
        position, str(e.originator_id), e.originator_version, location_id, contact_id, None,
        iso(getattr(e, "occurred_at", e.timestamp)), iso(e.timestamp), type(e).__name__,
        text(getattr(e, "source", None)), getattr(e, "actor", None),
        ",".join(NAME[c] for c in channels), words, dumps(effect_data), before, after,
        getattr(e, "idempotency_key", None), getattr(e, "policy_version", None),
        evidence_of(detail), dumps(detail),
    )  # fmt: skip


def address_audit_row(position: int, e: Any, location_id: str, ref: str) -> tuple[Any, ...]:
    """The audit row of an address's event (see :func:`contact_audit_row`)."""
    name, channels, words, effect_data, detail = "Address.Seen", "", "none", "{}", {}
    source = actor = key = policy = None
    if isinstance(e, Address.Claimed | Address.Released):
        name, detail = f"Address.{type(e).__name__}", {"contact_id": e.contact_id}
    elif isinstance(e, Address.SignalRecorded):
        effect = Effect.from_dict(e.effect)
        name, words = f"Address.{e.event}", effect_words(effect)
        channels = ",".join(NAME[c] for c in effect.channels)
        effect_data, detail = dumps(e.effect), e.detail
        source, actor, key, policy = text(e.source), e.actor, e.idempotency_key, e.policy_version
    return (
        position, str(e.originator_id), e.originator_version, location_id, None, ref,
        iso(getattr(e, "occurred_at", e.timestamp)), iso(e.timestamp), name, source, actor,
        channels, words, effect_data, "{}", "{}", key, policy, evidence_of(detail),
        dumps(detail),
    )  # fmt: skip


def evidence_of(detail: dict[str, Any]) -> str | None:
    for key in ("evidence_ref", "body_ref", "message_id", "provider_event_id"):
        if detail.get(key):
            return str(detail[key])
    return None


def iso(t: datetime) -> str:
    """A time as the views store it: UTC, ISO 8601 to the microsecond."""
    if t.tzinfo is not UTC:
        t = t.astimezone(UTC)
    return t.isoformat(timespec="microseconds")


def dumps(obj: Any) -> str:
    """JSON as the views store it (sorted keys), for effect data and detail."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode()


def text(v: Any) -> str | None:
    """An enum's value or any other value as text (None stays None)."""
    return None if v is None else str(v.value if hasattr(v, "value") else v)


_EFFECTS: dict[str, Effect] = {}


def _effect(data: str) -> Effect:
    """An effect from its stored JSON; many events share one (same STOP, same address)."""
    effect = _EFFECTS.get(data)
    if effect is None:
        if len(_EFFECTS) > 50_000:
            _EFFECTS.clear()
        effect = _EFFECTS[data] = Effect.from_dict(orjson.loads(data))
    return effect


#: The audit columns an :class:`Entry` of the fold is made from (see :func:`entry_from_row`).
ENTRY_COLUMNS = "occurred_at, recorded_at, version, event, aggregate_id, effect_data"
#: A contact's entries in log order, the fold's input (params: location, contact).
CONTACT_ENTRIES = (
    f"SELECT {ENTRY_COLUMNS} FROM dnd_audit WHERE location_id = ? AND contact_id = ?"
    " AND effect_data != '{}' ORDER BY position"
)


def entry_from_row(r: tuple[Any, ...]) -> Entry:
    return Entry(
        occurred_at=datetime.fromisoformat(r[0]),
        recorded_at=datetime.fromisoformat(r[1]),
        seq=int(r[2]),
        event=str(r[3]),
        event_id=f"{r[4]}:{r[2]}",
        effect=_effect(r[5]),
    )
