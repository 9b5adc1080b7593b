"""Mailgun webhooks and Events API items become ReportEmailEvent commands, or Ignored."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dnd_ledger.commands import ReportEmailEvent
from dnd_ledger.domain.values import EmailSignal
from dnd_ledger.providers.mailgun import (
    events_item_key,
    events_item_to_command,
    parse_event,
    parse_webhook,
    webhook_to_command,
)
from dnd_ledger.providers.outcomes import Ignored
from dnd_ledger.providers.payload import PayloadError

DATA = Path(__file__).resolve().parents[2] / "data" / "providers" / "mailgun"
LOCATION = "loc-7"


def raw(name: str) -> bytes:
    return (DATA / name).read_bytes()


def webhook(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(raw(f"webhook-{name}.json"))
    return body


def command_for(body: bytes | dict[str, Any]) -> ReportEmailEvent | Ignored:
    return webhook_to_command(parse_webhook(body), LOCATION)


def test_permanent_bounce_becomes_failed_permanent_keyed_by_the_signature_token() -> None:
    assert command_for(raw("webhook-failed-permanent-bounce.json")) == ReportEmailEvent(
        location_id=LOCATION,
        recipient="alice@example.org",
        signal=EmailSignal.FAILED_PERMANENT,
        idempotency_key="c76b19212d2d61456f8267cc550e497d259a567e284f39405c",
        reason="bounce",
        event_id="G9Bn5sl1TC6nu79C8C0bwg",
        occurred_at=datetime(2024, 5, 23, 9, 55, 26, 853841, tzinfo=UTC),
    )


def test_recipient_is_trimmed_and_lower_cased() -> None:
    body = webhook("failed-permanent-bounce")
    assert body["event-data"]["recipient"] == "Alice@Example.org "
    command = command_for(body)
    assert isinstance(command, ReportEmailEvent)
    assert command.recipient == "alice@example.org"


@pytest.mark.parametrize(
    "reason",
    ["bounce", "generic", "suppress-bounce", "suppress-complaint", "suppress-unsubscribe", "old"],
)
def test_permanent_failure_passes_its_reason_through(reason: str) -> None:
    body = webhook("failed-permanent-bounce")
    body["event-data"]["reason"] = reason
    command = command_for(body)
    assert isinstance(command, ReportEmailEvent)
    assert (command.signal, command.reason) == (EmailSignal.FAILED_PERMANENT, reason)


def test_suppress_complaint_fixture_is_a_permanent_failure_with_that_reason() -> None:
    command = command_for(raw("webhook-failed-permanent-suppress-complaint.json"))
    assert isinstance(command, ReportEmailEvent)
    assert (command.signal, command.reason) == (EmailSignal.FAILED_PERMANENT, "suppress-complaint")


def test_temporary_failure_becomes_failed_temporary() -> None:
    command = command_for(raw("webhook-failed-temporary.json"))
    assert isinstance(command, ReportEmailEvent)
    assert (command.signal, command.reason) == (EmailSignal.FAILED_TEMPORARY, "generic")
    assert command.recipient == "dave@example.com"


def test_complaint_becomes_complained() -> None:
    command = command_for(raw("webhook-complained.json"))
    assert isinstance(command, ReportEmailEvent)
    assert command.signal is EmailSignal.COMPLAINED
    assert command.occurred_at == datetime(2024, 5, 23, 10, 0, tzinfo=UTC)


def test_unsubscribe_becomes_unsubscribed() -> None:
    command = command_for(raw("webhook-unsubscribed.json"))
    assert isinstance(command, ReportEmailEvent)
    assert command.signal is EmailSignal.UNSUBSCRIBED


@pytest.mark.parametrize("name", ["delivered", "opened"])
def test_delivery_and_engagement_webhooks_are_ignored(name: str) -> None:
    assert command_for(raw(f"webhook-{name}.json")) == Ignored(
        f"mailgun event '{name}' carries no consent signal"
    )


@pytest.mark.parametrize(
    "event", ["accepted", "clicked", "stored", "rejected", "list_member_uploaded"]
)
def test_any_other_event_is_ignored(event: str) -> None:
    body = webhook("delivered")
    body["event-data"]["event"] = event
    assert isinstance(command_for(body), Ignored)


def test_event_name_and_severity_are_read_case_insensitively() -> None:
    body = webhook("failed-permanent-bounce")
    body["event-data"].update(event="Failed", severity="PERMANENT", reason="Bounce")
    command = command_for(body)
    assert isinstance(command, ReportEmailEvent)
    assert (command.signal, command.reason) == (EmailSignal.FAILED_PERMANENT, "bounce")


def test_a_failed_event_without_severity_is_a_payload_error() -> None:
    body = webhook("failed-permanent-bounce")
    del body["event-data"]["severity"]
    with pytest.raises(PayloadError, match=r"^event-data\.severity: a failed event needs"):
        command_for(body)


def test_a_signal_event_without_recipient_is_a_payload_error() -> None:
    body = webhook("complained")
    del body["event-data"]["recipient"]
    with pytest.raises(PayloadError, match=r"^event-data\.recipient: is required"):
        command_for(body)


def test_a_recipient_that_is_not_an_address_is_a_payload_error() -> None:
    body = webhook("complained")
    body["event-data"]["recipient"] = "erin at example.com"
    with pytest.raises(PayloadError, match="not an email address"):
        command_for(body)


def test_signature_block_is_parsed_with_parent_signature_when_present() -> None:
    body = webhook("complained")
    body["signature"]["parent-signature"] = "ab" * 32
    parsed = parse_webhook(body)
    assert parsed.signature.parent_signature == "ab" * 32
    assert parsed.signature.timestamp == body["signature"]["timestamp"]


def test_a_signature_timestamp_sent_as_a_number_is_read_as_its_decimal_text() -> None:
    body = webhook("complained")
    body["signature"]["timestamp"] = 1716458401
    assert parse_webhook(body).signature.timestamp == "1716458401"


def test_delivery_status_is_kept_on_the_model() -> None:
    event = parse_webhook(raw("webhook-failed-permanent-bounce.json")).event_data
    assert event.delivery_status is not None
    assert (event.delivery_status.code, event.delivery_status.attempt_no) == (550, 1)
    assert event.log_level == "error"


# --- Events API items ---------------------------------------------------------------


def test_events_api_item_is_keyed_by_id_and_microsecond_timestamp() -> None:
    item = webhook("failed-permanent-bounce")["event-data"]
    command = events_item_to_command(item, LOCATION)
    assert isinstance(command, ReportEmailEvent)
    assert command.idempotency_key == "mailgun-event:G9Bn5sl1TC6nu79C8C0bwg:1716458126.853841"
    assert command.signal is EmailSignal.FAILED_PERMANENT


def test_the_same_event_id_on_another_day_gets_another_key() -> None:
    item = webhook("complained")["event-data"]
    next_day = dict(item, timestamp=item["timestamp"] + 86_400)
    assert events_item_key(parse_event(item)) != events_item_key(parse_event(next_day))


def test_an_integer_timestamp_keys_the_same_as_its_float_twin() -> None:
    item = webhook("complained")["event-data"]
    assert item["timestamp"] == 1716458400.0
    as_int = dict(item, timestamp=1716458400)
    assert events_item_key(parse_event(item)) == events_item_key(parse_event(as_int))


def test_events_api_item_maps_like_the_webhook_apart_from_the_key() -> None:
    body = webhook("unsubscribed")
    from_webhook = command_for(copy.deepcopy(body))
    from_item = events_item_to_command(body["event-data"], LOCATION)
    assert isinstance(from_webhook, ReportEmailEvent)
    assert isinstance(from_item, ReportEmailEvent)
    assert from_item.idempotency_key != from_webhook.idempotency_key
    assert from_item == ReportEmailEvent(
        **{**vars(from_webhook), "idempotency_key": from_item.idempotency_key}
    )


def test_events_api_errors_name_the_field_without_the_webhook_prefix() -> None:
    item = webhook("failed-temporary")["event-data"]
    del item["severity"]
    with pytest.raises(PayloadError, match=r"^severity: "):
        events_item_to_command(item, LOCATION)
