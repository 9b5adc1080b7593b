"""View rows to and from domain values: the pure part the projector and the readers share.

Events become rows here (a contact's state through a batch, the before/after of an
audit row), and an event gives the fields the audit trail shows of it
(:func:`event_fields`) and the fold's entry (:func:`entry_of`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from dnd_ledger.domain.address import Address
from dnd_ledger.domain.contact import Contact
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
    before: Mapping[Channel, ChannelState],
    after: Mapping[Channel, ChannelState],
    channels: tuple[Channel, ...],
) -> tuple[str, str]:
    """Before/after, as the audit row stores them, of the channels an event names (or,
    when it names none, of those whose status it changed), in that order."""
    chosen = channels or [c for c in ALL_CHANNELS if before[c].status is not after[c].status]
    return (
        orjson.dumps({NAME[c]: NAME[before[c].status] for c in chosen}).decode(),
        orjson.dumps({NAME[c]: NAME[after[c].status] for c in chosen}).decode(),
    )


@dataclass(frozen=True, slots=True)
class EventFields:
    """What an audit row shows of its event beyond where it sits in the log and what it
    changed: each derived from the stored event alone, as text (JSON for effect data
    and detail)."""

    occurred_at: str
    recorded_at: str
    source: str | None
    actor: str | None
    channels: str
    effect: str
    effect_data: str
    idempotency_key: str | None
    policy_version: str | None
    evidence: str | None
    detail: str


def event_name(e: Any) -> str:
    """The name the audit trail gives an event (an address's events are prefixed)."""
    if isinstance(e, Address.SignalRecorded):
        return f"Address.{e.event}"
    if isinstance(e, Address.Claimed | Address.Released):
        return f"Address.{type(e).__name__}"
    if isinstance(e, Address.Event):
        return "Address.Seen"
    return type(e).__name__


def event_fields(e: Any) -> EventFields:
    """The audit fields of a contact's or an address's event (see :class:`EventFields`)."""
    if isinstance(e, Address.Event):
        return _address_fields(e)
    if isinstance(e, Contact.DndEvent):
        effect = Effect.from_dict(e.effect)
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
    return EventFields(
        iso(getattr(e, "occurred_at", e.timestamp)), iso(e.timestamp),
        text(getattr(e, "source", None)), getattr(e, "actor", None),
        ",".join(NAME[c] for c in channels), words, dumps(effect_data),
        getattr(e, "idempotency_key", None), getattr(e, "policy_version", None),
        evidence_of(detail), dumps(detail),
    )  # fmt: skip


def _address_fields(e: Any) -> EventFields:
    channels, words, effect_data, detail = "", "none", "{}", {}
    source = actor = key = policy = None
    if isinstance(e, Address.Claimed | Address.Released):
        detail = {"contact_id": e.contact_id}
    elif isinstance(e, Address.SignalRecorded):
        effect = Effect.from_dict(e.effect)
        words = effect_words(effect)
        channels = ",".join(NAME[c] for c in effect.channels)
        effect_data, detail = dumps(e.effect), e.detail
        source, actor, key, policy = text(e.source), e.actor, e.idempotency_key, e.policy_version
    return EventFields(
        iso(getattr(e, "occurred_at", e.timestamp)), iso(e.timestamp), source, actor,
        channels, words, effect_data, key, policy, evidence_of(detail), dumps(detail),
    )  # fmt: skip


def contact_audit_row(
    position: int, e: Any, location_id: str, contact_id: str, before: str, after: str
) -> tuple[Any, ...]:
    """The audit row of a contact's event (see ``_AUDIT_INSERT`` for the columns):
    where it is and what it changed; the rest is read from the event
    (:mod:`dnd_ledger.projections.audit_trail`)."""
    return (position, str(e.originator_id), e.originator_version, location_id, contact_id,
            None, type(e).__name__, before, after)  # fmt: skip


def address_audit_row(position: int, e: Any, location_id: str, ref: str) -> tuple[Any, ...]:
    """The audit row of an address's event (see :func:`contact_audit_row`)."""
    return (position, str(e.originator_id), e.originator_version, location_id, None, ref,
            event_name(e), "{}", "{}")  # fmt: skip


def entry_of(e: Any, effect: Effect | None = None) -> Entry:
    """A DND event as the fold's entry (``effect``: its effect, when already decoded)."""
    return Entry(
        occurred_at=utc(e.occurred_at),
        recorded_at=utc(e.timestamp),
        seq=e.originator_version,
        event=type(e).__name__,
        event_id=f"{e.originator_id}:{e.originator_version}",
        effect=Effect.from_dict(e.effect) if effect is None else effect,
    )


def evidence_of(detail: dict[str, Any]) -> str | None:
    for key in ("evidence_ref", "body_ref", "message_id", "provider_event_id"):
        if detail.get(key):
            return str(detail[key])
    return None


def utc(t: datetime) -> datetime:
    """A time in UTC (the views' and the fold's timeline)."""
    return t if t.tzinfo is UTC else t.astimezone(UTC)


def iso(t: datetime) -> str:
    """A time as the views store it: UTC, ISO 8601 to the microsecond."""
    return utc(t).isoformat(timespec="microseconds")


def dumps(obj: Any) -> str:
    """JSON as the views store it (sorted keys), for effect data and detail."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode()


def text(v: Any) -> str | None:
    """An enum's value or any other value as text (None stays None)."""
    return None if v is None else str(v.value if hasattr(v, "value") else v)
