"""Identities and idempotency keys: aggregate ids are uuid5 of the location and the id.

The namespace and the key formats are stored (in event ids and in events): they never change.
"""

from __future__ import annotations

from functools import lru_cache
from uuid import NAMESPACE_URL, UUID, uuid5

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
