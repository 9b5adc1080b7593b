"""Checks of what a command gives: identifiers, required and optional texts, channels.

Each raises :class:`InvalidInput` with one clear line, before anything is recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dnd_ledger.domain.errors import InvalidInput
from dnd_ledger.domain.values import ALL_CHANNELS, Channel

MAX_ID = 128
MAX_TEXT = 4096


def check_id(name: str, value: str) -> None:
    if not value or not value.strip():
        raise InvalidInput(f"{name} is empty")
    if len(value) > MAX_ID or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidInput(f"{name} is longer than {MAX_ID} characters or has control characters")


def required(name: str, value: str | None, limit: int = 256) -> str:
    text = (value or "").strip()
    if not text:
        raise InvalidInput(f"{name} is required")
    if len(text) > limit:
        raise InvalidInput(f"{name} is longer than {limit} characters")
    return text


def optional_text(name: str, value: str | None) -> str | None:
    return required(name, value, MAX_TEXT) if value and value.strip() else None


def channels(given: Sequence[Channel]) -> tuple[Channel, ...]:
    if not given:
        raise InvalidInput("no channel given: name channels or use all")
    out = []
    for ch in given:
        try:
            out.append(Channel(ch))
        except ValueError:
            raise InvalidInput(
                f"unknown channel {ch!r}; channels are {', '.join(c.value for c in ALL_CHANNELS)}"
            ) from None
    return tuple(dict.fromkeys(out))


def drop_none(**kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}
