"""Fuzzing: whatever arrives, the parsers raise PayloadError or nothing at all.

Hypothesis feeds arbitrary mappings, text and bytes, and also near-valid payloads
with one field replaced by an arbitrary value, so the search reaches past the
first check. Signature checks must never raise on hostile input either, and a
backfill must never raise while iterating.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnd_ledger.commands import ReceiveInbound, ReportCarrierStatus, ReportEmailEvent
from dnd_ledger.providers import mailgun, twilio
from dnd_ledger.providers.backfill import FORMATS, iter_backfill
from dnd_ledger.providers.outcomes import Ignored, ParseError
from dnd_ledger.providers.payload import PayloadError
from dnd_ledger.providers.signatures import (
    InMemoryReplayCache,
    SignatureError,
    verify_mailgun_signature,
    verify_twilio_signature,
)
from dnd_ledger.providers.suppressions import parse_created_at

DATA = Path(__file__).resolve().parents[2] / "data" / "providers"
INBOUND = json.loads((DATA / "twilio/inbound-sms.json").read_text(encoding="utf-8"))
STATUS = json.loads((DATA / "twilio/status-undelivered-30003.json").read_text(encoding="utf-8"))
WEBHOOK = json.loads(
    (DATA / "mailgun/webhook-failed-permanent-bounce.json").read_text(encoding="utf-8")
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text including lone surrogates: what a lenient decoder upstream may hand over.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
edge_numbers = st.sampled_from([10**400, -(10**400), 2**63, -1, 0, float("inf"), float("nan")])
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | edge_numbers
    | any_text
    | st.binary(max_size=20)
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
anything = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.one_of(any_text, st.integers()), inner, max_size=4)
    ),
    max_leaves=20,
)


def only_payload_errors(call: Any, payload: Any) -> object:
    try:
        return call(payload)
    except PayloadError:
        return None


def twilio_inbound(fields: Any) -> object:
    return twilio.inbound_to_command(fields, "loc")


def twilio_status(fields: Any) -> object:
    return twilio.status_to_command(fields, "loc")


def mailgun_webhook(body: Any) -> object:
    return mailgun.webhook_to_command(mailgun.parse_webhook(body), "loc")


def mailgun_item(item: Any) -> object:
    return mailgun.events_item_to_command(item, "loc")


# --- Twilio -------------------------------------------------------------------------


@FUZZ
@given(st.dictionaries(st.one_of(any_text, st.integers()), scalars, max_size=12) | anything)
def test_twilio_parsers_raise_only_payload_errors_on_arbitrary_input(payload: Any) -> None:
    inbound = only_payload_errors(twilio_inbound, payload)
    assert inbound is None or isinstance(inbound, ReceiveInbound)
    status = only_payload_errors(twilio_status, payload)
    assert status is None or isinstance(status, ReportCarrierStatus | Ignored)


@FUZZ
@given(st.sampled_from(sorted(INBOUND)), scalars)
def test_twilio_inbound_with_one_field_replaced_yields_a_command_or_payload_error(
    name: str, value: Any
) -> None:
    result = only_payload_errors(twilio_inbound, {**INBOUND, name: value})
    assert result is None or isinstance(result, ReceiveInbound)


@FUZZ
@given(st.sampled_from([*sorted(STATUS), "OptOutType"]), scalars)
def test_twilio_status_with_one_field_replaced_yields_a_result_or_payload_error(
    name: str, value: Any
) -> None:
    result = only_payload_errors(twilio_status, {**STATUS, name: value})
    assert result is None or isinstance(result, ReportCarrierStatus | Ignored)


@FUZZ
@given(st.binary(max_size=300))
def test_twilio_form_decoding_raises_only_payload_errors(raw: bytes) -> None:
    pairs = only_payload_errors(twilio.parse_form, raw)
    if pairs is not None:
        only_payload_errors(twilio_inbound, dict(pairs))  # type: ignore[call-overload]


# --- Mailgun ------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=300) | any_text | anything)
def test_mailgun_webhook_parser_raises_only_payload_errors_on_arbitrary_input(
    payload: Any,
) -> None:
    only_payload_errors(mailgun_webhook, payload)


@FUZZ
@given(json_values)
def test_mailgun_webhook_parser_raises_only_payload_errors_on_arbitrary_json(value: Any) -> None:
    only_payload_errors(mailgun_webhook, json.dumps(value).encode())


@FUZZ
@given(
    st.sampled_from(
        [
            "event",
            "id",
            "timestamp",
            "recipient",
            "severity",
            "reason",
            "delivery-status",
            "log-level",
        ]
    ),
    anything,
)
def test_mailgun_event_with_one_field_replaced_yields_a_result_or_payload_error(
    name: str, value: Any
) -> None:
    body = json.loads(json.dumps(WEBHOOK))
    body["event-data"][name] = value
    result = only_payload_errors(mailgun_webhook, body)
    assert result is None or isinstance(result, ReportEmailEvent | Ignored)
    item_result = only_payload_errors(mailgun_item, body["event-data"])
    assert item_result is None or isinstance(item_result, ReportEmailEvent | Ignored)


@FUZZ
@given(st.sampled_from(["timestamp", "token", "signature", "parent-signature"]), anything)
def test_mailgun_signature_block_with_one_field_replaced_parses_or_is_refused(
    name: str, value: Any
) -> None:
    body = json.loads(json.dumps(WEBHOOK))
    body["signature"][name] = value
    only_payload_errors(mailgun_webhook, body)


# --- signatures ---------------------------------------------------------------------


@FUZZ
@given(
    any_text,
    any_text,
    st.lists(st.tuples(any_text, any_text), max_size=5),
    any_text,
    st.none() | st.binary(max_size=50),
)
def test_twilio_verification_answers_a_bool_for_any_input(
    token: str, url: str, params: list[tuple[str, str]], signature: str, body: bytes | None
) -> None:
    assert verify_twilio_signature(token, url, params, signature, body=body) in (True, False)


urls = st.builds(
    "{}://{}{}{}?{}".format,
    st.sampled_from(["https", "http", "HTTPS", "ftp", ""]),
    st.sampled_from(["example.com", "user:pw@example.com", "[::1]", "[::1", "host", ""]),
    st.sampled_from(["", ":443", ":80", ":0443", ":", ":99999", ":x"]),
    st.sampled_from(["/hook", "", "/a/b#frag", "//"]),
    st.sampled_from(["", "bodySHA256=ab", "bodySHA256=1&bodySHA256=2", "a=%FF"]),
)


@FUZZ
@given(
    urls, st.lists(st.tuples(any_text, any_text), max_size=3), st.none() | st.binary(max_size=20)
)
def test_twilio_verification_answers_a_bool_for_any_url_shape(
    url: str, params: list[tuple[str, str]], body: bytes | None
) -> None:
    assert verify_twilio_signature("token", url, params, "sig", body=body) in (True, False)


@FUZZ
@given(any_text, any_text, any_text, any_text)
def test_mailgun_verification_raises_only_signature_errors(
    key: str, timestamp: str, token: str, signature: str
) -> None:
    with contextlib.suppress(SignatureError):
        verify_mailgun_signature(
            key,
            timestamp,
            token,
            signature,
            now=datetime(2024, 5, 23, tzinfo=UTC),
            replay_cache=InMemoryReplayCache(),
        )


# --- backfill -----------------------------------------------------------------------


lines = st.lists(
    st.binary(max_size=120) | any_text | st.builds(json.dumps, json_values), max_size=8
)


@FUZZ
@given(lines, st.sampled_from(FORMATS))
def test_backfill_never_raises_and_numbers_every_result_by_its_line(
    source: list[bytes | str], fmt: str
) -> None:
    list_name = "bounces" if fmt == "mailgun-suppressions" else None
    for item in iter_backfill(source, fmt, "loc", list_name):
        assert 1 <= item.line <= len(source)
        assert isinstance(
            item.result,
            ReceiveInbound | ReportCarrierStatus | ReportEmailEvent | Ignored | ParseError,
        )


@FUZZ
@given(lines)
def test_verified_mailgun_backfill_never_raises(source: list[bytes | str]) -> None:
    for item in iter_backfill(source, "mailgun", "loc", verify_signatures=True, signing_keys=["k"]):
        assert not isinstance(item.result, ReportEmailEvent)


rfc2822ish = st.from_regex(
    r"\A[A-Za-z]{0,4},? ?[0-9]{1,3} [A-Za-z]{3} [0-9]{1,6} [0-9]{1,3}:[0-9]{1,3}(:[0-9]{1,3})? ?"
    r"([A-Z]{1,4}|[+-][0-9]{4})?\Z"
)
isoish = st.from_regex(
    r"\A[0-9]{1,6}-[0-9]{1,2}-[0-9]{1,2}([T ][0-9:.]{1,15})?([Z+-][0-9:]{0,5})?\Z"
)


@FUZZ
@given(rfc2822ish | isoish | any_text)
def test_suppression_dates_parse_or_raise_payload_error(text: str) -> None:
    parsed = only_payload_errors(parse_created_at, text)
    assert parsed is None or (isinstance(parsed, datetime) and parsed.utcoffset() is not None)


@FUZZ
@given(
    st.lists(
        any_text | st.binary(max_size=80) | rfc2822ish.map(lambda d: f'a@b.c,"{d}"'), max_size=6
    )
)
def test_suppression_rows_under_a_valid_header_never_raise(rows: list[str | bytes]) -> None:
    source = ["address,code,error,created_at\n", *rows]
    for item in iter_backfill(source, "mailgun-suppressions", "loc", "complaints"):
        assert 2 <= item.line <= len(source)


@FUZZ
@given(st.lists(st.lists(json_values, max_size=4), max_size=4))
def test_events_pages_with_arbitrary_items_never_raise(pages: list[list[Any]]) -> None:
    source = [json.dumps({"items": items, "paging": {}}) for items in pages]
    for item in iter_backfill(source, "mailgun-events", "loc"):
        assert item.index is not None
