"""Control characters and bidirectional overrides: refused at the door, escaped on the way out.

A terminal obeys ESC and BEL (and C1 controls such as CSI); PostgreSQL text
cannot hold NUL; a bidirectional override makes ``evil`` read as ``live``. So
every identifier and text field of a command is checked before the ledger
touches it: identifiers may hold none of these characters, free text (a reason,
evidence) may keep newline and tab. A received message body is never refused
(that would lose an opt-out): :func:`clean_body` removes them before it is
classified and stored. :func:`escape` renders any that are stored already.

Errors name the field and the problem, never the value.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from dnd_ledger.domain.errors import InvalidInput

_C0 = "\x00-\x08\x0b-\x1f"  # every C0 control but tab (\x09) and newline (\x0a)
_C1 = "\x7f-\x9f"  # DEL and the C1 controls
_BIDI = "\u202a-\u202e\u2066-\u2069"  # embeddings, overrides and isolates
#: Not allowed anywhere in an identifier (tab and newline included).
BAD_IN_ID = re.compile(f"[\t\n{_C0}{_C1}{_BIDI}]")
#: Not allowed in free text (reason, evidence, message body): newline and tab are.
BAD_IN_TEXT = re.compile(f"[{_C0}{_C1}{_BIDI}]")
#: Unicode surrogates cannot be stored as UTF-8 text anywhere.
_SURROGATE = re.compile("[\ud800-\udfff]")
#: Anything :func:`problem` refuses, in one pattern: a command whose fields, joined,
#: hold none of these is clean, so the field-by-field check runs only to name a field.
_ANY_IN_ID = re.compile(f"[\t\n{_C0}{_C1}{_BIDI}\ud800-\udfff]")
_ANY_IN_TEXT = re.compile(f"[{_C0}{_C1}{_BIDI}\ud800-\udfff]")

#: Command fields that are free text; every other string field is an identifier.
TEXT_FIELDS = frozenset({"reason", "evidence", "note"})
#: Command fields cleaned rather than refused (see :func:`clean_body`).
CLEANED_FIELDS = frozenset({"body", "provider_opt_out_type"})


def problem(value: str, *, text: bool = False) -> str | None:
    """What is wrong with ``value`` as an identifier (or free ``text``), or None."""
    if _SURROGATE.search(value):
        return "is not valid Unicode text (a lone surrogate)"
    found = (BAD_IN_TEXT if text else BAD_IN_ID).search(value)
    if found is None:
        return None
    ch = found.group()
    kind = "a bidirectional control" if ch in _BIDI_SET else "a control character"
    return f"contains {kind} (U+{ord(ch):04X})"


def check(field: str, value: str, *, text: bool = False) -> str:
    """``value``, or :class:`InvalidInput` naming ``field`` and the problem."""
    why = problem(value, text=text)
    if why is not None:
        raise InvalidInput(f"{field} {why}")
    return value


def check_command(command: Any) -> None:
    """Check every string field (and string in a tuple field) of a command dataclass."""
    ids, texts = _fields(type(command))
    if _ANY_IN_ID.search(" ".join(_strings(command, ids))) is None and (
        not texts or _ANY_IN_TEXT.search(" ".join(_strings(command, texts))) is None
    ):
        return
    for f in dataclasses.fields(command):  # in order: the first bad field is named
        if f.name not in CLEANED_FIELDS:
            for value in _strings(command, (f.name,)):
                check(f.name, value, text=f.name in TEXT_FIELDS)


_FIELDS: dict[type, tuple[tuple[str, ...], tuple[str, ...]]] = {}


def _fields(cls: type) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A command class's identifier fields and free-text fields (cleaned ones left out)."""
    found = _FIELDS.get(cls)
    if found is None:
        names = [f.name for f in dataclasses.fields(cls) if f.name not in CLEANED_FIELDS]
        found = _FIELDS[cls] = (
            tuple(n for n in names if n not in TEXT_FIELDS),
            tuple(n for n in names if n in TEXT_FIELDS),
        )
    return found


def _strings(command: Any, names: tuple[str, ...]) -> list[str]:
    """The strings of those fields: a string field, and each string of a tuple field."""
    out: list[str] = []
    for name in names:
        value = getattr(command, name)
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, tuple):
            out.extend(v for v in value if isinstance(v, str))
    return out


def clean_body(body: str) -> str:
    """A message body without control characters, bidi controls or lone surrogates."""
    return _SURROGATE.sub("", BAD_IN_TEXT.sub("", body))


def exact(value: str) -> str:
    """``value`` itself when it is valid Unicode; lone surrogates kept as their code points."""
    if not _SURROGATE.search(value):
        return value
    return value.encode("utf-8", "surrogatepass").decode("utf-8", "backslashreplace")


def escape(value: str) -> str:
    """``value`` with control and bidi characters shown as ``\\xNN`` / ``\\uNNNN``."""
    return BAD_IN_TEXT.sub(_escaped, _SURROGATE.sub(_escaped, value))


def json_safe(text: str) -> str:
    """JSON text with C1 and bidi controls as ``\\uNNNN`` (JSON escapes C0 itself)."""
    return BAD_IN_TEXT.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _escaped(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_BIDI_SET = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))
