"""The offline verifier's checks of a bundle's parts: fields, leaves, proofs, contacts, events.

Standard library (and the pure DND fold) only: see :mod:`dnd_ledger.notary.offline`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from dnd_ledger.domain.state import Effect
from dnd_ledger.notary.leaf import Leaf, LeafError
from dnd_ledger.notary.locations import entry_hash, is_tag, location_tag, parse_locations
from dnd_ledger.notary.merkle import ProofError, root_from_leaf_hashes
from dnd_ledger.notary.merkle_proofs import verify_inclusion
from dnd_ledger.notary.offline_result import (
    ADDRESS_TOPIC,
    CONTACT_TOPIC,
    BundleError,
    VerifiedContact,
    VerifiedEvent,
    contact_originator,
)
from dnd_ledger.notary.signed_note import Checkpoint


def _fields(obj: object, where: str, fields: Mapping[str, type]) -> list[Any]:
    if not isinstance(obj, dict):
        raise BundleError(f"{where} is not an object")
    if set(obj) != set(fields):
        extra = sorted(set(obj) ^ set(fields))
        raise BundleError(f"{where} has the wrong fields (check: {', '.join(extra)})")
    values = []
    for name, kind in fields.items():
        value = obj[name]
        if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
            raise BundleError(f"{where}: {name} must be {kind.__name__}")
        values.append(value)
    return values


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise BundleError(f"{where} is not a list")
    return value


def _leaf(value: object, index: int) -> Leaf:
    try:
        return Leaf.from_json(value)
    except LeafError as e:
        raise BundleError(f"leaf {index}: {e}") from e


def _check_leaf_sequence(leaves: Sequence[Leaf]) -> None:
    last_position = 0
    versions: dict[str, int] = {}
    for i, leaf in enumerate(leaves):
        if leaf.notification_id <= last_position:
            raise BundleError(f"leaf {i}: position {leaf.notification_id} is out of order")
        last_position = leaf.notification_id
        want = versions.get(leaf.originator_id, 0) + 1
        if leaf.version != want:
            raise BundleError(
                f"leaf {i}: {leaf.originator_id} has version {leaf.version} where {want} was "
                "due: an event was hidden or reordered"
            )
        versions[leaf.originator_id] = leaf.version


def _hashes(values: list[Any], where: str) -> list[bytes]:
    out = []
    for v in values:
        if not isinstance(v, str) or len(v) != 64:
            raise BundleError(f"{where}: a proof hash is not 64 hex digits")
        try:
            raw = bytes.fromhex(v)
        except ValueError as e:
            raise BundleError(f"{where}: a proof hash is not hex") from e
        if raw.hex() != v:
            raise BundleError(f"{where}: a proof hash is not lower-case hex")
        out.append(raw)
    return out


def _contact(
    item: object,
    leaves: Sequence[Leaf],
    hashes: Sequence[bytes],
    checkpoint: Checkpoint,
    signed_at: Sequence[tuple[int, datetime]],
    skew: timedelta,
) -> VerifiedContact:
    location_id, contact_id, events = _fields(
        item, "contact", {"location_id": str, "contact_id": str, "events": list}
    )
    where = f"contact {location_id}/{contact_id}"
    oid = contact_originator(location_id, contact_id)
    mine = [i for i, leaf in enumerate(leaves) if leaf.originator_id == oid]
    if not mine:
        raise BundleError(f"{where} has no events under the checkpoint")
    given = []
    for e in events:
        index, state_b64, proof = _fields(
            e, f"{where} event", {"leaf_index": int, "state": str, "proof": list}
        )
        given.append((index, state_b64, proof))
    if [g[0] for g in given] != mine:
        raise BundleError(
            f"{where}: the bundle carries events at leaves {[g[0] for g in given]}, but its "
            f"events under the checkpoint are at leaves {mine}: events were left out or added"
        )
    out = []
    for index, state_b64, proof in given:
        leaf = leaves[index]
        ev = f"{where} version {leaf.version} (leaf {index})"
        try:
            state = base64.b64decode(state_b64.encode("ascii"), validate=True)
        except (binascii.Error, ValueError) as e:
            raise BundleError(f"{ev}: stored bytes are not base64") from e
        if base64.b64encode(state).decode("ascii") != state_b64:
            raise BundleError(f"{ev}: stored bytes are not canonical base64")
        if hashlib.sha256(state).digest() != leaf.state_sha256:
            raise BundleError(f"{ev}: stored bytes do not match the notarised hash")
        try:
            verify_inclusion(
                index, checkpoint.size, hashes[index], _hashes(proof, ev), checkpoint.root_hash
            )
        except ProofError as e:
            raise BundleError(f"{ev}: inclusion proof fails: {e}") from e
        first = next((s, t) for s, t in signed_at if index < s)
        before = [t for s, t in signed_at if s <= index]
        out.append(_event(ev, index, leaf, state, first[1], before[-1] if before else None, skew))
    first_event = out[0]
    if first_event.event != "Registered":
        raise BundleError(f"{where}: its first event is {first_event.event}, not Registered")
    registered = json.loads(base64.b64decode(given[0][1]))
    if (registered.get("location_id"), registered.get("contact_id")) != (location_id, contact_id):
        raise BundleError(f"{where}: its registration names another contact")
    return VerifiedContact(location_id, contact_id, oid, tuple(out))


def _event(
    where: str,
    index: int,
    leaf: Leaf,
    state: bytes,
    signed: datetime,
    not_in_before: datetime | None,
    skew: timedelta,
) -> VerifiedEvent:
    if not leaf.topic.startswith(CONTACT_TOPIC):
        raise BundleError(f"{where}: topic {leaf.topic!r} is not a contact event")
    try:
        d = json.loads(state)
        recorded = _time(d["timestamp"])
        occurred = _time(d["occurred_at"]) if "occurred_at" in d else None
        effect = d.get("effect")
        if effect is not None:
            if not isinstance(effect, dict):
                raise TypeError("effect is not an object")
            Effect.from_dict(effect)
    except (ValueError, KeyError, TypeError) as e:
        raise BundleError(f"{where}: stored event cannot be read: {e}") from e
    if recorded > signed + skew:
        raise BundleError(
            f"{where}: recorded at {recorded.isoformat()}, after the checkpoint of "
            f"{signed.isoformat()} that first contains it"
        )
    if not_in_before is not None and recorded < not_in_before - skew:
        raise BundleError(
            f"{where}: recorded at {recorded.isoformat()}, before the checkpoint of "
            f"{not_in_before.isoformat()} that does not contain it: backdated"
        )
    name = leaf.topic[len(CONTACT_TOPIC) :]
    return VerifiedEvent(
        index, leaf.notification_id, leaf.version, name, recorded, occurred, effect, signed
    )


def _time(value: Any) -> datetime:
    if not isinstance(value, dict) or value.get("_type_") != "datetime_iso":
        raise ValueError("not a tagged datetime")
    t = datetime.fromisoformat(value["_data_"])
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError("time without a zone")
    return t


def check_location(
    location: str,
    items: list[Any],
    leaves: Sequence[Leaf],
    checkpoint: Checkpoint,
    earlier: Sequence[Checkpoint],
    contacts: Sequence[VerifiedContact],
) -> tuple[int, int]:
    """A location bundle holds every contact of the location: ``(contacts, addresses)``.

    The entries must be exactly the signed location index: one per aggregate, at the
    leaf of its first event, with the root the checkpoint (and every earlier one that
    carries an index) signed. Every contact the index tags with the location must be
    in the bundle, and no other.
    """
    where = f"location {location!r}"
    try:
        claimed = parse_locations(checkpoint)
    except ValueError as e:
        raise BundleError(f"checkpoint: {e}") from e
    if claimed is None:
        raise BundleError(f"{where}: the checkpoint signs no location index to prove it complete")
    firsts = [i for i, leaf in enumerate(leaves) if leaf.version == 1]
    if len(items) != len(firsts):
        raise BundleError(
            f"{where}: the bundle has {len(items)} location index entries, the leaves "
            f"{len(firsts)} aggregates"
        )
    tags, hashes = [], []
    for n, (item, index) in enumerate(zip(items, firsts, strict=True)):
        if (
            not isinstance(item, list)
            or len(item) != 2
            or type(item[0]) is not int
            or item[0] != index
            or not is_tag(item[1])
        ):
            raise BundleError(
                f"location index entry {n} is not [leaf index, tag] of the aggregate first seen "
                f"at leaf {index}"
            )
        tags.append(str(item[1]))
        hashes.append(entry_hash(index, leaves[index].originator_id, tags[-1]))
    if (len(hashes), root_from_leaf_hashes(hashes)) != claimed:
        raise BundleError(f"{where}: the location index is not the one the checkpoint signs")
    for cp in earlier:
        try:
            old = parse_locations(cp)
        except ValueError as e:
            raise BundleError(f"earlier checkpoint at size {cp.size}: {e}") from e
        count = sum(1 for i in firsts if i < cp.size)
        if old is not None and old != (count, root_from_leaf_hashes(hashes[:count])):
            raise BundleError(
                f"earlier checkpoint at size {cp.size}: its location index is not a prefix of "
                "the bundle's: an aggregate's location was changed"
            )
    tag = location_tag(location)
    members = {
        leaves[i].originator_id: i
        for i, t in zip(firsts, tags, strict=True)
        if t == tag and leaves[i].topic.startswith(CONTACT_TOPIC)
    }
    addresses = sum(
        1
        for i, t in zip(firsts, tags, strict=True)
        if t == tag and leaves[i].topic.startswith(ADDRESS_TOPIC)
    )
    for contact in contacts:
        if contact.location_id != location or contact.originator_id not in members:
            raise BundleError(
                f"contact {contact.location_id}/{contact.contact_id} is not a contact of "
                f"{where} in the signed location index"
            )
    left_out = sorted(set(members) - {c.originator_id for c in contacts}, key=members.__getitem__)
    if left_out:
        first = leaves[members[left_out[0]]]
        raise BundleError(
            f"{where} has {len(members)} contacts in the signed location index, the bundle "
            f"carries {len(contacts)}: {len(left_out)} left out, the first registered at leaf "
            f"{members[left_out[0]]} (position {first.notification_id}, {first.originator_id})"
        )
    return len(members), addresses
