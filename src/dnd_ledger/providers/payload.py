"""One error type for malformed provider input, and the checks that raise it.

Webhooks come from the internet and backfill files from people: either may be
truncated, mis-encoded, oversized or hostile. Every parser funnels what it cannot
accept into :class:`PayloadError`, so HTTP routes and the CLI handle exactly one
exception type. Messages name the field and the problem, never the value, so an
error log never repeats a phone number, an address or a message body.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from pydantic import BaseModel, ValidationError

#: Largest message body accepted (UTF-8 bytes). Twilio caps bodies at 1,600
#: characters, so anything bigger is not a real message.
MAX_BODY_BYTES = 10 * 1024
#: Largest single webhook payload accepted (UTF-8 bytes of the form or JSON body).
MAX_PAYLOAD_BYTES = 64 * 1024

M = TypeVar("M", bound=BaseModel)

#: A year written with four digits below 100 (``0001``): not a sign, a colon or a digit
#: on either side, so zone offsets (``+0100``) and times (``00:00``) do not match.
_YEAR_BELOW_100 = re.compile(r"(?<![0-9:+-])00[0-9]{2}(?![0-9:])")


class PayloadError(ValueError):
    """A provider payload is malformed: missing field, wrong type, too big, not UTF-8.

    ``field`` names where the problem is (``Body``, ``event-data.recipient``,
    ``body`` for the payload as a whole); ``str(error)`` is one line:
    ``"<field>: <problem>"``.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


def rfc2822_time(text: str) -> datetime:
    """An RFC 2822 date (``Thu, 30 Jul 2015 20:12:33 +0000``), as the standard library
    reads it, except that a four-digit year below 100 is refused: the library reads
    ``0001`` as 2001, so year 1 would be stored as a real time 2,000 years later.
    Raises ``ValueError`` (or what ``parsedate_to_datetime`` raises)."""
    if _YEAR_BELOW_100.search(text):
        raise ValueError("the year is below 100")
    return parsedate_to_datetime(text)


def field_name(name: object) -> str:
    """A field name fit for an error message: printable, bounded, never a value."""
    text = name if isinstance(name, str) else repr(name)
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= 40 else text[:37] + "..."


def encoded_size(text: str, field: str) -> int:
    """UTF-8 size of ``text``; text that cannot be UTF-8 (lone surrogates) is refused."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise PayloadError(field, "is not valid UTF-8 text") from None


def decode_utf8(raw: bytes | str, field: str, limit: int) -> str:
    """Decode ``raw`` strictly as UTF-8 and refuse it when larger than ``limit`` bytes."""
    if not isinstance(raw, bytes | bytearray | str):
        raise PayloadError(field, "expected bytes or text")
    size = encoded_size(raw, field) if isinstance(raw, str) else len(raw)
    if size > limit:
        raise PayloadError(field, f"is {size} bytes, over the {limit}-byte limit")
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(field, f"is not valid UTF-8 (bad byte at offset {exc.start})") from None


def load_json_object(
    raw: bytes | str, field: str = "body", limit: int = MAX_PAYLOAD_BYTES
) -> dict[str, object]:
    """Parse a JSON object, refusing anything else (arrays, NaN, deep nesting, bad bytes)."""
    text = decode_utf8(raw, field, limit)
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise PayloadError(field, f"is not JSON ({exc.msg} at line {exc.lineno})") from None
    except (RecursionError, ValueError):
        raise PayloadError(field, "is not JSON this parser accepts (NaN or too deep)") from None
    if not isinstance(data, dict):
        raise PayloadError(field, "expected a JSON object")
    return data


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def check_form(form: Mapping[str, object], limit: int = MAX_PAYLOAD_BYTES) -> dict[str, str]:
    """A copy of a decoded form whose names and values are all text, within ``limit`` bytes."""
    if not isinstance(form, Mapping):
        raise PayloadError("form", "expected a mapping of field names to strings")
    fields: dict[str, str] = {}
    size = 0
    for name, value in form.items():
        if not isinstance(name, str):
            raise PayloadError("form", "field names must be strings")
        if not isinstance(value, str):
            raise PayloadError(field_name(name), "expected a string")
        size += encoded_size(name, "form") + encoded_size(value, field_name(name))
        fields[name] = value
    if size > limit:
        raise PayloadError("form", f"is {size} bytes, over the {limit}-byte limit")
    return fields


def validate_model(model: type[M], data: object) -> M:
    """``model.model_validate(data)`` with pydantic's errors turned into one PayloadError."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        first = errors[0]
        where = ".".join(field_name(part) for part in first["loc"]) or "body"
        problem = first["msg"].removeprefix("Value error, ")
        if len(errors) > 1:
            problem += f" (and {len(errors) - 1} more problem(s))"
        raise PayloadError(where, problem) from None
