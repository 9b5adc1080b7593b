"""Webhook signature checks for Twilio and Mailgun.

A webhook URL is public: anyone who learns it can post a forged opt-out or a fake
bounce and switch a contact's messaging off (or, worse, back on). Every webhook
is therefore checked against the provider's shared secret before it is parsed
into a command. All comparisons are constant-time (``hmac.compare_digest``), and
checks never raise on hostile input: Twilio's returns False, Mailgun's raises a
:class:`SignatureError` naming the reason.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import threading
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

_DEFAULT_PORTS = {"https": "443", "http": "80"}
_UNIX_SECONDS = re.compile(r"[0-9]{1,11}")  # up to year 5138: datetime-safe


class SignatureError(Exception):
    """A webhook signature was refused; ``reason`` says why in one line."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class BadSignature(SignatureError):
    """The signature does not match: forged, or signed with another key."""


class StaleTimestamp(SignatureError):
    """The signed timestamp is outside the freshness window (or is not a time)."""


class ReplayedToken(SignatureError):
    """The signed token was seen before: a replay of an earlier webhook."""


def _as_bytes(text: str) -> bytes:
    # compare_digest refuses non-ASCII str; hostile headers may hold anything.
    return text.encode("utf-8", "surrogatepass")


# --- Twilio -------------------------------------------------------------------


