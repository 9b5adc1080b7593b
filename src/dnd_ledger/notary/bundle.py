"""``dnd-ledger audit export``: one file an auditor can verify without our server.

The notary is caught up and checkpointed (signed) first, so the bundle covers
every event recorded before the export. Its contents and what they prove are
described in :mod:`dnd_ledger.notary.offline`, which is also what checks it.
The exporter checks each exported event against its leaf before writing it:
a ledger whose stored bytes no longer match the tree is not exported.
"""

from __future__ import annotations

import base64
import hashlib
from collections import defaultdict
from typing import TYPE_CHECKING, Any
from uuid import UUID

from dnd_ledger.domain.errors import InvalidInput, LedgerError, UnknownContact
from dnd_ledger.domain.keys import contact_uuid
from dnd_ledger.notary.leaf import Leaf, LeafError
from dnd_ledger.notary.locations import entry_hash, location_tag, parse_locations
from dnd_ledger.notary.merkle import root_from_leaf_hashes
from dnd_ledger.notary.offline import BUNDLE_FORMAT, CONTACT_TOPIC, encode_bundle
from dnd_ledger.notary.records import CheckpointRecord
from dnd_ledger.notary.rotation import first_public_key
from dnd_ledger.notary.signed_note import fingerprint
from dnd_ledger.notary.tree import TreeLevels

if TYPE_CHECKING:
    from dnd_ledger.application import DndLedger


class ExportRefused(LedgerError):
    """The ledger does not match its own evidence; ``verify`` says where."""


def export_bundle(app: DndLedger, location_id: str, contact_id: str | None = None) -> bytes:
    """The canonical bundle for one contact, or for every contact of a location."""
    key = app.notary.signing_key
    if key is None:
        raise InvalidInput(
            "an auditor bundle needs a signed checkpoint: set DND_LEDGER_SIGNING_KEY to a key "
            "file (create one with `dnd-ledger keys generate`)"
        )
    app.refresh_views()  # the status view lists a location's contacts
    checkpoint = app.notary.checkpoint()  # catches the notary up fully, then signs
    if checkpoint is None or not checkpoint.signed:
        raise InvalidInput("the ledger is empty: there is nothing to export")
    size = checkpoint.size
    contacts = [contact_id] if contact_id is not None else _location_contacts(app, location_id)
    if not contacts:
        raise UnknownContact(f"location {location_id!r} has no contacts")

    leaves: list[Leaf] = []
    levels = TreeLevels()
    by_originator: dict[str, list[int]] = defaultdict(list)
    try:
        for index, leaf in app.notary.leaves(stop=size):
            if index != len(leaves):
                raise ExportRefused(f"the notary's leaves skip index {len(leaves)}: run verify")
            leaves.append(leaf)
            levels.append(leaf.hash())
            by_originator[leaf.originator_id].append(index)
    except (LeafError, ValueError) as e:
        raise ExportRefused(
            f"the notary's leaves are damaged ({e}): run `dnd-ledger verify`"
        ) from e
    if levels.size != size or levels.root() != checkpoint.root:
        raise ExportRefused(
            f"the notary's leaves do not give the root of the checkpoint at size {size}: "
            "run `dnd-ledger verify`"
        )

    scope, entries = _location_index(app, location_id, contact_id, leaves, checkpoint, contacts)
    first = first_public_key(app.notary)
    fp = fingerprint(first) if first else fingerprint(key.private_key.public_key())
    exported = [
        _contact(app, location_id, cid, leaves, levels, by_originator, size) for cid in contacts
    ]
    earlier = [
        {"note": c.note, "consistency": [h.hex() for h in levels.consistency_proof(c.size, size)]}
        for c in app.notary.checkpoints()
        if c.signed and (c.size, c.created_at) < (size, checkpoint.created_at)
    ]
    bundle = {
        "format": BUNDLE_FORMAT,
        "key_fingerprint": fp,
        "checkpoint": checkpoint.note,
        "earlier_checkpoints": earlier,
        "leaves": [leaf.to_json() for leaf in leaves],
        "contacts": exported,
        "location": scope,
        "locations": entries,
    }
    return encode_bundle(bundle)


def _location_index(
    app: DndLedger,
    location_id: str,
    contact_id: str | None,
    leaves: list[Leaf],
    checkpoint: CheckpointRecord,
    contacts: list[str],
) -> tuple[str | None, list[list[Any]]]:
    """For a location export: the location and the signed index that proves it complete.

    ``(None, [])`` for one contact, and for a ledger whose index does not start at
    leaf 0 (notarised before the index existed): its bundle lists the location's
    contacts without proving the list complete.
    """
    if contact_id is not None:
        return None, []
    entries = app.notary.location_entries(leaves)
    claimed = parse_locations(checkpoint.body)
    if entries is None or claimed is None:
        return None, []
    hashes = [entry_hash(i, leaves[i].originator_id, tag) for i, _, tag in entries]
    if (len(hashes), root_from_leaf_hashes(hashes)) != claimed or any(
        oid != leaves[i].originator_id for i, oid, _ in entries
    ):
        raise ExportRefused("the notary's location index does not give the one its checkpoint "
                            "signs: run `dnd-ledger verify`")  # fmt: skip
    tag = location_tag(location_id)
    members = {
        oid for i, oid, t in entries if t == tag and leaves[i].topic.startswith(CONTACT_TOPIC)
    }
    listed = {str(contact_uuid(location_id, cid)) for cid in contacts}
    if members != listed:
        raise ExportRefused(
            f"the status view lists {len(listed)} contacts of {location_id!r}, the location "
            f"index {len(members)}: rebuild the views (`dnd-ledger projections rebuild`)"
        )
    return location_id, [[i, t] for i, _, t in entries]


def _location_contacts(app: DndLedger, location_id: str) -> list[str]:
    rows = app.sql.fetchall(
        "SELECT contact_id FROM dnd_status_contacts WHERE location_id = ? ORDER BY contact_id",
        (location_id,),
    )
    return [str(r[0]) for r in rows]


def _contact(
    app: DndLedger,
    location_id: str,
    contact_id: str,
    leaves: list[Leaf],
    levels: TreeLevels,
    by_originator: dict[str, list[int]],
    size: int,
) -> dict[str, Any]:
    oid = contact_uuid(location_id, contact_id)
    indexes = by_originator.get(str(oid), [])
    if not indexes:
        raise UnknownContact.of(location_id, contact_id)
    stored = {
        e.originator_version: bytes(e.state)
        for e in app.recorder.select_events(UUID(str(oid)), lte=leaves[indexes[-1]].version)
    }
    events = []
    for index in indexes:
        leaf = leaves[index]
        state = stored.get(leaf.version)
        if state is None or hashlib.sha256(state).digest() != leaf.state_sha256:
            raise ExportRefused(
                f"contact {location_id}/{contact_id} version {leaf.version} (position "
                f"{leaf.notification_id}) does not match what was notarised: run `dnd-ledger verify`"
            )
        events.append(
            {
                "leaf_index": index,
                "state": base64.b64encode(state).decode("ascii"),
                "proof": [h.hex() for h in levels.inclusion_proof(index, size)],
            }
        )
    return {"location_id": location_id, "contact_id": contact_id, "events": events}


__all__ = ["ExportRefused", "export_bundle"]
