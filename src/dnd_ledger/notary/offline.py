"""Verify an auditor bundle offline, then replay its contacts' DND state.

Run as ``python -m dnd_ledger.notary.offline BUNDLE --public-key KEY`` (or
``dnd-ledger audit verify-bundle``). It needs the standard library, the
``cryptography`` package, and these pure modules of the package:
``notary.merkle``, ``notary.signed_note``, ``notary.leaf`` and the DND fold
``domain.state`` (with ``domain.values``). No database, no eventsourcing,
nothing from the server is trusted.

A bundle is one canonical JSON document (sorted keys, no spaces, ASCII, one
final newline), so every byte of it means something: a file that is not
exactly the canonical encoding of what it parses to is rejected. It holds:

``format``              ``"dnd-ledger-audit-bundle/1"``
``key_fingerprint``     ``sha256:<hex>`` of the signing key; must be the auditor's key
``checkpoint``          the latest signed checkpoint note (C2SP signed note)
``earlier_checkpoints`` earlier signed notes, each with a consistency proof to it
``leaves``              every leaf of the checkpoint's tree, ``[position, originator,
                        version, topic, sha256 of stored state]``: PII-free
``contacts``            per exported contact, its location and id and *all* its events
                        up to the checkpoint: leaf index, stored bytes (base64), and
                        an inclusion proof

What is proven: the checkpoint is signed by the key; the leaves are exactly the
tree it signed (their root is its root); every version of every aggregate runs
1, 2, 3, ... so none was hidden; each exported contact's events are all of its
leaves, with the stored bytes those leaves commit to; each inclusion proof and
consistency proof holds; and each event's recording time agrees with the
checkpoints that do and do not contain it. A location export proves each
listed contact complete; it cannot prove that no contact of the location was
left off the list, since the leaves carry no location.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dnd_ledger.domain.state import Effect, Entry, fold, overall
from dnd_ledger.domain.values import ALL_CHANNELS
from dnd_ledger.notary.leaf import Leaf, LeafError
from dnd_ledger.notary.merkle import (
    ProofError,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from dnd_ledger.notary.signed_note import (
    Checkpoint,
    NoteError,
    VerifierKey,
    fingerprint,
    parse_vkey,
    verify_checkpoint,
)

BUNDLE_FORMAT = "dnd-ledger-audit-bundle/1"
CONTACT_TOPIC = "dnd_ledger.domain.contact:Contact."
#: How far a recording clock may be from the checkpointing clock (see verify.CLOCK_SKEW).
CLOCK_SKEW = timedelta(minutes=5)
TIME_PREFIX = "time "
# dnd_ledger.domain.contact: contact ids are uuid5(this namespace, "contact\x1f<loc>\x1f<id>").
_NS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:dnd-ledger")


class BundleError(ValueError):
    """The bundle is rejected; the message says what does not hold."""


def contact_originator(location_id: str, contact_id: str) -> str:
    return str(uuid.uuid5(_NS, f"contact\x1f{location_id}\x1f{contact_id}"))


def encode_bundle(bundle: dict[str, Any]) -> bytes:
    """The one canonical encoding of a bundle."""
    text = json.dumps(bundle, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return (text + "\n").encode("ascii")


# -- the verified result -------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedEvent:
    leaf_index: int
    position: int
    version: int
    event: str
    recorded_at: datetime
    occurred_at: datetime | None
    effect: dict[str, Any] | None
    first_checkpoint: datetime  # the earliest signed checkpoint that contains it

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "event": self.event,
            "position": self.position,
            "leaf_index": self.leaf_index,
            "occurred_at": self.occurred_at.isoformat() if self.occurred_at else None,
            "recorded_at": self.recorded_at.isoformat(),
            "signed_by": self.first_checkpoint.isoformat(),
            "effect": self.effect,
        }


@dataclass(frozen=True)
class VerifiedContact:
    location_id: str
    contact_id: str
    originator_id: str
    events: tuple[VerifiedEvent, ...]

    def status(self, as_of: datetime, known_at: datetime) -> dict[str, Any]:
        """The contact's DND state at ``as_of`` as known at ``known_at``, from the bundle alone."""
        entries = [
            Entry(
                occurred_at=e.occurred_at,
                recorded_at=e.recorded_at,
                seq=e.version,
                event=e.event,
                event_id=f"{self.originator_id}:{e.version}",
                effect=Effect.from_dict(e.effect),
            )
            for e in self.events
            if e.effect is not None and e.occurred_at is not None
        ]
        channels = fold(entries, as_of, known_at).channels()
        return {
            "location_id": self.location_id,
            "contact_id": self.contact_id,
            "dnd": overall(channels).value,
            "channels": {c.value: channels[c].to_json() for c in ALL_CHANNELS},
            "as_of": as_of.isoformat(),
            "known_at": known_at.isoformat(),
        }


