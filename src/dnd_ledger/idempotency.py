"""Idempotency keys that cover their content and hold no personal data.

- A user or support request's key is its request id plus a keyed fingerprint of
  what it asks (command, channels, actor, reason, time, ...). The same id with the
  same content is a duplicate; with other content it is refused (like Stripe's
  idempotency keys): see :meth:`Contact.has_key`.
- A legacy row's key is a fingerprint of the row (flag, addresses, time): a
  corrected row is recorded, an identical one is a duplicate.
- A provider key never holds an address: an email key that identifies a delivery
  only by its recipient is completed with the recipient's keyed reference.

Fingerprints are HMACs with the installation's key, so content with personal data
(addresses, evidence) does not leak through them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from dnd_ledger.domain.errors import InvalidInput
from dnd_ledger.domain.keys import REQUEST_PREFIX, content_key
from dnd_ledger.storage.pii import Keyring

LEGACY_PREFIX = "legacy-import"
MAX_REQUEST_ID = 256


def _canonical(content: dict[str, Any]) -> str:
    return json.dumps(content, sort_keys=True, separators=(",", ":"), default=_plain)


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return sorted(str(v) for v in value)
    return str(value)


def request_key(
    keyring: Keyring, request_id: str | None, command: str, **content: Any
) -> str | None:
    """The key of a request with an id (None without one)."""
    if request_id is None or not request_id.strip():
        return None
    rid = request_id.strip()
    if len(rid) > MAX_REQUEST_ID:
        raise InvalidInput(f"request_id is longer than {MAX_REQUEST_ID} characters")
    fingerprint = keyring.fingerprint(_canonical({"command": command, **content}))
    return content_key(REQUEST_PREFIX + rid, fingerprint)


def legacy_key(
    keyring: Keyring,
    dnd: bool,
    phone_refs: Iterable[str],
    email_refs: Iterable[str],
    occurred_at: datetime | None,
) -> str:
    """The key of a legacy row: what the row says, not only whose row it is."""
    content = {
        "dnd": dnd,
        "phones": sorted(phone_refs),
        "emails": sorted(email_refs),
        "at": occurred_at,
    }
    return content_key(LEGACY_PREFIX, keyring.fingerprint(_canonical(content)))


def email_key(token: str, recipient: str, recipient_ref: str, per_recipient: bool) -> str:
    """The key of an email event. A token that names its delivery only together with
    the recipient (a suppression-list row) gets the recipient's reference, never the
    address; a token holding the address itself is refused."""
    if recipient and recipient in token.lower():
        raise InvalidInput(
            "the email event's idempotency key holds the recipient's address; keys are "
            "stored for good and must not hold personal data"
        )
    return f"email:{token}:{recipient_ref}" if per_recipient else f"email:{token}"
