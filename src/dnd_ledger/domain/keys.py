"""Identities and idempotency keys: aggregate ids are uuid5 of the location and the id.

The namespace and the key formats are stored (in event ids and in events): they never change.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from uuid import NAMESPACE_URL, UUID, uuid5

from dnd_ledger.domain.errors import IdempotencyKeyReused

NAMESPACE = uuid5(NAMESPACE_URL, "urn:dnd-ledger")
#: Idempotency keys of user and support requests start with this.
REQUEST_PREFIX = "request:"
#: Separates a key from the fingerprint of the content it was recorded with.
CONTENT_MARK = "#content:"


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


def is_held(key: str, keys: set[str], requests: Mapping[str, str], contact_id: str) -> bool:
    """Whether ``key`` is among ``keys`` (an aggregate's), where ``requests`` maps each
    recorded request id to its key. A request key whose request id is recorded with other
    content is refused: a request id names one request, and reusing it for another must
    not read as a harmless duplicate."""
    if key in keys:
        return True
    base, mark, _ = key.rpartition(CONTENT_MARK)
    held = requests.get(base) if mark else None
    if held is None:
        return False
    if held == base:
        return True  # recorded before keys covered content: the id alone decides
    raise IdempotencyKeyReused(
        f"request id {base.removeprefix(REQUEST_PREFIX)!r} was already used for a different "
        f"request on contact {contact_id!r}; nothing was recorded: give each request "
        "its own id"
    )
