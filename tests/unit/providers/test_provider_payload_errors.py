"""Malformed provider input is refused with one error type: PayloadError naming the field."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dnd_ledger.providers import mailgun, twilio
from dnd_ledger.providers.payload import MAX_BODY_BYTES, MAX_PAYLOAD_BYTES, PayloadError
from dnd_ledger.providers.suppressions import parse_created_at

DATA = Path(__file__).resolve().parents[2] / "data" / "providers"
INBOUND = json.loads((DATA / "twilio" / "inbound-sms.json").read_text(encoding="utf-8"))
STATUS = json.loads((DATA / "twilio" / "status-undelivered-30003.json").read_text(encoding="utf-8"))
WEBHOOK = json.loads(
    (DATA / "mailgun" / "webhook-failed-permanent-bounce.json").read_text(encoding="utf-8")
)


def inbound(fields: Any) -> object:
    return twilio.inbound_to_command(fields, "loc")


def status(fields: Any) -> object:
    return twilio.status_to_command(fields, "loc")


def email(body: Any) -> object:
    return mailgun.webhook_to_command(mailgun.parse_webhook(body), "loc")


def refused(call: Callable[[Any], object], payload: Any) -> PayloadError:
    with pytest.raises(PayloadError) as caught:
        call(payload)
    message = str(caught.value)
    assert "\n" not in message
    assert message == f"{caught.value.field}: {caught.value.problem}"
    return caught.value


def without(fields: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if key != name}


def with_event(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(json.dumps(WEBHOOK))
    for key, value in changes.items():
        body["event-data"][key.replace("_", "-")] = value
    return body


# --- Twilio -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["MessageSid", "AccountSid", "From", "To", "Body"])
def test_inbound_without_a_required_field_names_that_field(name: str) -> None:
    assert refused(inbound, without(INBOUND, name)).field == name


@pytest.mark.parametrize("name", ["MessageSid", "MessageStatus", "To"])
def test_status_without_a_required_field_names_that_field(name: str) -> None:
    assert refused(status, without(STATUS, name)).field == name


@pytest.mark.parametrize("value", [None, 42, ["STOP"], b"STOP", {"text": "STOP"}])
def test_a_form_value_that_is_not_text_is_refused(value: object) -> None:
    error = refused(inbound, {**INBOUND, "Body": value})
    assert (error.field, error.problem) == ("Body", "expected a string")


def test_a_form_field_name_that_is_not_text_is_refused() -> None:
    assert refused(inbound, {**INBOUND, 7: "x"}).field == "form"


@pytest.mark.parametrize("payload", [None, "MessageSid=SM1", ["MessageSid", "SM1"], 3])
def test_a_form_that_is_not_a_mapping_is_refused(payload: object) -> None:
    assert refused(inbound, payload).field == "form"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MessageSid", "SM 123"),
        ("MessageSid", ""),
        ("AccountSid", "AC;drop"),
        ("From", ""),
        ("From", "messenger:1234"),
        ("From", "whatsapp:"),
        ("NumMedia", "one"),
        ("NumMedia", "-1"),
        ("OptOutType", "S" * 33),
    ],
)
def test_an_inbound_field_of_the_wrong_shape_is_refused(name: str, value: str) -> None:
    assert refused(inbound, {**INBOUND, name: value}).field == name


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ErrorCode", "30OO3"),
        ("ErrorCode", "-30003"),
        ("ErrorCode", "3.0"),
        ("ErrorCode", "1234567890"),
        ("MessageStatus", "not a status"),
        ("RawDlrDoneDate", "2024-05-23"),
        ("RawDlrDoneDate", "2413011200"),
        ("RawDlrDoneDate", "2402301200"),
        ("To", "sms:+14155550123"),
    ],
)
def test_a_status_field_of_the_wrong_shape_is_refused(name: str, value: str) -> None:
    assert refused(status, {**STATUS, name: value}).field == name


#: Years below 100 written with four digits: the standard library reads 0001 as 2001.
YEAR_BELOW_100 = ["Mon, 01 Jan 0001 00:00:00 +0000", "Sat, 01 Jan 0026 00:00:00 +0100",
                  "01 Jan 0049 12:00:00 -0500"]  # fmt: skip


@pytest.mark.parametrize("when", YEAR_BELOW_100)
def test_an_rfc_2822_date_sent_with_a_year_below_100_is_refused(when: str) -> None:
    assert refused(inbound, {**INBOUND, "DateSent": when}).field == "DateSent"


@pytest.mark.parametrize("when", YEAR_BELOW_100)
def test_an_rfc_2822_suppression_time_with_a_year_below_100_is_refused(when: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_created_at(when)
    assert caught.value.field == "created_at"


@pytest.mark.parametrize(
    ("when", "utc"),
    [("Thu, 30 Jul 2015 20:12:33 +0000", "2015-07-30T20:12:33+00:00"),
     ("Fri, 21 Oct 2011 11:02:55 UTC", "2011-10-21T11:02:55+00:00"),
     ("Mon, 01 Jan 2001 00:00:00 -0030", "2001-01-01T00:30:00+00:00")],
)  # fmt: skip
def test_rfc_2822_dates_with_their_year_in_full_still_parse(when: str, utc: str) -> None:
    assert parse_created_at(when).isoformat() == utc


def test_an_inbound_body_over_ten_kilobytes_is_refused() -> None:
    error = refused(inbound, {**INBOUND, "Body": "é" * (MAX_BODY_BYTES // 2 + 1)})
    assert error.field == "Body"
    assert "over the 10240-byte limit" in error.problem


def test_an_inbound_body_of_exactly_ten_kilobytes_is_accepted() -> None:
    inbound({**INBOUND, "Body": "x" * MAX_BODY_BYTES})


def test_a_whole_form_over_sixty_four_kilobytes_is_refused() -> None:
    padding = {f"Extra{i}": "x" * 1000 for i in range(70)}
    error = refused(status, {**STATUS, **padding})
    assert (error.field, error.problem[-25:]) == ("form", "over the 65536-byte limit")


def test_form_text_that_cannot_be_utf8_is_refused() -> None:
    error = refused(inbound, {**INBOUND, "Body": "STOP\udcff"})
    assert (error.field, error.problem) == ("Body", "is not valid UTF-8 text")


# --- Mailgun ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"signature": "\xff"}', "not valid UTF-8"),
        (b"\xef\xbb\xbf{}", "not JSON"),
        (b"", "not JSON"),
        (b"{", "not JSON"),
        (b"[]", "expected a JSON object"),
        (b'"text"', "expected a JSON object"),
        (b'{"a": NaN}', "NaN or too deep"),
        (b"[" * 5000 + b"]" * 5000, "NaN or too deep"),
        (b'{"a": "' + b"x" * MAX_PAYLOAD_BYTES + b'"}', "over the 65536-byte limit"),
    ],
    ids=["bad-utf8", "bom", "empty", "truncated", "array", "string", "nan", "deep", "huge"],
)
def test_a_mailgun_body_that_is_not_a_small_utf8_json_object_is_refused(
    body: bytes, problem: str
) -> None:
    error = refused(email, body)
    assert error.field == "body"
    assert problem in error.problem


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (("signature",), "signature"),
        (("signature", "token"), "signature.token"),
        (("signature", "timestamp"), "signature.timestamp"),
        (("signature", "signature"), "signature.signature"),
        (("event-data",), "event-data"),
        (("event-data", "event"), "event-data.event"),
        (("event-data", "id"), "event-data.id"),
        (("event-data", "timestamp"), "event-data.timestamp"),
    ],
)
def test_a_mailgun_webhook_without_a_required_field_names_that_field(
    path: tuple[str, ...], field: str
) -> None:
    body = json.loads(json.dumps(WEBHOOK))
    parent = body
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    error = refused(email, body)
    assert (error.field, error.problem) == (field, "Field required")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"timestamp": "1716458126.85"}, "event-data.timestamp"),
        ({"timestamp": True}, "event-data.timestamp"),
        ({"timestamp": -1}, "event-data.timestamp"),
        ({"timestamp": 1e20}, "event-data.timestamp"),
        ({"timestamp": 10**400}, "event-data.timestamp"),
        ({"timestamp": float("nan")}, "event-data.timestamp"),
        ({"timestamp": float("inf")}, "event-data.timestamp"),
        ({"event": ""}, "event-data.event"),
        ({"event": 5}, "event-data.event"),
        ({"recipient": ["alice@example.org"]}, "event-data.recipient"),
        ({"severity": 1}, "event-data.severity"),
        ({"delivery_status": "550"}, "event-data.delivery-status"),
        ({"id": ""}, "event-data.id"),
    ],
)
def test_a_mailgun_field_of_the_wrong_type_names_that_field(
    changes: dict[str, Any], field: str
) -> None:
    assert refused(email, with_event(**changes)).field == field


def test_a_mailgun_error_never_repeats_the_value_it_refused() -> None:
    error = refused(email, with_event(recipient="secret-person at example.org"))
    assert "secret-person" not in str(error)


def test_several_problems_are_reported_as_the_first_plus_a_count() -> None:
    body = json.loads(json.dumps(WEBHOOK))
    del body["signature"]["token"]
    del body["event-data"]["id"]
    assert str(refused(email, body)) == "signature.token: Field required (and 1 more problem(s))"


def test_payload_error_is_a_value_error() -> None:
    assert issubclass(PayloadError, ValueError)
