"""Contacts as the views show them: listing (a page at a time), one contact, an address.

Every read is an indexed query on the views, never a replay of the log. Pages
are keyed on the contact id: the cursor is the last id of the previous page
(opaque to callers), so a page costs the same wherever it starts.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from dnd_ledger.domain.errors import InvalidInput, UnknownContact
from dnd_ledger.domain.values import ALL_CHANNELS, AddressKind
from dnd_ledger.projections.status_row import CHANNEL_COLUMNS, COLUMNS, STATUS_COLUMN, cause_fields
from dnd_ledger.storage.pii import normalise_email, normalise_phone

if TYPE_CHECKING:
    from dnd_ledger.application import DndLedger

DND_VALUES = ("on", "off", "partial")
STATES = ("inactive", "active", "permanent")
CHANNEL_NAMES = tuple(c.value for c in ALL_CHANNELS)
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


def encode_cursor(contact_id: str) -> str:
    return base64.urlsafe_b64encode(contact_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInput("cursor is not one a contacts listing returned") from None


@dataclass(frozen=True)
class Page:
    contacts: list[dict[str, Any]]
    next_cursor: str | None

    def to_json(self) -> dict[str, Any]:
        return {"contacts": self.contacts, "next_cursor": self.next_cursor}


def list_contacts(
    ledger: DndLedger,
    location_id: str,
    *,
    dnd: str | None = None,
    channel: str | None = None,
    state: str | None = None,
    limit: int = DEFAULT_LIMIT,
    after: str | None = None,
) -> Page:
    """One page of the location's contacts, by contact id, with their DND status."""
    if dnd is not None and dnd not in DND_VALUES:
        raise InvalidInput(f"dnd must be one of {', '.join(DND_VALUES)}")
    if (channel is None) != (state is None):
        raise InvalidInput("--channel and --state go together")
    if channel is not None and channel not in CHANNEL_NAMES:
        raise InvalidInput(f"channel must be one of {', '.join(CHANNEL_NAMES)}")
    if state is not None and state not in STATES:
        raise InvalidInput(f"state must be one of {', '.join(STATES)}")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")
    ledger.ensure_current()
    sql = "SELECT c.contact_id, c.overall FROM dnd_status_contacts c"
    where, params = ["c.location_id = ?"], [location_id]
    if channel is not None:
        where.append(f"c.{STATUS_COLUMN[channel]} = ?")  # a column of a known channel
        params.append(str(state))
    if dnd is not None:
        where.append("c.overall = ?")
        params.append(dnd)
    if after is not None:
        where.append("c.contact_id > ?")
        params.append(decode_cursor(after))
    sql += " WHERE " + " AND ".join(where) + f" ORDER BY c.contact_id LIMIT {limit + 1}"
    rows = ledger.views.read(ledger.sql.q(sql), tuple(params))
    more = len(rows) > limit
    rows = rows[:limit]
    states = _channel_states(ledger, location_id, [str(r[0]) for r in rows])
    contacts = [
        {"contact_id": str(cid), "dnd": str(overall), "channels": states.get(str(cid), {})}
        for cid, overall in rows
    ]
    cursor = encode_cursor(str(rows[-1][0])) if more and rows else None
    return Page(contacts, cursor)


def _channel_states(
    ledger: DndLedger, location_id: str, contact_ids: list[str]
) -> dict[str, dict[str, str]]:
    if not contact_ids:
        return {}
    marks = ", ".join("?" for _ in contact_ids)
    statuses = ", ".join(s for s, _k in COLUMNS.values())
    rows = ledger.views.read(
        ledger.sql.q(
            f"SELECT contact_id, {statuses} FROM dnd_status_contacts"
            f" WHERE location_id = ? AND contact_id IN ({marks})"
        ),
        (location_id, *contact_ids),
    )
    out: dict[str, dict[str, str]] = {
        cid: dict.fromkeys(CHANNEL_NAMES, "inactive") for cid in contact_ids
    }
    for cid, *found in rows:
        out[str(cid)] = {ch: str(status) for ch, status in zip(CHANNEL_NAMES, found, strict=True)}
    return out


def show_contact(ledger: DndLedger, location_id: str, contact_id: str) -> dict[str, Any]:
    """The contact's addresses (references), per-channel state and open reviews."""
    ledger.ensure_current()
    q = ledger.sql.q
    head = ledger.views.read(
        q(
            f"SELECT overall, {CHANNEL_COLUMNS} FROM dnd_status_contacts"
            " WHERE location_id = ? AND contact_id = ?"
        ),
        (location_id, contact_id),
    )
    if not head:
        raise UnknownContact.of(location_id, contact_id)
    dnd, *columns = head[0]
    addresses = ledger.views.read(
        q(
            "SELECT kind, ref, since FROM dnd_address_index"
            " WHERE location_id = ? AND contact_id = ? ORDER BY kind, since, ref"
        ),
        (location_id, contact_id),
    )
    channels: dict[str, dict[str, Any]] = {}
    reviews = []
    for i, ch in enumerate(CHANNEL_NAMES):
        status = str(columns[2 * i])
        since, code, message, event, event_id = cause_fields(columns[2 * i + 1])
        channels[ch] = {
            "status": status, "since": since, "code": code, "message": message, "event": event,
        }  # fmt: skip
        if event == "RevocationSuspected" and status != "inactive":
            reviews.append({"channel": ch, "since": since, "event_id": event_id})
    reviews.sort(key=lambda r: str(r["channel"]))  # by channel name
    return {
        "location_id": location_id,
        "contact_id": contact_id,
        "dnd": str(dnd),
        "addresses": [{"kind": str(k), "ref": str(r), "since": s} for k, r, s in addresses],
        "channels": channels,
        "open_reviews": reviews,
    }


def address_ref(ledger: DndLedger, phone: str | None, email: str | None) -> tuple[str, str]:
    """The (kind, keyed reference) of exactly one of a phone number or an email address."""
    if (phone is None) == (email is None):
        raise InvalidInput("give exactly one of --phone or --email")
    if phone is not None:
        return "phone", ledger.keyring.ref(AddressKind.PHONE, normalise_phone(phone))
    assert email is not None
    return "email", ledger.keyring.ref(AddressKind.EMAIL, normalise_email(email))


def find_address(
    ledger: DndLedger, location_id: str, phone: str | None = None, email: str | None = None
) -> dict[str, Any]:
    """The contacts that hold the address, and what providers reported for it."""
    kind, ref = address_ref(ledger, phone, email)
    ledger.ensure_current()
    q = ledger.sql.q
    holders = ledger.views.read(
        q(
            "SELECT contact_id, since FROM dnd_address_index"
            " WHERE location_id = ? AND ref = ? ORDER BY contact_id"
        ),
        (location_id, ref),
    )
    signals = ledger.views.trail.of_address(
        location_id, ref,
        "a.event NOT IN ('Address.Seen', 'Address.Claimed', 'Address.Released')",
        fetch=ledger.views.read,
    )  # fmt: skip
    return {
        "location_id": location_id,
        "kind": kind,
        "ref": ref,
        "contacts": [{"contact_id": str(c), "since": s} for c, s in holders],
        "provider_events": [
            {
                "position": s.position,
                "occurred_at": s.fields.occurred_at,
                "event": s.event.removeprefix("Address."),
                "channels": [c for c in s.fields.channels.split(",") if c],
                "effect": s.fields.effect,
                "code": orjson.loads(s.fields.effect_data).get("code"),
            }
            for s in signals
        ],
    }