@dataclass(frozen=True)
class VerifiedBundle:
    checkpoint: Checkpoint
    checkpoint_time: datetime
    key_name: str
    key_fingerprint: str
    earlier_checkpoints: int
    contacts: tuple[VerifiedContact, ...]

    def summary(self) -> dict[str, Any]:
        return {
            "origin": self.checkpoint.origin,
            "size": self.checkpoint.size,
            "root": self.checkpoint.root_hash.hex(),
            "time": self.checkpoint_time.isoformat(),
            "key_name": self.key_name,
            "key_fingerprint": self.key_fingerprint,
            "earlier_checkpoints": self.earlier_checkpoints,
        }


# -- verification --------------------------------------------------------------------------


def load_public_key(value: str) -> VerifierKey:
    """A verifier key string (``name+id+base64``), or a file holding one."""
    text = value.strip()
    path = Path(text)
    try:
        if path.is_file():
            raw = path.read_bytes()
            text = raw.decode("utf-8").strip()
    except OSError as e:
        raise BundleError(f"cannot read public key file {value}: {e}") from e
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise BundleError(
            f"public key file {value} is not UTF-8 text: line {line}: byte 0x{raw[e.start]:02x}"
        ) from None
    try:
        return parse_vkey(text)
    except NoteError as e:
        raise BundleError(f"public key is not a verifier key (name+id+key): {e}") from e


def verify_bundle(data: bytes, key: VerifierKey, *, skew: timedelta = CLOCK_SKEW) -> VerifiedBundle:
    """Check everything in the bundle; raise BundleError naming the first thing that fails."""
    doc = _parse(data)
    fp = fingerprint(key.public_key)
    if doc["key_fingerprint"] != fp:
        raise BundleError(
            f"bundle was signed by key {doc['key_fingerprint']}, not by the given key {fp}"
        )
    checkpoint, time = _checkpoint(doc["checkpoint"], key, "checkpoint")

    leaves = [_leaf(v, i) for i, v in enumerate(_list(doc["leaves"], "leaves"))]
    if len(leaves) != checkpoint.size:
        raise BundleError(
            f"bundle has {len(leaves)} leaves, the checkpoint covers {checkpoint.size}"
        )
    hashes = [leaf.hash() for leaf in leaves]
    if root_from_leaf_hashes(hashes) != checkpoint.root_hash:
        raise BundleError("the leaves' root is not the checkpoint's root: a leaf was altered")
    _check_leaf_sequence(leaves)

    # Earlier checkpoints: when each event was first under a signature.
    signed_at: list[tuple[int, datetime]] = []
    previous = 0
    for i, item in enumerate(_list(doc["earlier_checkpoints"], "earlier_checkpoints")):
        where = f"earlier checkpoint {i}"
        note, proof = _fields(item, where, {"note": str, "consistency": list})
        cp, t = _checkpoint(note, key, where)
        if cp.origin != checkpoint.origin:
            raise BundleError(f"{where} is from another log ({cp.origin!r})")
        if not previous < cp.size < checkpoint.size:
            raise BundleError(f"{where} has size {cp.size}, out of order")
        if (signed_at and t < signed_at[-1][1]) or t > time:
            raise BundleError(f"{where} was made at {t.isoformat()}, out of order")
        try:
            verify_consistency(
                cp.size, checkpoint.size, _hashes(proof, where), cp.root_hash, checkpoint.root_hash
            )
        except ProofError as e:
            raise BundleError(f"{where} (size {cp.size}): consistency proof fails: {e}") from e
        if root_from_leaf_hashes(hashes[: cp.size]) != cp.root_hash:
            raise BundleError(f"{where} (size {cp.size}): root is not the root of its leaves")
        signed_at.append((cp.size, t))
        previous = cp.size
    signed_at.append((checkpoint.size, time))

    contacts = []
    seen: set[str] = set()
    for item in _list(doc["contacts"], "contacts"):
        contact = _contact(item, leaves, hashes, checkpoint, signed_at, skew)
        if contact.originator_id in seen:
            raise BundleError(f"contact {contact.contact_id} is listed twice")
        seen.add(contact.originator_id)
        contacts.append(contact)
    if not contacts:
        raise BundleError("bundle exports no contact")
    return VerifiedBundle(checkpoint, time, key.name, fp, len(signed_at) - 1, tuple(contacts))


