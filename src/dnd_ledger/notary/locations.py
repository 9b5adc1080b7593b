"""The location index: a second Merkle tree saying which location each aggregate belongs to.

The leaves of the main tree carry no location. So beside it the notary keeps a
second RFC 6962 tree with one entry per *aggregate*, appended when its first
event (version 1) is notarised, in leaf order::

    ["dnd-ledger/location/v1",<leaf index>,"<originator uuid>","<location tag>"]

The tag is the SHA-256 (hex) of the location id the aggregate's first event names
(a contact's registration, an address's first sighting), or "" for an aggregate
without one. Tags rather than ids, so that a bundle for one location does not
list the ids of all the others. Each checkpoint carries the index's size and
root in one extension line, ``locations <size> <base64 root>``, under the same
signature as the main tree.

With it a location bundle proves it is complete: the verifier rebuilds the index
from the bundle's entries, checks its root against the signed checkpoint, and
requires every contact tagged with the location to be in the bundle.

Standard library only: the offline verifier imports this module.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from dnd_ledger.notary.merkle import leaf_hash
from dnd_ledger.notary.signed_note import Checkpoint

LOCATION_FORMAT = "dnd-ledger/location/v1"
LOCATIONS_PREFIX = "locations "


_KEY = b'"location_id":"'


def location_of(state: bytes) -> str | None:
    """The location id a stored first event names (its top-level ``location_id``), if any.

    The ledger writes compact JSON, where one substring search finds it; anything
    else (escapes, spaces, the key twice) is parsed as JSON.
    """
    start = state.find(_KEY)
    if start < 0 or state.find(b'"location_id"') != start:
        return _parsed(state) if b'"location_id"' in state else None
    start += len(_KEY)
    end = state.find(b'"', start)
    raw = state[start:end]
    if end < 0 or b"\\" in raw or state.find(b'"location_id"', end) >= 0:
        return _parsed(state)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return _parsed(state)


def _parsed(state: bytes) -> str | None:
    try:
        value = json.loads(state).get("location_id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def location_tag(location: str | None) -> str:
    if location is None:
        return ""
    return hashlib.sha256(location.encode("utf-8")).hexdigest()


def entry_hash(leaf_index: int, originator_id: str, tag: str) -> bytes:
    """RFC 6962 leaf hash of one index entry (the originator is a canonical UUID)."""
    data = f'["{LOCATION_FORMAT}",{leaf_index},"{originator_id}","{tag}"]'
    return leaf_hash(data.encode("ascii"))


def locations_line(size: int, root: bytes) -> str:
    return f"{LOCATIONS_PREFIX}{size} {base64.b64encode(root).decode('ascii')}"


def parse_locations(checkpoint: Checkpoint) -> tuple[int, bytes] | None:
    """``(size, root)`` of the location index a checkpoint signs, if it carries one."""
    lines = [x for x in checkpoint.extensions if x.startswith(LOCATIONS_PREFIX)]
    if not lines:
        return None
    if len(lines) > 1:
        raise ValueError("checkpoint has more than one locations line")
    size_text, _, root_text = lines[0][len(LOCATIONS_PREFIX) :].partition(" ")
    if not size_text.isdigit() or str(int(size_text)) != size_text:
        raise ValueError(f"locations line size {size_text!r} is not a canonical number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError("locations line root is not base64") from e
    if len(root) != 32 or base64.b64encode(root).decode("ascii") != root_text:
        raise ValueError("locations line root is not a canonical 32-byte hash")
    return int(size_text), root


def is_tag(value: object) -> bool:
    return value == "" or (
        isinstance(value, str) and len(value) == 64 and value == value.lower() and _hex(value)
    )


def _hex(value: str) -> bool:
    try:
        bytes.fromhex(value)
    except ValueError:
        return False
    return True


__all__ = [
    "LOCATIONS_PREFIX",
    "LOCATION_FORMAT",
    "entry_hash",
    "is_tag",
    "location_of",
    "location_tag",
    "locations_line",
    "parse_locations",
]
