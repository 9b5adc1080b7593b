"""The status view's row: one per contact, with its six channels' state in it.

Each channel has two columns in ``dnd_status_contacts``: ``<channel>_status``
(``inactive``, ``active`` or ``permanent``; what listings filter on) and
``<channel>_cause``, NULL for an inactive channel and otherwise one JSON array
``[since, code, message, cause_event, cause_event_id]``. A decision reads the two
columns of its channel and ``overall`` from the contact's one row, by its
``(location_id, contact_id)`` key; the projector writes one row per changed contact.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from dnd_ledger.domain.state import INACTIVE, ChannelState
from dnd_ledger.domain.values import ALL_CHANNELS, Channel, DndKind
from dnd_ledger.projections.rows import iso

#: ``dnd_meta`` names the views' layout: another value (or none, in a ledger made
#: before it was recorded) means the views are rebuilt from the log on open. Since
#: "audit-by-position", an audit row holds only what its event does not.
META_NAME = "status_view"
LAYOUT = "one-row-per-contact; audit-by-position"

#: (status column, cause column) of each channel, in ALL_CHANNELS order.
COLUMNS: dict[Channel, tuple[str, str]] = {
    c: (f"{c.value}_status", f"{c.value}_cause") for c in ALL_CHANNELS
}
#: Every channel's two columns, in ALL_CHANNELS order (for a SELECT or an INSERT).
CHANNEL_COLUMNS = ", ".join(f"{s}, {k}" for s, k in COLUMNS.values())
#: The columns' definitions, for CREATE TABLE. No default: a row that does not say
#: what a channel's state is cannot be written.
CHANNEL_DDL = "".join(f" {s} TEXT NOT NULL, {k} TEXT," for s, k in COLUMNS.values())
#: Channel name (as stored and as given by callers) -> its status column.
STATUS_COLUMN = {c.value: s for c, (s, _k) in COLUMNS.items()}

#: Stored text <-> enum member by dict lookup (an Enum's ``.value`` is a slow descriptor).
_KIND = {k.value: k for k in DndKind}
_TEXT = {k: k.value for k in DndKind}
_NOTHING = (None, None, None, None, None)


def cause(s: ChannelState) -> str | None:
    """The cause column of a channel's state (None when it carries nothing)."""
    if (s.since, s.code, s.message, s.event, s.event_id) == _NOTHING:
        return None  # an inactive channel: nothing to say
    since = iso(s.since) if s.since else None
    return orjson.dumps([since, s.code, s.message, s.event, s.event_id]).decode()


def channel_values(channels: dict[Channel, ChannelState]) -> list[str | None]:
    """The twelve channel columns of a contact's row, in :data:`CHANNEL_COLUMNS` order."""
    out: list[str | None] = []
    for c in ALL_CHANNELS:
        s = channels[c]
        out.append(_TEXT[s.status])
        out.append(cause(s))
    return out


def cause_fields(text: Any) -> tuple[Any, Any, Any, Any, Any]:
    """(since, code, message, cause_event, cause_event_id) as stored (texts or None)."""
    if text is None:
        return _NOTHING
    since, code, message, event, event_id = orjson.loads(text)
    return (since, code, message, event, event_id)


def state(status: str, text: Any) -> ChannelState:
    """A channel's state from its two columns."""
    if status == "inactive":
        return INACTIVE
    since, code, message, event, event_id = cause_fields(text)
    return ChannelState(
        status=_KIND[status],
        since=datetime.fromisoformat(since) if since else None,
        code=code,
        message=message,
        event=event,
        event_id=event_id,
    )
