"""What the audit page shows of a contact's events, on both timelines.

Events are numbered as ``dnd-ledger history`` numbers them: 1, 2, 3 ... in the
order the ledger recorded them for this contact (the log position stays beside
the references, for ``proof inclusion``). With ``as_of`` the page shows the
events that had occurred by then; with ``known_at``, those the ledger had
recorded by then. A block that reached the contact through an address other
contacts hold too is noted, naming the address's reference.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from dnd_ledger.application import DndLedger

LATE = timedelta(minutes=1)
STATUS_WORDS = {"inactive": "no DND", "active": "temporary DND", "permanent": "permanent DND"}


def _when(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S UTC")


def shared_addresses(
    ledger: DndLedger, location_id: str, contact_id: str
) -> tuple[dict[int, str], dict[str, list[str]]]:
    """Each event's address reference (by log position), and the other contacts that
    hold each of those addresses."""
    q = ledger.sql.q
    refs: dict[int, str] = {}
    for r in ledger.views.trail.of_contact(location_id, contact_id, fetch=ledger.views.read):
        ref = orjson.loads(r.fields.detail).get("address_ref")
        if isinstance(ref, str):
            refs[r.position] = ref
    others: dict[str, list[str]] = {}
    for ref in set(refs.values()):
        rows = ledger.views.read(
            q(
                "SELECT contact_id FROM dnd_address_index WHERE location_id = ? AND ref = ?"
                " AND contact_id != ? ORDER BY contact_id"
            ),
            (location_id, ref, contact_id),
        )
        others[ref] = [str(r[0]) for r in rows]
    return refs, others


def timeline(
    ledger: DndLedger,
    location_id: str,
    contact_id: str,
    rows: list[dict[str, Any]],
    as_of: datetime | None,
    known_at: datetime | None,
) -> list[dict[str, Any]]:
    """The page's rows: numbered, filtered on both timelines, shared addresses noted."""
    refs, others = shared_addresses(ledger, location_id, contact_id)
    events = []
    for number, r in enumerate(rows, start=1):
        occurred = datetime.fromisoformat(r["occurred_at"])
        recorded = datetime.fromisoformat(r["recorded_at"])
        if (as_of is not None and occurred > as_of) or (
            known_at is not None and recorded > known_at
        ):
            continue
        ref = refs.get(r["position"])
        shared = others.get(ref, []) if ref else []
        blocked = any(after != "inactive" for after in r["after"].values())
        events.append(
            {
                **r,
                "number": number,
                "occurred": _when(occurred),
                "recorded": _when(recorded),
                "late": recorded - occurred > LATE,
                "changes": [
                    (ch, STATUS_WORDS[r["before"].get(ch, "inactive")], STATUS_WORDS[after])
                    for ch, after in r["after"].items()
                ],
                "references": [
                    f"{label} {r[key]}"
                    for key, label in (("idempotency_key", "key"), ("evidence", "evidence"))
                    if r[key]
                ],
                "shared_note": (
                    f"Came through address {ref}, which {', '.join(shared)} also "
                    f"{'holds' if len(shared) == 1 else 'hold'}: it applies to each of them."
                    if shared and blocked
                    else None
                ),
            }
        )
    return events


def notary_status(ledger: DndLedger, last_position: int | None) -> dict[str, Any]:
    """The latest checkpoint, and whether it covers the contact's latest event."""
    latest = ledger.notary.latest_checkpoint()
    if latest is None:
        return {"checkpoint": None, "covered": False}
    return {
        "checkpoint": {
            "size": latest.size,
            "time": _when(latest.created_at),
            "signed": latest.signed,
            "key": latest.key_name,
        },
        "covered": last_position is not None and last_position <= latest.size,
    }


def addresses(
    ledger: DndLedger, location_id: str, contact_id: str, reveal: bool
) -> list[dict[str, Any]]:
    """The contact's addresses by reference; with ``reveal`` (support), their values too."""
    rows = ledger.views.read(
        ledger.sql.q(
            "SELECT kind, ref FROM dnd_address_index WHERE location_id = ? AND contact_id = ?"
            " ORDER BY kind, ref"
        ),
        (location_id, contact_id),
    )
    return [
        {"kind": str(k), "ref": str(r), "value": ledger.vault.get(str(r)) if reveal else None}
        for k, r in rows
    ]
