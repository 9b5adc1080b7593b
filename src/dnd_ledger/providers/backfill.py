"""Replay archived provider payloads (webhook logs, API exports) as ledger commands.

Opt-outs and bounces that reached the platform before the ledger existed must
still count, so a backfill turns stored payloads into the same commands the live
webhooks produce. Files are large and hand-made, so each line is judged alone:
the result for a line is a command, an :class:`Ignored` or a :class:`ParseError`,
and a bad line never stops the good ones. Feed lines as ``bytes`` (a file opened
in binary mode) to get an invalid UTF-8 line reported as that line's error
rather than raised by the file object. Blank lines are skipped.

Formats (``fmt``):

- ``twilio-inbound``, ``twilio-status``: JSON lines, each a webhook's form fields
  as a JSON object of strings.
- ``mailgun``: JSON lines, each a webhook body. With ``verify_signatures`` each
  line's signature (or ``parent-signature``) must match one of ``signing_keys``;
  freshness and replay are not checked, since archived timestamps are old by
  nature and duplicates are caught by the idempotency keys.
- ``mailgun-events``: Events API pages ``{"items": [...], "paging": {...}}``, one
  page per line or one (possibly pretty-printed) document; each item's result
  carries the page's first line and the item's ``index`` in the page.
- ``mailgun-suppressions``: a suppression-list CSV export; ``list_name`` says
  which list (bounces, complaints, unsubscribes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import ParamSpec

from dnd_ledger.commands import ReceiveInbound, ReportCarrierStatus, ReportEmailEvent
from dnd_ledger.providers import mailgun, suppressions, twilio
from dnd_ledger.providers.outcomes import Ignored, ParseError
from dnd_ledger.providers.payload import PayloadError, decode_utf8, load_json_object
from dnd_ledger.providers.signatures import (
    BadSignature,
    SignatureError,
    mailgun_signature_matches,
)

FORMATS = ("twilio-inbound", "twilio-status", "mailgun", "mailgun-events", "mailgun-suppressions")
#: Largest line or document accepted: an Events API page of 300 items fits easily.
MAX_PAGE_BYTES = 16 * 1024 * 1024

BackfillResult = ReceiveInbound | ReportCarrierStatus | ReportEmailEvent | Ignored | ParseError
Line = tuple[int, str | ParseError]
P = ParamSpec("P")


@dataclass(frozen=True)
class BackfillItem:
    """The result for one line (1-based ``line``); ``index`` is the position in a page."""

    line: int
    result: BackfillResult
    index: int | None = None


def iter_backfill(
    source: Iterable[str | bytes],
    fmt: str,
    location_id: str,
    list_name: str | None = None,
    *,
    verify_signatures: bool = False,
    signing_keys: Sequence[str] = (),
) -> Iterator[BackfillItem]:
    """Yield a :class:`BackfillItem` per payload in ``source`` (lines or a file).

    Raises ``ValueError`` at once (not while iterating) for arguments that
    cannot work: an unknown format, a missing or unknown ``list_name``, or
    signature verification without keys or for a format that has no signature.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown backfill format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if (fmt == "mailgun-suppressions") != (list_name is not None):
        raise ValueError("list_name is required for mailgun-suppressions, and only there")
    if list_name is not None and list_name not in suppressions.SUPPRESSION_REASONS:
        raise ValueError(f"unknown suppression list {list_name!r}")
    if verify_signatures and (fmt != "mailgun" or not signing_keys):
        raise ValueError("signature verification needs the mailgun format and signing keys")
    lines = _numbered(source)
    if list_name is not None:
        return _suppressions(lines, list_name, location_id)
    if fmt == "mailgun-events":
        return _event_pages(lines, location_id)
    keys = tuple(signing_keys) if verify_signatures else None
    converters: dict[str, Callable[[str], BackfillResult]] = {
        "twilio-inbound": lambda text: twilio.inbound_to_command(_line_object(text), location_id),
        "twilio-status": lambda text: twilio.status_to_command(_line_object(text), location_id),
        "mailgun": lambda text: _mailgun_webhook(text, location_id, keys),
    }
    return _json_lines(lines, converters[fmt])


def _numbered(source: Iterable[str | bytes]) -> Iterator[Line]:
    for number, raw in enumerate(source, start=1):
        try:
            text = decode_utf8(raw, "line", MAX_PAGE_BYTES)
        except PayloadError as exc:
            yield number, ParseError(str(exc))
            continue
        if number == 1:
            text = text.removeprefix("\ufeff")  # spreadsheet exports start with a BOM
        if text.strip():
            yield number, text


