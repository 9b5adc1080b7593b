"""A subscriber of the change feed (``[[subscribers]]`` in the service config) and the
signature of what it receives: pure data and functions, no I/O.

Example::

    [[subscribers]]
    name = "crm"
    url = "https://crm.example.com/hooks/dnd"
    secret = "<32 random characters>"
    locations = ["loc-1"]        # default: every location
    channels = ["sms", "call"]   # default: every channel

Each change is POSTed as JSON with ``X-Dnd-Ledger-Delivery: <change id>`` and
``X-Dnd-Ledger-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator

from dnd_ledger.domain.values import Channel

SIGNATURE_HEADER = "X-Dnd-Ledger-Signature"
DELIVERY_HEADER = "X-Dnd-Ledger-Delivery"


class Subscriber(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    url: str
    secret: SecretStr
    locations: tuple[str, ...] | None = None
    channels: tuple[Channel, ...] | None = None
    #: How long a change is retried before it is given up (hours).
    give_up_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    #: The first retry's delay; each next one doubles, up to ``max_retry_seconds``.
    retry_seconds: float = Field(default=1.0, gt=0, le=3600)
    max_retry_seconds: float = Field(default=3600.0, gt=0, le=24 * 3600)
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL")
        return value.strip()

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    def wants(self, location_id: str, channel: str) -> bool:
        return (self.locations is None or location_id in self.locations) and (
            self.channels is None or channel in self.channels
        )

    def retry_delay(self, attempts: int) -> float:
        """Seconds before the next try after ``attempts`` failed ones (exponential)."""
        return float(min(self.retry_seconds * 2 ** max(attempts - 1, 0), self.max_retry_seconds))


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp`` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, *, now: int, tolerance: int = 300) -> bool:
    """What a receiver checks: the signature matches and its time is within ``tolerance``."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        t = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - t) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, t, body), f"t={t},v1={fields.get('v1', '')}")


def _unique(subs: tuple[Subscriber, ...]) -> tuple[Subscriber, ...]:
    names = [s.name for s in subs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"subscriber names must be unique: {', '.join(dupes)}")
    return subs


#: The ``subscribers`` key of the service config: names unique (they key the positions).
Subscribers = Annotated[tuple[Subscriber, ...], AfterValidator(_unique)]
