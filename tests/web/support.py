"""Shared values and helpers of the HTTP tests: a configuration, tokens, signed requests."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from dnd_ledger.providers.signatures import compute_mailgun_signature, compute_twilio_signature

L = "loc-1"
L2 = "loc-2"
PUBLIC_URL = "https://ledger.example.test"
TWILIO_TOKEN = "5f0c7e2a9d1b4c3e8a6f0b2d4c1e9a7b"
MAILGUN_KEY = "key-4b7e1c9a2f5d8e0b3c6a9f2e5d8b1c4a"
TWILIO_TOKEN_2 = "c1d2e3f4a5b60718293a4b5c6d7e8f90"
PHONE = "+14155550100"
EMAIL = "ada@example.com"

#: bearer token -> roles (and locations, when restricted)
TOKENS: dict[str, dict[str, Any]] = {
    "reader-token-0123456789": {"name": "reader", "roles": ["read"]},
    "writer-token-0123456789": {"name": "writer", "roles": ["write"]},
    "support-token-012345678": {"name": "support", "roles": ["support"]},
    "sender-token-0123456789": {"name": "sender", "roles": ["read", "write"]},
    "loc2-reader-token-01234": {"name": "loc2-reader", "roles": ["read"], "locations": [L2]},
    "desk-token-012345678901": {"name": "desk", "roles": ["read", "support"]},
}
READ, WRITE, SUPPORT, SENDER, LOC2_READ, READ_SUPPORT = TOKENS


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def config_toml(public_url: str = PUBLIC_URL, **extra: str) -> str:
    lines = [f'public_url = "{public_url}"']
    lines += [f"{k} = {v}" for k, v in extra.items()]
    lines += [
        f"[locations.{L}]",
        f'twilio_auth_token = "{TWILIO_TOKEN}"',
        f'mailgun_signing_key = "{MAILGUN_KEY}"',
        f"[locations.{L2}]",
        f'twilio_auth_token = "{TWILIO_TOKEN_2}"',
    ]
    for token, spec in TOKENS.items():
        lines += ["[[tokens]]", f'name = "{spec["name"]}"', f'sha256 = "{sha256(token)}"']
        lines.append(f"roles = {json.dumps(spec['roles'])}")
        if "locations" in spec:
            lines.append(f"locations = {json.dumps(spec['locations'])}")
    return "\n".join(lines) + "\n"


def write_config(directory: Path, public_url: str = PUBLIC_URL, **extra: str) -> Path:
    path = directory / "ledger.toml"
    path.write_text(config_toml(public_url, **extra))
    return path


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def twilio_request(
    path: str,
    form: Mapping[str, str] | list[tuple[str, str]],
    *,
    auth_token: str = TWILIO_TOKEN,
    public_url: str = PUBLIC_URL,
) -> tuple[bytes, dict[str, str]]:
    """A form body and headers signed as Twilio signs them (over public_url + path)."""
    pairs = list(form.items()) if isinstance(form, Mapping) else list(form)
    signature = compute_twilio_signature(auth_token, public_url + path, pairs)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": signature,
    }
    return urlencode(pairs).encode(), headers


def inbound_form(body: str, sid: str = "SM0001", sender: str = PHONE) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "AccountSid": "AC0123456789",
        "From": sender,
        "To": "+14155550199",
        "Body": body,
        "NumMedia": "0",
    }


def status_form(sid: str, code: str | None, status: str = "undelivered") -> dict[str, str]:
    form = {"MessageSid": sid, "MessageStatus": status, "To": PHONE, "AccountSid": "AC0123"}
    if code is not None:
        form["ErrorCode"] = code
    return form


def mailgun_event(
    event: str = "failed",
    *,
    at: float,
    severity: str | None = "permanent",
    reason: str | None = "bounce",
    recipient: str = EMAIL,
    event_id: str = "ev-0001",
) -> dict[str, Any]:
    data: dict[str, Any] = {"event": event, "id": event_id, "timestamp": at, "recipient": recipient}
    if severity is not None:
        data["severity"] = severity
    if reason is not None:
        data["reason"] = reason
    return data


def mailgun_body(
    event_data: dict[str, Any],
    *,
    timestamp: int,
    token: str | None = None,
    key: str = MAILGUN_KEY,
) -> bytes:
    """A webhook body signed as Mailgun signs it (HMAC-SHA256 of timestamp + token)."""
    tok = token or secrets.token_hex(25)
    stamp = str(timestamp)
    signature = {
        "timestamp": stamp,
        "token": tok,
        "signature": compute_mailgun_signature(key, stamp, tok),
    }
    return json.dumps({"signature": signature, "event-data": event_data}).encode()


def inbound_path(location: str = L) -> str:
    return f"/v1/locations/{location}/webhooks/twilio/inbound"


def status_path(location: str = L) -> str:
    return f"/v1/locations/{location}/webhooks/twilio/status"


def mailgun_path(location: str = L) -> str:
    return f"/v1/locations/{location}/webhooks/mailgun"