def compute_twilio_signature(auth_token: str, url: str, params: Sequence[tuple[str, str]]) -> str:
    """``X-Twilio-Signature`` for a request: base64 HMAC-SHA1 over the URL and sorted params.

    Parameters are sorted by name, and a repeated name contributes each of its
    distinct values in sorted order; sorting the set of (name, value) pairs does
    both at once (a pair repeated exactly counts once, as in Twilio's own
    ``RequestValidator``). Raises ``UnicodeEncodeError`` for text that is not
    UTF-8 (lone surrogates).
    """
    signed = url + "".join(name + value for name, value in sorted(set(params)))
    digest = hmac.new(auth_token.encode("utf-8"), signed.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_twilio_signature(
    auth_token: str,
    url: str,
    params: Sequence[tuple[str, str]],
    signature: str,
    body: bytes | None = None,
) -> bool:
    """True when ``signature`` is Twilio's for this request.

    ``url`` is the full URL Twilio requested, query string included. Proxies add
    or drop the default port, so the URL is also tried with and without an
    explicit ``:443`` (https) or ``:80`` (http). For a JSON body (``body`` given)
    the URL must carry ``bodySHA256``, the hex SHA-256 of the raw body, and the
    signature covers the URL alone; a JSON body without that hash is refused,
    since nothing would bind the body to the signature.
    """
    if body is not None:
        try:
            claimed = parse_qs(urlsplit(url).query).get("bodySHA256", [])
        except ValueError:  # a malformed URL (bad IPv6 literal) was never Twilio's
            return False
        actual = hashlib.sha256(body).hexdigest().encode("ascii")
        if len(claimed) != 1 or not hmac.compare_digest(actual, _as_bytes(claimed[0].lower())):
            return False
        params = ()
    given = _as_bytes(signature)
    matched = False
    for candidate in _url_variants(url):
        try:
            expected = compute_twilio_signature(auth_token, candidate, params)
        except UnicodeEncodeError:
            return False
        matched |= hmac.compare_digest(expected.encode("ascii"), given)
    return matched


def _url_variants(url: str) -> list[str]:
    """``url`` as given, plus the same URL with the default port added or removed."""
    variants = [url]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return variants
    default = _DEFAULT_PORTS.get(parts.scheme.lower())
    start = url.find("//") + 2
    if (
        default is None
        or not parts.netloc
        or url[start : start + len(parts.netloc)] != parts.netloc
    ):
        return variants
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if port is None:
        if hostport.endswith(":"):
            return variants
        other = f"{hostport}:{default}"
    elif str(port) == default:
        other = hostport.rpartition(":")[0]
    else:
        return variants
    # Splice the netloc back in by position: urlunsplit would normalise the rest
    # of the URL (an empty query, a fragment) and so change the signed text.
    variants.append(url[:start] + userinfo + at + other + url[start + len(parts.netloc) :])
    return variants


# --- Mailgun ------------------------------------------------------------------


class ReplayCache(Protocol):
    """Remembers webhook tokens so a captured request cannot be replayed.

    ``remember`` must be atomic: of two concurrent calls with the same token,
    exactly one returns True. ``seen_at`` is the verifier's clock when the token
    was accepted. A token may be forgotten once ``seen_at`` lies more than twice
    the freshness window in the past: by then any replay fails the timestamp
    check anyway.
    """

    def remember(self, token: str, seen_at: datetime) -> bool:
        """Record ``token``; True if it was new, False if it had been seen before."""
        ...


class InMemoryReplayCache:
    """A process-local :class:`ReplayCache`: for tests and single-process services.

    Several service processes need a shared cache (the database-backed one), or a
    replay sent to another process would pass. ``retention`` must be at least
    twice the freshness window used with it (the default suits 15 minutes).
    """

    def __init__(self, retention: timedelta = timedelta(minutes=30)) -> None:
        self._retention = retention
        self._seen: set[str] = set()
        # Tokens arrive in roughly clock order, so expiring from the left of this
        # queue keeps each call O(expired); a late straggler only stays longer.
        self._order: deque[tuple[datetime, str]] = deque()
        self._latest: datetime | None = None
        self._lock = threading.Lock()

    def remember(self, token: str, seen_at: datetime) -> bool:
        with self._lock:
            if self._latest is None or seen_at > self._latest:
                self._latest = seen_at
            cutoff = self._latest - self._retention
            while self._order and self._order[0][0] < cutoff:
                self._seen.discard(self._order.popleft()[1])
            if token in self._seen:
                return False
            self._seen.add(token)
            self._order.append((seen_at, token))
            return True


def compute_mailgun_signature(signing_key: str, timestamp: str, token: str) -> str:
    """Mailgun's webhook signature: hex HMAC-SHA256(signing key, timestamp + token)."""
    message = (timestamp + token).encode("utf-8")
    return hmac.new(signing_key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def mailgun_signature_matches(signing_key: str, timestamp: str, token: str, signature: str) -> bool:
    """True when ``signature`` is Mailgun's for ``timestamp`` and ``token`` (no freshness check).

    Used alone only for archived webhooks (backfill), whose timestamps are old by
    nature; live webhooks go through :func:`verify_mailgun_signature`.
    """
    try:
        expected = compute_mailgun_signature(signing_key, timestamp, token)
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(expected.encode("ascii"), _as_bytes(signature.lower()))


def verify_mailgun_signature(
    signing_key: str,
    timestamp: str,
    token: str,
    signature: str,
    *,
    now: datetime,
    replay_cache: ReplayCache,
    window: timedelta = timedelta(minutes=15),
) -> None:
    """Accept a live Mailgun webhook signature or raise a :class:`SignatureError`.

    Checks, in this order: the HMAC (:class:`BadSignature`), the signed timestamp
    within ``window`` of ``now`` either way (:class:`StaleTimestamp`), and the
    token never seen before (:class:`ReplayedToken`). The token is remembered
    only once the first two checks pass, so forgeries cannot fill the cache.
    Mailgun signs only timestamp and token, not the event data, which is why the
    replay check matters. The token is remembered before the caller stores the
    event: a cache that shares the event's database transaction avoids refusing
    Mailgun's retry of a webhook whose storing failed.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not mailgun_signature_matches(signing_key, timestamp, token, signature):
        raise BadSignature("signature does not match timestamp and token for this signing key")
    if not _UNIX_SECONDS.fullmatch(timestamp):
        raise StaleTimestamp("timestamp is not a Unix time in whole seconds")
    signed_at = datetime.fromtimestamp(int(timestamp), UTC)
    skew = abs(now - signed_at)
    if skew > window:
        raise StaleTimestamp(f"timestamp is {skew} away from now, outside the {window} window")
    if not replay_cache.remember(token, now):
        raise ReplayedToken("token was already used by an earlier webhook")
