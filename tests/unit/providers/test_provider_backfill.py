"""Backfill: archived payloads become the same commands as live webhooks, line by line."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dnd_ledger.commands import ReceiveInbound, ReportCarrierStatus, ReportEmailEvent
from dnd_ledger.domain.values import Channel, EmailSignal
from dnd_ledger.providers.backfill import BackfillItem, iter_backfill
from dnd_ledger.providers.outcomes import Ignored, ParseError

DATA = Path(__file__).resolve().parents[2] / "data" / "providers"
MAILGUN_TEST_KEY = "key-test-3f1e9d2c7b6a5948"
LOCATION = "loc-7"


def run(name: str, fmt: str, **options: object) -> list[BackfillItem]:
    with (DATA / name).open("rb") as lines:
        return list(iter_backfill(lines, fmt, LOCATION, **options))  # type: ignore[arg-type]


def kinds(items: list[BackfillItem]) -> list[tuple[int, str]]:
    return [(item.line, type(item.result).__name__) for item in items]


# --- Twilio -------------------------------------------------------------------------


def test_twilio_inbound_backfill_reports_every_line_and_skips_blank_ones() -> None:
    items = run("twilio/inbound-backfill.jsonl", "twilio-inbound")
    assert kinds(items) == [
        (1, "ReceiveInbound"),
        (2, "ReceiveInbound"),
        (4, "ParseError"),
        (5, "ReceiveInbound"),
        (6, "ParseError"),
    ]
    assert items[3].result == ReceiveInbound(
        location_id=LOCATION,
        channel=Channel.WHATSAPP,
        from_address="+5511988887777",
        body="START",
        message_id="SM7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f",
    )
    assert items[2].result == ParseError(
        "line: is not JSON (Expecting property name enclosed in double quotes at line 1)"
    )
    assert items[4].result == ParseError("MessageSid: Field required")


def test_twilio_status_backfill_maps_ignores_and_reports_errors_in_line_order() -> None:
    items = run("twilio/status-backfill.jsonl", "twilio-status")
    assert kinds(items) == [
        (1, "ReportCarrierStatus"),
        (2, "Ignored"),
        (3, "ParseError"),
        (4, "ReportCarrierStatus"),
    ]
    first = items[0].result
    assert isinstance(first, ReportCarrierStatus)
    assert (first.error_code, first.occurred_at) == (
        30003,
        datetime(2024, 5, 23, 10, 42, tzinfo=UTC),
    )


def test_text_lines_work_as_well_as_bytes() -> None:
    text = (DATA / "twilio/status-backfill.jsonl").read_text(encoding="utf-8")
    items = list(iter_backfill(io.StringIO(text), "twilio-status", LOCATION))
    assert kinds(items) == kinds(run("twilio/status-backfill.jsonl", "twilio-status"))


def test_a_line_that_is_not_utf8_is_reported_and_the_next_line_still_counts() -> None:
    good = (DATA / "twilio/inbound-sms.json").read_bytes().replace(b"\n", b"")
    items = list(iter_backfill([b'{"Body": "\xff"}\n', good + b"\n"], "twilio-inbound", LOCATION))
    assert kinds(items) == [(1, "ParseError"), (2, "ReceiveInbound")]
    assert "not valid UTF-8" in items[0].result.message  # type: ignore[union-attr]


# --- Mailgun webhooks ---------------------------------------------------------------


def test_mailgun_backfill_maps_each_archived_webhook() -> None:
    items = run("mailgun/webhooks-backfill.jsonl", "mailgun")
    assert kinds(items) == [
        (1, "ReportEmailEvent"),
        (2, "ReportEmailEvent"),
        (3, "ReportEmailEvent"),
        (4, "ReportEmailEvent"),
        (5, "ReportEmailEvent"),
        (6, "ParseError"),
        (7, "ReportEmailEvent"),
        (8, "Ignored"),
        (9, "Ignored"),
    ]


def test_mailgun_backfill_with_verification_refuses_the_forged_line_only() -> None:
    items = run(
        "mailgun/webhooks-backfill.jsonl",
        "mailgun",
        verify_signatures=True,
        signing_keys=["key-retired-0000", MAILGUN_TEST_KEY],
    )
    assert items[3].result == ParseError("signature: matches none of the signing keys")
    assert [item.line for item in items if isinstance(item.result, ReportEmailEvent)] == [
        1,
        2,
        3,
        5,
        7,
    ]


def test_mailgun_backfill_accepts_a_parent_account_signature() -> None:
    body = json.loads((DATA / "mailgun/webhook-complained.json").read_text(encoding="utf-8"))
    body["signature"]["parent-signature"] = body["signature"]["signature"]
    body["signature"]["signature"] = "0" * 64
    items = list(
        iter_backfill(
            [json.dumps(body)],
            "mailgun",
            LOCATION,
            verify_signatures=True,
            signing_keys=[MAILGUN_TEST_KEY],
        )
    )
    assert kinds(items) == [(1, "ReportEmailEvent")]


def test_archived_webhooks_verify_however_old_their_timestamps() -> None:
    items = run(
        "mailgun/webhooks-backfill.jsonl",
        "mailgun",
        verify_signatures=True,
        signing_keys=[MAILGUN_TEST_KEY],
    )
    assert sum(isinstance(item.result, ReportEmailEvent) for item in items) == 5


# --- Mailgun Events API -------------------------------------------------------------


def test_a_pretty_printed_events_page_yields_each_item_with_its_index() -> None:
    items = run("mailgun/events-page.json", "mailgun-events")
    assert [(item.line, item.index, type(item.result).__name__) for item in items] == [
        (1, 0, "ReportEmailEvent"),
        (1, 1, "ReportEmailEvent"),
        (1, 2, "ReportEmailEvent"),
        (1, 3, "ReportEmailEvent"),
        (1, 4, "Ignored"),
    ]
    first = items[0].result
    assert isinstance(first, ReportEmailEvent)
    assert first.idempotency_key == "mailgun-event:G9Bn5sl1TC6nu79C8C0bwg:1716458126.853841"
    assert (first.signal, first.reason, first.recipient) == (
        EmailSignal.FAILED_PERMANENT,
        "bounce",
        "alice@example.org",
    )


def test_events_pages_one_per_line_survive_a_truncated_page() -> None:
    items = run("mailgun/events-pages.jsonl", "mailgun-events")
    assert [(item.line, item.index, type(item.result).__name__) for item in items] == [
        (1, 0, "ReportEmailEvent"),
        (1, 1, "ReportEmailEvent"),
        (1, 2, "ReportEmailEvent"),
        (1, 3, "ReportEmailEvent"),
        (1, 4, "Ignored"),
        (2, None, "ParseError"),
        (3, 0, "ReportEmailEvent"),
        (3, 1, "Ignored"),
        (3, 2, "ParseError"),
    ]
    assert items[-1].result == ParseError(
        "severity: a failed event needs 'permanent' or 'temporary'"
    )


def test_an_events_file_whose_first_page_is_broken_still_yields_the_later_pages() -> None:
    lines = (DATA / "mailgun/events-pages.jsonl").read_text(encoding="utf-8").splitlines()
    items = list(iter_backfill([lines[1], lines[0]], "mailgun-events", LOCATION))
    assert (items[0].line, type(items[0].result)) == (1, ParseError)
    assert [item.line for item in items[1:]] == [2] * 5


def test_a_page_without_an_items_list_is_one_error() -> None:
    items = list(iter_backfill(['{"paging": {}}', '{"items": [3]}'], "mailgun-events", LOCATION))
    assert [item.result for item in items] == [
        ParseError("items: expected a list of events"),
        ParseError("items[0]: expected an object"),
    ]


def test_a_broken_pretty_printed_document_is_reported_line_by_line() -> None:
    text = (DATA / "mailgun/events-page.json").read_text(encoding="utf-8")
    broken = text.replace('"items": [', '"items": [[', 1).splitlines(keepends=True)
    items = list(iter_backfill(broken, "mailgun-events", LOCATION))
    assert items
    assert all(isinstance(item.result, ParseError) for item in items)


# --- Mailgun suppression exports ----------------------------------------------------


def test_bounce_export_rows_become_permanent_failures_with_suppress_bounce() -> None:
    items = run("mailgun/suppressions-bounces.csv", "mailgun-suppressions", list_name="bounces")
    assert kinds(items) == [
        (2, "ReportEmailEvent"),
        (3, "ReportEmailEvent"),
        (4, "ParseError"),
        (5, "ParseError"),
        (6, "ReportEmailEvent"),
    ]
    assert items[1].result == ReportEmailEvent(
        location_id=LOCATION,
        recipient="bob.smith@example.com",
        signal=EmailSignal.FAILED_PERMANENT,
        # No address in the key: the ledger adds the recipient's keyed reference.
        idempotency_key="mailgun-suppression:bounces:2024-05-06T17:01:44+00:00",
        reason="suppress-bounce",
        occurred_at=datetime(2024, 5, 6, 17, 1, 44, tzinfo=UTC),
        key_per_recipient=True,
    )
    assert items[3].result == ParseError(
        "created_at: is not a date (RFC 2822, ISO 8601 or Unix seconds)"
    )


@pytest.mark.parametrize(
    ("list_name", "reason"),
    [("complaints", "suppress-complaint"), ("unsubscribes", "suppress-unsubscribe")],
)
def test_complaint_and_unsubscribe_exports_are_permanent_failures_with_their_reason(
    list_name: str, reason: str
) -> None:
    items = run(
        f"mailgun/suppressions-{list_name}.csv", "mailgun-suppressions", list_name=list_name
    )
    commands = [item.result for item in items if isinstance(item.result, ReportEmailEvent)]
    assert commands
    assert {(c.signal, c.reason) for c in commands} == {(EmailSignal.FAILED_PERMANENT, reason)}
    assert all(c.idempotency_key.startswith(f"mailgun-suppression:{list_name}:") for c in commands)


def test_a_row_with_more_fields_than_the_header_is_an_error() -> None:
    items = run(
        "mailgun/suppressions-complaints.csv", "mailgun-suppressions", list_name="complaints"
    )
    assert items[1].result == ParseError("row: has 3 fields where the header has 2")


def test_the_same_suppression_in_either_date_format_has_one_key() -> None:
    header = "address,created_at\n"
    rfc = list(
        iter_backfill(
            [header, 'a@example.com,"Thu, 23 May 2024 09:42:06 UTC"'],
            "mailgun-suppressions",
            LOCATION,
            "bounces",
        )
    )
    iso = list(
        iter_backfill(
            [header, "a@example.com,2024-05-23T09:42:06Z"],
            "mailgun-suppressions",
            LOCATION,
            "bounces",
        )
    )
    unix = list(
        iter_backfill(
            [header, "a@example.com,1716457326"], "mailgun-suppressions", LOCATION, "bounces"
        )
    )
    keys = {item.result.idempotency_key for item in rfc + iso + unix}  # type: ignore[union-attr]
    assert keys == {"mailgun-suppression:bounces:2024-05-23T09:42:06+00:00"}


def test_an_export_with_a_byte_order_mark_reads_its_header() -> None:
    lines = ["\ufeffaddress,created_at\r\n", "a@example.com,2024-05-23T09:42:06Z\r\n"]
    items = list(iter_backfill(lines, "mailgun-suppressions", LOCATION, "complaints"))
    assert kinds(items) == [(2, "ReportEmailEvent")]


def test_an_export_without_the_needed_columns_reports_the_header_and_stops() -> None:
    lines = ["email,when\n", "a@example.com,2024-05-23T09:42:06Z\n"]
    items = list(iter_backfill(lines, "mailgun-suppressions", LOCATION, "bounces"))
    assert [(item.line, item.result) for item in items] == [
        (1, ParseError("header: lacks the column(s) address, created_at"))
    ]


def test_a_row_that_is_not_csv_is_an_error_and_the_next_row_still_counts() -> None:
    lines = ["address,created_at\n", '"a@example.com,2024\n', "b@example.com,1716457326\n"]
    items = list(iter_backfill(lines, "mailgun-suppressions", LOCATION, "bounces"))
    assert items[0].result == ParseError("row: is not a valid CSV line")
    assert kinds(items) == [(2, "ParseError"), (3, "ReportEmailEvent")]


# --- arguments ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "options", "message"),
    [
        ("twilio-calls", {}, "unknown backfill format"),
        ("mailgun-suppressions", {}, "list_name is required"),
        ("mailgun", {"list_name": "bounces"}, "only there"),
        ("mailgun-suppressions", {"list_name": "spam"}, "unknown suppression list"),
        ("mailgun", {"verify_signatures": True}, "signing keys"),
        ("twilio-inbound", {"verify_signatures": True, "signing_keys": ["k"]}, "mailgun format"),
    ],
)
def test_arguments_that_cannot_work_are_refused_before_any_line_is_read(
    fmt: str, options: dict[str, object], message: str
) -> None:
    def never_read() -> object:
        raise AssertionError("the source was read")
        yield  # pragma: no cover

    with pytest.raises(ValueError, match=message):
        iter_backfill(never_read(), fmt, LOCATION, **options)  # type: ignore[arg-type]


def test_ignored_results_say_why() -> None:
    items = run("twilio/status-backfill.jsonl", "twilio-status")
    assert items[1].result == Ignored("status callback 'delivered' carries no error code")
