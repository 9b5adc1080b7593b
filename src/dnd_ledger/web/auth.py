"""Bearer tokens with roles, and the audit page's session cookie.

A token is stored only as its SHA-256; a request's bearer token is hashed and
looked up. A browser signs in once with a read token and gets a session cookie
(HttpOnly, SameSite=Strict, Secure when the public URL is https) that names a
server-side session (see :mod:`dnd_ledger.web.sessions`) and the token, signed
with the configuration's session key. It dies at sign-out (for every worker),
when the token is removed from the configuration or loses its read role, and
after ``session_hours``. The token itself never appears in a URL or a cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from dnd_ledger.settings import ApiToken, Role, Settings
from dnd_ledger.web.config import session_key
from dnd_ledger.web.sessions import SessionStore

SESSION_COOKIE = "dnd_ledger_session"
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{32}")


class AuthError(Exception):
    """A refusal: ``status`` is 401 (who are you?) or 403 (not allowed)."""

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(detail)


def hash_token(token: str) -> str:
    """The hex SHA-256 of a bearer token, as stored in the configuration."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Caller:
    """Who made the request, and how they proved it."""

    token: ApiToken
    via: str  # "bearer" or "session"


_KNOWN_HEADERS = 1024


class TokenBook:
    def __init__(self, config: Settings, sessions: SessionStore | None = None) -> None:
        self._sessions = sessions
        self._by_hash = {t.sha256: t for t in config.tokens if t.usable}
        self._by_name = {t.name: t for t in config.tokens}
        #: Authorization headers already found, so a client's every request skips the hash.
        self._known: dict[str, ApiToken] = {}
        self._key = session_key(config)
        self.session_seconds = int(config.session_hours * 3600)

    # -- bearer tokens ------------------------------------------------------------
    def from_header(self, authorization: str | None) -> ApiToken:
        """The token of an ``Authorization: Bearer ...`` header, or AuthError(401)."""
        if not authorization:
            raise AuthError(401, "missing bearer token: send Authorization: Bearer <token>")
        found = self._known.get(authorization)
        if found is not None:
            return found
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthError(401, "the Authorization header must be: Bearer <token>")
        found = self.from_token(value.strip())
        if len(self._known) >= _KNOWN_HEADERS:  # only known tokens are kept: bounded anyway
            self._known.clear()
        self._known[authorization] = found
        return found

    def from_token(self, token: str) -> ApiToken:
        try:
            found = self._by_hash.get(hash_token(token))
        except UnicodeEncodeError:
            found = None
        if found is None:
            raise AuthError(401, "unknown bearer token")
        return found

    @staticmethod
    def check(token: ApiToken, role: Role, location_id: str | None = None) -> None:
        """AuthError(403) unless ``token`` has ``role`` (for ``location_id``, if given)."""
        if role not in token.roles:
            raise AuthError(403, f"token '{token.name}' does not have the '{role}' role")
        if location_id is not None and not token.allows(location_id):
            raise AuthError(
                403, f"token '{token.name}' is not allowed for location {location_id!r}"
            )

    # -- sessions -----------------------------------------------------------------
    def _mac(self, session_id: str, token: ApiToken, expires: int) -> bytes:
        message = f"{session_id}\n{token.name}\n{token.sha256}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def new_session(self, token: ApiToken, now: float | None = None) -> str:
        """A new session for ``token``, recorded server-side (so it can be revoked)."""
        expires = int(now if now is not None else time.time()) + self.session_seconds
        session_id = secrets.token_urlsafe(24)
        if self._sessions is not None:
            self._sessions.add(session_id, token.name, expires)
        name = _b64(token.name.encode("utf-8"))
        mac = _b64(self._mac(session_id, token, expires))
        return f"v2.{session_id}.{name}.{expires}.{mac}"

    def _parse(self, cookie: str | None, now: float | None) -> tuple[str, ApiToken] | None:
        """(session id, token) of a well-formed, correctly signed, unexpired cookie."""
        if not cookie or len(cookie) > 512:
            return None
        parts = cookie.split(".")
        if len(parts) != 5 or parts[0] != "v2" or not parts[3].isdigit():
            return None
        session_id = parts[1]
        if not _SESSION_ID.fullmatch(session_id):
            return None
        try:
            name = _unb64(parts[2]).decode("utf-8")
            mac = _unb64(parts[4])
        except (ValueError, UnicodeDecodeError):
            return None
        token = self._by_name.get(name)
        expires = int(parts[3])
        if token is None or not token.usable:
            return None
        if not hmac.compare_digest(mac, self._mac(session_id, token, expires)):
            return None
        if expires < (now if now is not None else time.time()):
            return None
        return session_id, token

    def from_session(self, cookie: str | None, now: float | None = None) -> ApiToken | None:
        """The token a valid, unexpired, unrevoked session cookie stands for, else None."""
        found = self._parse(cookie, now)
        if found is None:
            return None
        session_id, token = found
        moment = now if now is not None else time.time()
        if self._sessions is not None and not self._sessions.alive(session_id, token.name, moment):
            return None
        return token

    def end_session(self, cookie: str | None) -> None:
        """Revoke the cookie's session for every process (sign-out)."""
        found = self._parse(cookie, None)
        if found is not None and self._sessions is not None:
            self._sessions.revoke(found[0])
