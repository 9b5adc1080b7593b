"""A compacted aggregate as plain JSON data, and back: where a cache miss resumes.

A compacted aggregate (see :mod:`dnd_ledger.storage.cache`) keeps its current fold
and addresses, and drops the history the event store holds and the idempotency keys
the keys table holds (:mod:`dnd_ledger.storage.keys`). Its memento is exactly that
state, as JSON values; :func:`restore` rebuilds an aggregate equal to the one replaying
every event would give (compacted), so the event store can resume from a memento and
apply only the events stored after it. A memento holds no keys: its size does not grow
with the aggregate's history.

Every attribute of an aggregate is named here, in :data:`CONTACT_FIELDS` or
:data:`ADDRESS_FIELDS`; a test fails when an aggregate gains one this module does not
carry (a memento that silently dropped state would resume a different aggregate).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from dnd_ledger.domain.address import Address
from dnd_ledger.domain.contact import Contact
from dnd_ledger.domain.keys import NO_KEYS, NO_REQUESTS, KeyLookup
from dnd_ledger.domain.state import DndState
from dnd_ledger.domain.values import AddressKind

#: Bumped when the memento's shape changes: a memento of another version is ignored
#: (the aggregate is replayed instead), never misread.
VERSION = 3  # 3: the key filter; 2: no idempotency keys (the keys table has them); 1 listed them

#: The library's own attributes of every aggregate: id and version are the memento
#: row's, pending events are never part of a stored state.
_BASE = ("_id", "_version", "_pending_events", "_created_on", "_modified_on")
CONTACT_FIELDS = frozenset({
    *_BASE, "location_id", "contact_id", "registered_at", "phones", "emails", "entries",
    "keys", "requests", "key_lookup", "key_filter", "state", "_last_occurred", "_changes", "_applied",
})  # fmt: skip
ADDRESS_FIELDS = frozenset({
    *_BASE, "location_id", "kind", "ref", "claimants", "keys", "key_lookup", "key_filter", "signals",
})  # fmt: skip


def memento(agg: Contact | Address) -> dict[str, Any]:
    """The aggregate's state (as compacted) in JSON values."""
    common = {
        "v": VERSION,
        "created_on": _iso(agg.created_on),
        "modified_on": _iso(agg.modified_on),
        "location_id": agg.location_id,
        "key_filter": f"{agg.key_filter:x}",
    }
    if isinstance(agg, Contact):
        return {
            **common,
            "type": "contact",
            "contact_id": agg.contact_id,
            "registered_at": _iso(agg.registered_at),
            "phones": list(agg.phones),
            "emails": list(agg.emails),
            "state": agg.state.to_list(),
            "last_occurred": _iso(agg._last_occurred) if agg._last_occurred else None,
        }
    return {
        **common,
        "type": "address",
        "kind": agg.kind.value,
        "ref": agg.ref,
        "claimants": list(agg.claimants),
    }


def restore(
    aggregate_id: UUID, version: int, m: dict[str, Any], keys: KeyLookup
) -> Contact | Address | None:
    """The compacted aggregate a memento holds, at ``version``, whose idempotency keys
    are looked up in ``keys``; None when the memento is of another shape (then the
    caller replays the events)."""
    if m.get("v") != VERSION:
        return None
    agg: Contact | Address
    if m["type"] == "contact":
        agg = object.__new__(Contact)
        agg.__dict__.update(
            location_id=m["location_id"],
            contact_id=m["contact_id"],
            registered_at=datetime.fromisoformat(m["registered_at"]),
            phones=list(m["phones"]),
            emails=list(m["emails"]),
            entries=None,
            keys=NO_KEYS,
            requests=NO_REQUESTS,
            key_lookup=keys,
            key_filter=int(m["key_filter"], 16),
            state=DndState.from_list(m["state"]),
            _last_occurred=(
                datetime.fromisoformat(m["last_occurred"]) if m["last_occurred"] else None
            ),
            _changes={},  # only for events not yet stored: a memento has none
            _applied=None,
        )
    elif m["type"] == "address":
        agg = object.__new__(Address)
        agg.__dict__.update(
            location_id=m["location_id"],
            kind=AddressKind(m["kind"]),
            ref=m["ref"],
            claimants=list(m["claimants"]),
            keys=NO_KEYS,
            key_lookup=keys,
            key_filter=int(m["key_filter"], 16),
            signals=None,
        )
    else:
        return None
    agg.__dict__.update(
        _id=aggregate_id,
        _version=version,
        _pending_events=[],
        _created_on=datetime.fromisoformat(m["created_on"]),
        _modified_on=datetime.fromisoformat(m["modified_on"]),
    )
    return agg


def _iso(t: datetime) -> str:
    return t.isoformat()
