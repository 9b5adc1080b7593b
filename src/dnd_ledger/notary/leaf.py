"""The canonical leaf of the notary's Merkle tree: one per stored event.

A leaf commits to the event as *stored*, not as decoded: its originator id,
version, topic, the SHA-256 of its stored state bytes, and its notification id
(its position in the log). The bytes hashed are a JSON array with a format tag
first, written in exactly one way (no spaces, ASCII only), so anyone can
rebuild them from the five values with any JSON library::

    ["dnd-ledger/leaf/v1",<notification id>,"<originator uuid>",<version>,"<topic>","<sha256 hex>"]

The leaf index (0, 1, 2, ...) is the leaf's place in the tree and is dense even
where notification ids have gaps, so it is not part of the leaf.

Standard library only: the offline bundle verifier imports this module.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from dnd_ledger.notary.merkle import leaf_hash

LEAF_FORMAT = "dnd-ledger/leaf/v1"
MAX_TOPIC = 256


class LeafError(ValueError):
    """A leaf's values are not in canonical form."""


@dataclass(frozen=True, slots=True)
class Leaf:
    """The PII-free metadata of one stored event, as the tree commits to it."""

    notification_id: int
    originator_id: str
    version: int
    topic: str
    state_sha256: bytes

    def __post_init__(self) -> None:
        _check_int("notification id", self.notification_id)
        _check_int("version", self.version)
        if canonical_originator(self.originator_id) != self.originator_id:
            raise LeafError(f"originator id {self.originator_id!r} is not a canonical UUID")
        _check_topic(self.topic)
        if not isinstance(self.state_sha256, bytes) or len(self.state_sha256) != 32:
            raise LeafError("state hash must be 32 bytes")

    @classmethod
    def of(
        cls, notification_id: int, originator_id: object, version: int, topic: str, state: bytes
    ) -> Leaf:
        """The leaf of a stored event, from its columns and its state bytes."""
        return cls(
            int(notification_id),
            canonical_originator(originator_id),
            int(version),
            topic,
            hashlib.sha256(state).digest(),
        )

    def encode(self) -> bytes:
        """The canonical bytes the leaf hash covers."""
        return encode_leaf(
            self.notification_id,
            self.originator_id,
            self.version,
            self.topic,
            self.state_sha256.hex(),
        )

    def hash(self) -> bytes:
        """RFC 6962 leaf hash: SHA-256(0x00 || encode())."""
        return leaf_hash(self.encode())

    def to_json(self) -> list[Any]:
        """``[notification id, originator id, version, topic, state sha256 hex]``."""
        return [
            self.notification_id,
            self.originator_id,
            self.version,
            self.topic,
            self.state_sha256.hex(),
        ]

    @classmethod
    def from_json(cls, value: object) -> Leaf:
        """Inverse of ``to_json``; anything not in canonical form is refused."""
        if not isinstance(value, list) or len(value) != 5:
            raise LeafError("a leaf is a list of 5 values")
        nid, oid, version, topic, digest = value
        if not isinstance(oid, str) or not isinstance(topic, str) or not isinstance(digest, str):
            raise LeafError("leaf originator id, topic and state hash must be strings")
        try:
            raw = bytes.fromhex(digest)
        except ValueError:
            raise LeafError(f"leaf state hash {digest!r} is not hex") from None
        if raw.hex() != digest:
            raise LeafError(f"leaf state hash {digest!r} is not lower-case hex")
        return cls(nid, oid, version, topic, raw)


def encode_leaf(
    notification_id: int, originator_id: str, version: int, topic: str, state_sha256_hex: str
) -> bytes:
    """``json.dumps([LEAF_FORMAT, ...], separators=(",", ":"), ensure_ascii=True)``, faster.

    Only the topic can need escaping (a UUID and hex digits never do).
    """
    if '"' in topic or "\\" in topic:
        topic = json.dumps(topic)[1:-1]
    return (
        f'["{LEAF_FORMAT}",{notification_id},"{originator_id}",{version},"{topic}",'
        f'"{state_sha256_hex}"]'
    ).encode("ascii")


_CHECKED_TOPICS: set[str] = set()
_BARE_HEX = re.compile(r"[0-9a-f]{32}")
_LIMIT = 2**63


def stored_leaf(
    notification_id: int, originator_id: object, version: int, topic: str, state: bytes
) -> tuple[str, str, bytes]:
    """``(originator id, state sha256 hex, leaf bytes)`` of a stored event, without a Leaf.

    The same values and checks as ``Leaf.of(...)`` and ``encode()``, for the notary's
    and ``verify``'s loops over every event.
    """
    if not (type(notification_id) is int and 0 < notification_id < _LIMIT):
        _check_int("notification id", notification_id)
    if not (type(version) is int and 0 < version < _LIMIT):
        _check_int("version", version)
    if topic not in _CHECKED_TOPICS:
        _check_topic(topic)
        if len(_CHECKED_TOPICS) < 10_000:
            _CHECKED_TOPICS.add(topic)
    if type(originator_id) is str and _BARE_HEX.fullmatch(originator_id):  # SQLite's spelling
        h = originator_id
        oid = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    elif type(originator_id) is UUID:
        oid = str(originator_id)
    else:
        oid = canonical_originator(originator_id)
    digest = hashlib.sha256(state).hexdigest()
    return oid, digest, encode_leaf(notification_id, oid, version, topic, digest)


def canonical_originator(originator_id: object) -> str:
    """The lower-case, hyphenated form of a UUID (SQLite stores it as bare hex)."""
    if isinstance(originator_id, UUID):
        return str(originator_id)
    if not isinstance(originator_id, str):
        raise LeafError(f"originator id {originator_id!r} is not a UUID")
    try:
        return str(UUID(originator_id))
    except ValueError:
        raise LeafError(f"originator id {originator_id!r} is not a UUID") from None


def _check_topic(topic: object) -> None:
    if (
        not isinstance(topic, str)
        or not 0 < len(topic) <= MAX_TOPIC
        or not topic.isascii()
        or not topic.isprintable()
    ):
        raise LeafError(f"topic {topic!r} is not printable ASCII of 1-{MAX_TOPIC} chars")


def _check_int(what: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < _LIMIT:
        raise LeafError(f"{what} must be a positive 64-bit integer, got {value!r}")


__all__ = [
    "LEAF_FORMAT",
    "Leaf",
    "LeafError",
    "canonical_originator",
    "encode_leaf",
    "stored_leaf",
]
