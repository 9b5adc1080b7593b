"""Personal data: keyed references in the ledger, values in a deletable vault.

Event payloads never hold a phone number, an email address or a message body.
They hold ``ref = HMAC-SHA256(installation key, kind || value)``: stable, so an
address always maps to the same aggregate, and not reversible without the key
(phone numbers are few enough to enumerate, so a plain hash would not do). The
values live in one table that can be erased without touching the ledger.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import phonenumbers

from dnd_ledger.domain.errors import InvalidInput, LedgerError
from dnd_ledger.domain.values import AddressKind
from dnd_ledger.files import private_dirs
from dnd_ledger.storage.persistence import Sql

_PREFIX = {AddressKind.PHONE: "ph_", AddressKind.EMAIL: "em_", "text": "tx_"}
_CHECK_LABEL = b"dnd-ledger pii key check v1"
MAX_ADDRESS = 320  # RFC 5321's limit for an email address; also bounds phone input


class KeyMismatch(LedgerError):
    """The PII key given is not the one this ledger's references were made with."""


@lru_cache(maxsize=20_000)
def normalise_phone(raw: str) -> str:
    """E.164 form of a phone number; ``whatsapp:`` prefixes are accepted."""
    text = raw.strip()
    if text.lower().startswith("whatsapp:"):
        text = text[len("whatsapp:") :].strip()
    if not text or len(text) > MAX_ADDRESS:
        raise InvalidInput("phone number is empty or too long")
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException as e:
        raise InvalidInput(
            f"phone number is not in international E.164 form (+<country><number>): {e}"
        ) from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidInput("phone number is not a possible number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=20_000)
def normalise_email(raw: str) -> str:
    text = raw.strip().lower()
    if text.startswith("mailto:"):
        text = text[len("mailto:") :]
    local, at, domain = text.rpartition("@")
    if (
        not at
        or not local
        or ("@" in local and not (len(local) > 1 and local[0] == local[-1] == '"'))
        or "." not in domain
        or domain.startswith(".")
        or domain.endswith(".")
        or len(text) > MAX_ADDRESS
        or any(ch.isspace() or ord(ch) < 32 for ch in text)
    ):
        raise InvalidInput("email address is not valid")
    return text


class Keyring:
    """Derives keyed references from the installation's secret key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise InvalidInput("the PII key must be at least 16 bytes")
        self._key = key

    def ref(self, kind: AddressKind | str, value: str) -> str:
        prefix = _PREFIX[kind]
        digest = hmac.digest(self._key, f"{kind}\x1f{value}".encode(), "sha256")
        return prefix + digest[:16].hex()

    def fingerprint(self, content: str) -> str:
        """A keyed digest of a request's content, for idempotency keys: equal content,
        equal fingerprint; it reveals nothing of the content without the key."""
        digest = hmac.digest(self._key, f"content\x1f{content}".encode(), "sha256")
        return digest[:12].hex()

    def check_value(self) -> str:
        return hmac.new(self._key, _CHECK_LABEL, hashlib.sha256).hexdigest()


def load_or_create_key(path: Path) -> bytes:
    """Read the key file, or make a new random one (mode 0600) if there is none."""
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    except ValueError as e:
        raise InvalidInput(f"PII key file {path} does not hold a hex key") from e
    private_dirs(path.parent)  # new directories 0700, the file 0600
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex() + "\n")
    return key


#: Refs a vault remembers having written.
KNOWN_REFS = 50_000


class SqlVault:
    TABLE = "dnd_pii"

    def __init__(self, sql: Sql) -> None:
        self.sql = sql
        self._known: set[str] = set()  # refs written by this process: skip the round trip

    def create_table(self) -> None:
        self.sql.execute(
            f"CREATE TABLE IF NOT EXISTS {self.TABLE} "
            "(ref TEXT PRIMARY KEY, kind TEXT NOT NULL, value TEXT NOT NULL)"
        )

    def put_in(self, c: Any, items: list[tuple[str, str, str]]) -> list[str]:
        """Write values in the caller's transaction; returns the refs to pass to
        :meth:`known` once it has committed."""
        new = {ref: (ref, kind, value) for ref, kind, value in items if ref not in self._known}
        if new:
            c.executemany(
                self.sql.q(
                    f"INSERT INTO {self.TABLE} (ref, kind, value) VALUES (?, ?, ?) "
                    "ON CONFLICT (ref) DO NOTHING"
                ),
                list(new.values()),
            )
        return list(new)

    def known(self, refs: Iterable[str]) -> None:
        """Remember refs as stored (after the transaction that wrote them committed)."""
        if len(self._known) > KNOWN_REFS:
            self._known.clear()  # bounded memory: forgotten refs cost one idempotent INSERT
        self._known.update(refs)

    def get(self, ref: str) -> str | None:
        row = self.sql.fetchone(f"SELECT value FROM {self.TABLE} WHERE ref = ?", (ref,))
        return None if row is None else str(row[0])

    def erase(self, refs: list[str]) -> int:
        erased = 0
        with self.sql.transaction() as c:
            for ref in refs:
                c.execute(self.sql.q(f"SELECT 1 FROM {self.TABLE} WHERE ref = ?"), (ref,))
                if c.fetchone() is not None:
                    c.execute(self.sql.q(f"DELETE FROM {self.TABLE} WHERE ref = ?"), (ref,))
                    erased += 1
        self._known.difference_update(refs)
        return erased
