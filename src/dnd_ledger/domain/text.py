"""Decoding the text files people hand to the ledger (CSV lists, policy and config files).

Every such file must be UTF-8. One that is not is refused with one line naming
the file, the line and the column of the first bad byte, never a traceback.
"""

from __future__ import annotations


class NotText(ValueError):
    """A file's bytes are not UTF-8 text."""


def bad_byte_at(raw: bytes, error: UnicodeDecodeError) -> str:
    """Where ``error`` found its bad byte in ``raw``: ``line L, column C: byte 0xNN``."""
    start = error.start
    line = raw.count(b"\n", 0, start) + 1
    column = start - (raw.rfind(b"\n", 0, start) + 1) + 1
    return f"line {line}, column {column}: byte 0x{raw[start]:02x} is not UTF-8"


def decode_text(raw: bytes, name: str) -> str:
    """``raw`` as text (a leading byte-order mark dropped); :class:`NotText` if not UTF-8."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise NotText(f"{name} is not UTF-8 text: {bad_byte_at(raw, e)}") from None