def _attempt(
    convert: Callable[P, BackfillResult], *args: P.args, **kwargs: P.kwargs
) -> BackfillResult:
    """``convert(*args)``, with the errors bad input may raise turned into a ParseError."""
    try:
        return convert(*args, **kwargs)
    except PayloadError as exc:
        return ParseError(str(exc))
    except SignatureError as exc:
        return ParseError(f"signature: {exc.reason}")


def _json_lines(
    lines: Iterable[Line], convert: Callable[[str], BackfillResult]
) -> Iterator[BackfillItem]:
    for number, text in lines:
        if isinstance(text, ParseError):
            yield BackfillItem(number, text)
        else:
            yield BackfillItem(number, _attempt(convert, text))


def _line_object(text: str) -> dict[str, object]:
    return load_json_object(text, "line")


def _mailgun_webhook(text: str, location_id: str, keys: tuple[str, ...] | None) -> BackfillResult:
    webhook = mailgun.parse_webhook(text)
    if keys is not None:
        sig = webhook.signature
        candidates = [s for s in (sig.signature, sig.parent_signature) if s]
        if not any(
            mailgun_signature_matches(key, sig.timestamp, sig.token, candidate)
            for key in keys
            for candidate in candidates
        ):
            raise BadSignature("matches none of the signing keys")
    return mailgun.webhook_to_command(webhook, location_id)


def _suppressions(
    lines: Iterable[Line], list_name: str, location_id: str
) -> Iterator[BackfillItem]:
    header: list[str] | None = None
    for number, text in lines:
        if header is None:
            # Without a header no row can be read: report it and stop.
            if isinstance(text, ParseError):
                yield BackfillItem(number, text)
                return
            try:
                header = suppressions.parse_header(text)
            except PayloadError as exc:
                yield BackfillItem(number, ParseError(str(exc)))
                return
        elif isinstance(text, ParseError):
            yield BackfillItem(number, text)
        else:
            convert = suppressions.row_to_command
            yield BackfillItem(number, _attempt(convert, text, header, list_name, location_id))


def _event_pages(lines: Iterator[Line], location_id: str) -> Iterator[BackfillItem]:
    """One page per line, or else one document; a document that fails goes line by line."""
    for number, text in lines:
        if isinstance(text, ParseError):
            yield BackfillItem(number, text)
            continue
        try:
            page = load_json_object(text, "page", MAX_PAGE_BYTES)
        except PayloadError:
            yield from _document_or_lines(chain([(number, text)], lines), location_id)
            return
        yield from _page_items(number, page, location_id)
        yield from _page_lines(lines, location_id)
        return


def _page_lines(lines: Iterable[Line], location_id: str) -> Iterator[BackfillItem]:
    for number, text in lines:
        if isinstance(text, ParseError):
            yield BackfillItem(number, text)
            continue
        try:
            page = load_json_object(text, "page", MAX_PAGE_BYTES)
        except PayloadError as exc:
            yield BackfillItem(number, ParseError(str(exc)))
            continue
        yield from _page_items(number, page, location_id)


def _document_or_lines(lines: Iterator[Line], location_id: str) -> Iterator[BackfillItem]:
    buffered: list[Line] = []
    size = 0
    for number, text in lines:
        buffered.append((number, text))
        if isinstance(text, ParseError):
            break  # a document with an unreadable line cannot parse
        size += len(text)
        if size > MAX_PAGE_BYTES:
            break
    else:
        texts = [text for _, text in buffered if isinstance(text, str)]
        try:
            document = load_json_object("\n".join(texts), "document", MAX_PAGE_BYTES)
        except PayloadError:
            pass
        else:
            yield from _page_items(buffered[0][0], document, location_id)
            return
    yield from _page_lines(chain(buffered, lines), location_id)


def _page_items(number: int, page: dict[str, object], location_id: str) -> Iterator[BackfillItem]:
    items = page.get("items")
    if not isinstance(items, list):
        yield BackfillItem(number, ParseError("items: expected a list of events"))
        return
    for index, item in enumerate(items):
        if isinstance(item, dict):
            result = _attempt(mailgun.events_item_to_command, item, location_id)
        else:
            result = ParseError(f"items[{index}]: expected an object")
        yield BackfillItem(number, result, index)
