"""Identities and idempotency keys: aggregate ids are uuid5 of the location and the id.

The namespace and the key formats are stored (in event ids and in events): they never change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Set
from functools import lru_cache
from types import MappingProxyType
from typing import NamedTuple, Protocol
from uuid import NAMESPACE_URL, UUID, uuid5

from dnd_ledger.domain.errors import IdempotencyKeyReused

NAMESPACE = uuid5(NAMESPACE_URL, "urn:dnd-ledger")
#: Idempotency keys of user and support requests start with this.
REQUEST_PREFIX = "request:"
#: Separates a key from the fingerprint of the content it was recorded with.
CONTENT_MARK = "#content:"


#: The keys and request keys of an aggregate that holds none in memory (shared, immutable:
#: an empty set takes 216 bytes, times every cached aggregate).
NO_KEYS: frozenset[str] = frozenset()
NO_REQUESTS: Mapping[str, str] = MappingProxyType({})


def content_key(base: str, fingerprint: str) -> str:
    """An idempotency key that covers its content: the same base with other content is
    another request (a legacy row that changed) or a reused request id (refused)."""
    return f"{base}{CONTENT_MARK}{fingerprint}"


@lru_cache(maxsize=200_000)
def contact_uuid(location_id: str, contact_id: str) -> UUID:
    return uuid5(NAMESPACE, f"contact\x1f{location_id}\x1f{contact_id}")


def request_id(key: str) -> str | None:
    """The request id a request key is held under (None: not a request key)."""
    if not key.startswith(REQUEST_PREFIX):
        return None
    return key.rpartition(CONTENT_MARK)[0] or key


def added(keys: Set[str], key: str) -> set[str]:
    """``keys`` with ``key``: added in place, or to a new set for the shared empty one."""
    kept = keys if isinstance(keys, set) else set(keys)
    kept.add(key)
    return kept


def with_request(requests: Mapping[str, str], key: str) -> Mapping[str, str]:
    """``requests`` with ``key`` under its request id, if it is a request key: in place,
    or in a new dict for the shared empty one."""
    request = request_id(key)
    if request is None:
        return requests
    kept = requests if isinstance(requests, dict) else dict(requests)
    kept[request] = key
    return kept


#: An aggregate's key filter: a 256-bit set (a Bloom filter of 3 positions an item) of
#: every idempotency key and request id it has recorded. It never grows; a key whose
#: positions are not all set was never recorded, so a compacted aggregate skips the
#: keys table for it (most keys are new). Stored in resume points: its hashing never
#: changes.
FILTER_BITS = 256
_FILTER_PERSON = b"dnd-ledger-keys"


def _positions(item: str) -> int:
    d = hashlib.blake2b(item.encode(), digest_size=3, person=_FILTER_PERSON).digest()
    return (1 << d[0]) | (1 << d[1]) | (1 << d[2])


def filter_with(bits: int, key: str) -> int:
    """A key filter ``bits`` with ``key`` (and its request id, for a request key)."""
    bits |= _positions(key)
    request = request_id(key)
    if request is not None and request != key:
        bits |= _positions(request)
    return bits


def may_hold(bits: int, key: str) -> bool:
    """Whether the key filter ``bits`` may hold ``key``: False means it was never
    recorded, nor (for a request key) any key under its request id."""
    base, mark, _ = key.rpartition(CONTENT_MARK)
    probe = _positions(base if mark and base.startswith(REQUEST_PREFIX) else key)
    return bits & probe == probe


class KeyLookup(Protocol):
    """Where the idempotency keys of every stored event are (the keys table): what a
    compacted aggregate consults for the keys it no longer holds in memory. A lookup that
    cannot answer raises; it never answers "not held" for want of an answer."""

    def holds(self, owner: UUID, key: str) -> bool:
        """Whether aggregate ``owner`` recorded ``key`` in a stored event."""
        ...

    def request_key(self, owner: UUID, request: str) -> str | None:
        """The key last recorded under request id ``request`` by ``owner`` (None: none)."""
        ...


class StoredKeys(NamedTuple):
    """One aggregate's keys in a :class:`KeyLookup`, and its key filter (which holds
    every one of them: see :func:`may_hold`)."""

    lookup: KeyLookup
    owner: UUID
    key_filter: int

    def holds(self, key: str) -> bool:
        return self.lookup.holds(self.owner, key)

    def request_key(self, request: str) -> str | None:
        return self.lookup.request_key(self.owner, request)


def is_held(
    key: str,
    keys: Set[str],
    requests: Mapping[str, str],
    contact_id: str,
    stored: StoredKeys | None = None,
) -> bool:
    """Whether ``key`` is among an aggregate's keys, where ``requests`` maps each
    recorded request id to its key. A request key whose request id is recorded with other
    content is refused: a request id names one request, and reusing it for another must
    not read as a harmless duplicate.

    Without ``stored``, ``keys`` and ``requests`` are all the aggregate's keys. With it (a
    compacted aggregate) they are those of the events applied since it was loaded, and
    ``stored`` has those of every stored event: memory is the newer, so a request id in
    ``requests`` is decided there; and the lookup is asked only when the aggregate's key
    filter may hold the key (see :func:`may_hold`)."""
    if key in keys:
        return True
    if stored is not None and not may_hold(stored.key_filter, key):
        return False  # never recorded, nor (a request key) anything under its request id
    base, mark, _ = key.rpartition(CONTENT_MARK)
    if not (mark and base.startswith(REQUEST_PREFIX)):
        return stored is not None and stored.holds(key)
    held = requests.get(base)
    if held is None and stored is not None:
        held = stored.request_key(base)
    if held is None:
        return False  # a recorded request key is always listed under its request id
    if held in (key, base):
        return True  # ``base``: recorded before keys covered content, the id alone decides
    if stored is not None and stored.holds(key):
        return True  # recorded, and its id used again since: the key itself is held
    raise IdempotencyKeyReused(
        f"request id {base.removeprefix(REQUEST_PREFIX)!r} was already used for a different "
        f"request on contact {contact_id!r}; nothing was recorded: give each request "
        "its own id"
    )
