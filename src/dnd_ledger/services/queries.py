"""The queries: a contact's status, whether we may message it, its history.

They read the views (checked current first) and return read models, never aggregates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dnd_ledger.domain.contact import Contact
from dnd_ledger.domain.decide import Decision, decide, decide_channel
from dnd_ledger.domain.errors import UnknownContact
from dnd_ledger.domain.inputs import check_id
from dnd_ledger.domain.keys import contact_uuid
from dnd_ledger.domain.state import ChannelState, fold, overall
from dnd_ledger.domain.timecheck import check_query_time
from dnd_ledger.domain.values import ALL_CHANNELS, Channel, Direction, Mode, Overall
from dnd_ledger.services.ports import Ledger, Store


@dataclass(frozen=True)
class StatusView:
    location_id: str
    contact_id: str
    dnd: Overall
    channels: dict[Channel, ChannelState]
    as_of: datetime
    known_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "location_id": self.location_id,
            "contact_id": self.contact_id,
            "dnd": self.dnd.value,
            "channels": {c.value: self.channels[c].to_json() for c in ALL_CHANNELS},
            "as_of": self.as_of.isoformat(),
            "known_at": self.known_at.isoformat(),
        }


@dataclass(frozen=True)
class HistoryItem:
    version: int
    event: str
    occurred_at: datetime
    recorded_at: datetime
    source: str
    actor: str | None
    idempotency_key: str | None
    policy_version: str
    effect: dict[str, Any]
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "event": self.event,
            "occurred_at": self.occurred_at.isoformat(),
            "recorded_at": self.recorded_at.isoformat(),
            "source": self.source,
            "actor": self.actor,
            "idempotency_key": self.idempotency_key,
            "policy_version": self.policy_version,
            "effect": self.effect,
            "detail": self.detail,
        }


def load_contact(store: Store, location_id: str, contact_id: str) -> Contact:
    check_id("location_id", location_id)
    check_id("contact_id", contact_id)
    found = store.get_aggregate(contact_uuid(location_id, contact_id))
    if not isinstance(found, Contact):
        raise UnknownContact.of(location_id, contact_id)
    return found


def status(
    ledger: Ledger, location_id: str, contact_id: str, *,
    as_of: datetime | None = None, known_at: datetime | None = None,
) -> StatusView:  # fmt: skip
    """Per-channel state: from the status view now, from the history otherwise."""
    check_id("location_id", location_id)
    check_id("contact_id", contact_id)
    now = ledger.clock()
    # Checked (aware, in range); echoed back in the offset they were given in.
    check_query_time("as_of", as_of)
    check_query_time("known_at", known_at)
    ledger.ensure_current()
    channels = ledger.views.channels(location_id, contact_id)
    if channels is None:
        raise UnknownContact.of(location_id, contact_id)
    if as_of is not None or known_at is not None:
        _registered_by(ledger, location_id, contact_id, as_of, known_at)
        entries = ledger.views.entries(location_id, contact_id, as_of, known_at)
        channels = fold(entries).channels()
    return StatusView(
        location_id, contact_id, overall(channels), channels, as_of or now, known_at or now
    )


def can_send(
    ledger: Ledger, location_id: str, contact_id: str, channel: Channel, *,
    direction: Direction = Direction.OUTBOUND, mode: Mode = Mode.AUTOMATED,
    as_of: datetime | None = None, known_at: datetime | None = None, checked: bool = False,
) -> Decision:  # fmt: skip
    """May we message this contact on this channel? One view row on the hot path.

    ``checked``: the caller has just called ``ensure_current`` for this very request
    (a batch of decisions shares one check); never pass it otherwise.
    """
    if as_of is None and known_at is None:
        if checked:
            found = ledger.views.channel(location_id, contact_id, channel)
        else:
            found = ledger.views.current_channel(location_id, contact_id, channel, ledger.freshness)
        if found is not None:
            return decide_channel(found[0], found[1], channel, direction, mode)
        check_id("location_id", location_id)
        check_id("contact_id", contact_id)
        raise UnknownContact.of(location_id, contact_id)
    view = status(ledger, location_id, contact_id, as_of=as_of, known_at=known_at)
    return decide(view.channels, channel, direction, mode)


def _registered_by(
    ledger: Ledger, location_id: str, contact_id: str,
    as_of: datetime | None, known_at: datetime | None,
) -> None:  # fmt: skip
    """A past-time query about a contact must fall after its registration: before
    it, the ledger knew nothing of the contact, and "no DND" would be a guess."""
    with ledger.write_lock:
        contact = load_contact(ledger, location_id, contact_id)
    for name, t, since in (("as_of", as_of, contact.registered_at),
                           ("known_at", known_at, contact.created_on)):  # fmt: skip
        if t is not None and t < since:
            raise UnknownContact(
                f"contact {contact_id!r} was not registered in location {location_id!r} "
                f"at {t.isoformat()} ({name}): it was registered at {since.isoformat()}"
            )


def history(ledger: Ledger, location_id: str, contact_id: str) -> list[HistoryItem]:
    load_contact(ledger, location_id, contact_id)
    items = []
    for e in ledger.events.get(contact_uuid(location_id, contact_id)):
        assert isinstance(e, Contact.Event)
        name = type(e).__name__
        d = e.__dict__
        items.append(
            HistoryItem(
                version=e.originator_version,
                event=name,
                occurred_at=d.get("occurred_at") or e.timestamp,
                recorded_at=e.timestamp,
                source=str(d.get("source", "")),
                actor=d.get("actor"),
                idempotency_key=d.get("idempotency_key"),
                policy_version=d.get("policy_version", ""),
                effect=d.get("effect", {}),
                detail=_history_detail(name, d),
            )
        )
    return items


def contact_addresses(ledger: Ledger, location_id: str, contact_id: str) -> dict[str, list[str]]:
    with ledger.write_lock:
        contact = load_contact(ledger, location_id, contact_id)
        return {"phones": list(contact.phones), "emails": list(contact.emails)}


def _history_detail(name: str, d: dict[str, Any]) -> dict[str, Any]:
    if name in ("Registered", "AddressesAdded", "AddressRemoved"):
        addresses = {"phones": list(d.get("phones", [])), "emails": list(d.get("emails", []))}
        return {**addresses, **d.get("detail", {})}
    return dict(d.get("detail", {}))