def _parse(data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as e:
        raise BundleError(f"bundle is not ASCII JSON: {e}") from e
    if not isinstance(doc, dict):
        raise BundleError("bundle is not a JSON object")
    if encode_bundle(doc) != data:
        raise BundleError("bundle is not in canonical form (it was edited after export)")
    fields = {
        "format": str,
        "key_fingerprint": str,
        "checkpoint": str,
        "earlier_checkpoints": list,
        "leaves": list,
        "contacts": list,
    }
    _fields(doc, "bundle", fields)
    if doc["format"] != BUNDLE_FORMAT:
        raise BundleError(f"bundle format {doc['format']!r} is not {BUNDLE_FORMAT!r}")
    return doc


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


def _checkpoint(note: str, key: VerifierKey, where: str) -> tuple[Checkpoint, datetime]:
    try:
        cp = verify_checkpoint(note, key.name, key.public_key)
    except NoteError as e:
        raise BundleError(f"{where}: signature or format does not hold: {e}") from e
    times = [x for x in cp.extensions if x.startswith(TIME_PREFIX)]
    if len(times) != 1:
        raise BundleError(f"{where} has no single time line")
    raw = times[0][len(TIME_PREFIX) :]
    try:
        t = datetime.strptime(raw, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError as e:
        raise BundleError(f"{where}: time {raw!r} is not in the checkpoint format") from e
    return cp, t


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


# -- command line ----------------------------------------------------------------------------


def report(
    bundle: VerifiedBundle, as_of: datetime | None, known_at: datetime | None
) -> dict[str, Any]:
    """What ``verify-bundle --json`` prints."""
    as_of_t = as_of or bundle.checkpoint_time
    known_t = known_at or bundle.checkpoint_time
    return {
        "ok": True,
        "checkpoint": bundle.summary(),
        "contacts": [
            {
                "location_id": c.location_id,
                "contact_id": c.contact_id,
                "events": [e.to_json() for e in c.events],
                "status": c.status(as_of_t, known_t),
            }
            for c in bundle.contacts
        ],
        "not_proven": [
            "that a location export lists every contact of the location",
            "anything after the checkpoint's time",
        ],
    }


def report_text(result: dict[str, Any]) -> str:
    cp = result["checkpoint"]
    lines = [
        f"bundle OK: checkpoint {cp['origin']} at size {cp['size']}, made {cp['time']},",
        f"  signed by {cp['key_name']} ({cp['key_fingerprint']}),"
        f" with {cp['earlier_checkpoints']} earlier signed checkpoints consistent with it;",
        f"  all {cp['size']} events are accounted for (versions contiguous from 1).",
    ]
    for c in result["contacts"]:
        s = c["status"]
        n = len(c["events"])
        lines.append("")
        lines.append(
            f"{c['location_id']}/{c['contact_id']}: {n} events (versions 1-{n}), all present and "
            "proven included"
        )
        lines.append(f"  DND {s['dnd'].upper()} as of {s['as_of']}, as known at {s['known_at']}")
        for name, ch in s["channels"].items():
            why = f"  {ch['code']}: {ch['message']}" if ch["code"] or ch["message"] else ""
            since = f" since {ch['since']}" if ch["since"] else ""
            lines.append(f"  {name:<9}{ch['status']}{since}{why}")
    return "\n".join(lines)


def parse_time(value: str) -> datetime:
    t = datetime.fromisoformat(value.strip())
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{value!r} has no time zone: add Z or an offset such as +01:00")
    return t


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dnd_ledger.notary.offline",
        description="Verify a dnd-ledger auditor bundle offline and replay its contacts.",
    )
    parser.add_argument("bundle", help="the bundle file (from dnd-ledger audit export)")
    parser.add_argument("--public-key", required=True, help="verifier key, or a file holding it")
    parser.add_argument("--as-of", type=parse_time, help="effective time (default: checkpoint)")
    parser.add_argument("--known-at", type=parse_time, help="knowledge time (default: checkpoint)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    try:
        key = load_public_key(args.public_key)
        data = Path(args.bundle).read_bytes()
        result = report(verify_bundle(data, key), args.as_of, args.known_at)
    except (BundleError, OSError) as e:
        print(f"Error: bundle rejected: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result) if args.json else report_text(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
