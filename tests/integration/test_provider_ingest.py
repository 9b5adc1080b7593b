"""Provider payloads, as the providers send them, through the parsers into the ledger."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.cli.main import cli
from dnd_ledger.domain.values import Channel, DndKind
from dnd_ledger.providers.mailgun import parse_webhook, webhook_to_command
from dnd_ledger.providers.outcomes import Ignored
from dnd_ledger.providers.twilio import inbound_to_command, status_to_command

DATA = Path(__file__).resolve().parents[1] / "data" / "providers"
L = "loc-1"


def fixture(path: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((DATA / path).read_text())
    return data


def event_count(ledger: DndLedger) -> int:
    return len(ledger.recorder.select_notifications(start=1, limit=1_000_000))


def test_twilio_stop_delivered_three_times_appends_one_event(ledger: DndLedger) -> None:
    form = fixture("twilio/inbound-sms-advanced-opt-out-stop.json")
    ledger.execute(c.RegisterContact(L, "c-1", (form["From"],)))
    results = [ledger.execute(inbound_to_command(form, L)).result for _ in range(3)]
    assert results == ["appended", "duplicate", "duplicate"]
    assert [h.event for h in ledger.history(L, "c-1")] == ["Registered", "OptOutKeyword"]
    assert ledger.status(L, "c-1").channels[Channel.SMS].status is DndKind.PERMANENT


def test_twilio_status_30003_delivered_three_times_appends_one_event(ledger: DndLedger) -> None:
    form = fixture("twilio/status-undelivered-30003.json")
    ledger.execute(c.RegisterContact(L, "c-1", (form["To"],)))
    command = status_to_command(form, L)
    assert not isinstance(command, Ignored)
    before = event_count(ledger)
    results = [ledger.execute(command).result for _ in range(3)]
    assert results == ["appended", "duplicate", "duplicate"]
    assert event_count(ledger) == before + 2  # the address's record and the contact's
    assert ledger.status(L, "c-1").channels[Channel.SMS].status is DndKind.ACTIVE


def test_whatsapp_63014_callback_blocks_whatsapp(ledger: DndLedger) -> None:
    form = fixture("twilio/status-whatsapp-63014.json")
    ledger.execute(c.RegisterContact(L, "c-1", (form["To"].removeprefix("whatsapp:"),)))
    command = status_to_command(form, L)
    assert not isinstance(command, Ignored)
    ledger.execute(command)
    assert ledger.status(L, "c-1").channels[Channel.WHATSAPP].status is DndKind.PERMANENT


def test_mailgun_complaint_delivered_three_times_appends_one_event(ledger: DndLedger) -> None:
    body = (DATA / "mailgun/webhook-complained.json").read_bytes()
    command = webhook_to_command(parse_webhook(body), L)
    assert not isinstance(command, Ignored)
    ledger.execute(c.RegisterContact(L, "erin", emails=(command.recipient,)))
    results = [ledger.execute(command).result for _ in range(3)]
    assert results == ["appended", "duplicate", "duplicate"]
    assert ledger.status(L, "erin").channels[Channel.EMAIL].status is DndKind.PERMANENT


def test_mailgun_complaint_for_an_unknown_recipient_applies_when_registered(
    ledger: DndLedger,
) -> None:
    command = webhook_to_command(
        parse_webhook((DATA / "mailgun/webhook-complained.json").read_bytes()), L
    )
    assert not isinstance(command, Ignored)
    held = ledger.execute(command)
    assert held.result == "appended"
    assert held.contacts == ()
    ledger.execute(c.RegisterContact(L, "erin", emails=("Erin@Example.com",)))
    assert ledger.status(L, "erin").channels[Channel.EMAIL].status is DndKind.PERMANENT


def test_twilio_stop_from_an_unknown_number_applies_when_registered(ledger: DndLedger) -> None:
    form = fixture("twilio/inbound-sms-advanced-opt-out-stop.json")
    ledger.execute(inbound_to_command(form, L))
    ledger.execute(c.RegisterContact(L, "c-9", (form["From"],)))
    assert ledger.status(L, "c-9").channels[Channel.SMS].status is DndKind.PERMANENT


def test_our_keyword_reading_is_kept_beside_twilios_and_disagreement_flagged(
    ledger: DndLedger,
) -> None:
    form = fixture("twilio/inbound-sms-advanced-opt-out-stop.json")
    ledger.execute(c.RegisterContact(L, "c-1", (form["From"],)))
    agree = inbound_to_command(form, L)
    ledger.execute(agree)
    # Twilio reads UNSTOP as an opt-in; the default policy keeps it an opt-out.
    differ = inbound_to_command(
        {**form, "Body": "UNSTOP", "OptOutType": "START", "MessageSid": "SM2"}, L
    )
    ledger.execute(differ)
    details = [h.detail for h in ledger.history(L, "c-1")[1:]]
    assert details[0]["provider_opt_out_type"] == "STOP"
    assert details[0]["disagreement"] is False
    assert details[1]["classification"] == "opt-out"
    assert details[1]["provider_opt_out_type"] == "START"
    assert details[1]["disagreement"] is True
    assert ledger.status(L, "c-1").channels[Channel.SMS].status is DndKind.PERMANENT


def invoke(db: Path, *args: str, input: str | None = None) -> tuple[int, str, str]:
    if not db.exists():
        assert CliRunner().invoke(cli, ["--db", str(db), "init"]).exit_code == 0
    result = CliRunner().invoke(cli, ["--db", str(db), *args], input=input)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("path", "fmt", "extra"),
    [
        ("twilio/inbound-backfill.jsonl", "twilio-inbound", []),
        ("twilio/status-backfill.jsonl", "twilio-status", []),
        ("mailgun/webhooks-backfill.jsonl", "mailgun", []),
        ("mailgun/events-pages.jsonl", "mailgun-events", []),
        ("mailgun/events-page.json", "mailgun-events", []),
        ("mailgun/suppressions-bounces.csv", "mailgun-suppressions", ["--list", "bounces"]),
    ],
)
def test_ingesting_the_same_file_twice_appends_nothing_the_second_time(
    tmp_path: Path, path: str, fmt: str, extra: list[str]
) -> None:
    db = tmp_path / "ledger.db"
    args = ["ingest", str(DATA / path), "--format", fmt, "--location", L, "--json", *extra]
    _, out1, _ = invoke(db, *args)
    _, out2, _ = invoke(db, *args)
    first, second = json.loads(out1), json.loads(out2)
    assert second["appended"] == 0
    assert second["duplicates"] == first["appended"] + first["duplicates"]
    assert second["rejected"] == first["rejected"]
    assert second["ignored"] == first["ignored"]


def test_ingest_reports_bad_lines_keeps_good_ones_and_exits_1(tmp_path: Path) -> None:
    good = fixture("twilio/inbound-sms-advanced-opt-out-stop.json")
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps({**good, "MessageSid": "SM2", "From": "not a phone"}),
        json.dumps(
            {
                **{k: v for k, v in good.items() if k != "OptOutType"},
                "MessageSid": "SM3",
                "Body": "hello there",
            }
        ),
        json.dumps({k: v for k, v in good.items() if k != "MessageSid"}),
    ]
    code, out, _ = invoke(
        tmp_path / "l.db", "ingest", "-", "--format", "twilio-inbound", "--location", L, "--json",
        input="\n".join(lines) + "\n",
    )  # fmt: skip
    summary = json.loads(out)
    assert code == 1
    assert summary["appended"] == 1
    assert summary["ignored"] == 1
    assert summary["rejected"] == 3
    assert [e["line"] for e in summary["errors"]] == [2, 3, 5]
    assert "not in international E.164 form" in summary["errors"][1]["error"]


def test_ingest_with_verify_signatures_refuses_forged_lines(tmp_path: Path) -> None:
    body = json.loads((DATA / "mailgun/webhook-complained.json").read_text())
    forged = json.loads(json.dumps(body))
    forged["signature"]["signature"] = "0" * 64
    forged["signature"]["token"] = "f" * 50
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(body) + "\n" + json.dumps(forged) + "\n")
    key = _fixture_signing_key()
    config = tmp_path / "config.toml"
    config.write_text(f'[locations.{L}]\nmailgun_signing_key = "{key}"\n')
    code, out, _ = invoke(
        tmp_path / "l.db", "ingest", str(src), "--format", "mailgun", "--location", L,
        "--verify-signatures", "--config", str(config), "--json",
    )  # fmt: skip
    summary = json.loads(out)
    assert code == 1
    assert summary["appended"] == 1
    assert summary["rejected"] == 1
    assert summary["errors"][0]["line"] == 2


def _fixture_signing_key() -> str:
    text = (DATA / "SOURCE.md").read_text()
    for word in text.replace("`", " ").split():
        if word.startswith("key-"):
            return word.rstrip(".,;:)")
    pytest.fail("SOURCE.md names no Mailgun signing key for the fixtures")
