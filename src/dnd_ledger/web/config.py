"""The HTTP service's checks over its settings (``dnd_ledger.settings``): secrets, warnings,
uvicorn's options and the session key.

Secrets are checked before the service starts: an empty one, a placeholder
(``<...>``, ``changeme``, the documented example values, one repeated
character...) or one shorter than 16 characters is refused, unless the service
runs with ``--dev``, where it is only a warning.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from pydantic import SecretStr

from dnd_ledger.settings import Settings

MIN_SECRET = 16
#: SHA-256 of the empty string: a token entry that any empty bearer would match.
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: Values published in the documentation and the issue: examples, never secrets.
KNOWN_EXAMPLES = ("0123456789abcdef", "deadbeef", "abcdefabcdef", "1234567890")
_PLACEHOLDER_WORDS = (
    "changeme",
    "change-me",
    "change_me",
    "placeholder",
    "replace",
    "your-",
    "your_",
    "example",
    "todo",
    "fixme",
    "dummy",
    "xxxx",
    "secret",
    "password",
)


def serve_options(config: Settings) -> dict[str, Any]:
    """uvicorn's options from the limits: slow or many clients cannot hold it forever.

    ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are trusted only from
    ``forwarded_allow_ips`` (default: from nobody).
    """
    from dnd_ledger.web.http_protocol import NAME

    proxies = list(config.forwarded_allow_ips)
    return {
        "http": NAME,  # httptools with max_header_bytes applied, else h11
        "timeout_keep_alive": config.keep_alive_seconds,
        "limit_concurrency": config.max_concurrency,
        "h11_max_incomplete_event_size": config.max_header_bytes,
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": proxies or None,
    }


def session_key(config: Settings) -> bytes:
    """The key that signs session cookies: ``session_secret``, or derived from the file.

    Derived from every secret in the configuration, so every worker process
    reading the same file agrees, and changing any secret signs everyone out.
    """
    if config.session_secret is not None:
        material = config.session_secret.get_secret_value()
    else:
        parts = [config.public_url or ""]
        for name in sorted(config.locations):
            loc = config.locations[name]
            for s in (loc.twilio_auth_token, loc.mailgun_signing_key):
                parts.append(s.get_secret_value() if s is not None else "")
        parts += sorted(f"{t.name}:{t.sha256}" for t in config.tokens)
        material = "\n".join(parts)
    return hmac.new(b"dnd-ledger session key", material.encode(), hashlib.sha256).digest()


def secret_problem(value: str) -> str | None:
    """Why ``value`` is not a usable secret, or None when it is."""
    text = value.strip()
    if not text:
        return "is empty"
    low = text.lower()
    if "<" in text or ">" in text or "..." in text:
        return "is a placeholder"
    if any(w in low for w in _PLACEHOLDER_WORDS) or any(e in low for e in KNOWN_EXAMPLES):
        return "is a placeholder or a documented example value"
    if len(set(low.removeprefix("key-"))) <= 2:
        return "is a placeholder (one or two repeated characters)"
    if len(text) < MIN_SECRET:
        return f"is shorter than {MIN_SECRET} characters"
    return None


def secret_problems(config: Settings) -> list[str]:
    """Every empty, placeholder or weak secret in ``config``, one line each."""
    problems: list[str] = []
    for name, loc in sorted(config.locations.items()):
        for key in ("twilio_auth_token", "mailgun_signing_key"):
            secret: SecretStr | None = getattr(loc, key)
            if secret is None:
                continue
            why = secret_problem(secret.get_secret_value())
            if why:
                problems.append(f"locations.{name}.{key} {why}")
    for t in config.tokens:
        if not t.usable:
            problems.append(
                f"tokens '{t.name}': sha256 is not a hex SHA-256 (a placeholder?);"
                " compute it with: dnd-ledger web hash-token TOKEN"
            )
        elif t.sha256 == EMPTY_SHA256:
            problems.append(f"tokens '{t.name}': sha256 is the hash of an empty token")
    if config.session_secret is not None:
        why = secret_problem(config.session_secret.get_secret_value())
        if why:
            problems.append(f"session_secret {why}")
    return problems + subscriber_secret_problems(config)


def subscriber_secret_problems(config: Settings) -> list[str]:
    """Every placeholder or weak ``[[subscribers]]`` secret: a subscriber verifies its
    webhooks with it, so a documented example value would let anyone forge them."""
    found = []
    for sub in config.subscribers:
        why = secret_problem(sub.secret.get_secret_value())
        if why:
            found.append(f"subscribers '{sub.name}': secret {why}")
    return found


def config_warnings(config: Settings) -> list[str]:
    """What is allowed but probably not meant (the service still starts)."""
    warnings: list[str] = []
    if not config.tokens:
        warnings.append("no [[tokens]]: the API and the audit page refuse everyone")
    if not config.locations:
        warnings.append("no [locations.<id>]: every webhook is refused")
    if config.public_url and config.public_url.startswith("http://"):
        warnings.append(
            f"public_url {config.public_url} is not https: webhooks and tokens travel in clear"
        )
    return warnings
