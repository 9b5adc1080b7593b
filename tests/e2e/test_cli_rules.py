"""The consent-rule commands through the CLI: can-send --purpose, confirmation record."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.e2e.test_cli import Cli, _no_ledger_environment  # noqa: F401 (autouse)

PHONE = "+14155550100"


@pytest.fixture
def stopped(tmp_path: Path) -> Cli:
    cli = Cli(str(tmp_path / "ledger.db"))
    cli.run("init")
    cli.run("contacts", "add", "loc-1", "ada", "--phone", PHONE)
    four_minutes_ago = (datetime.now(UTC) - timedelta(minutes=4)).isoformat()
    cli.run("inbound", "loc-1", "--channel", "sms", "--from", PHONE, "--body", "STOP",
            "--message-sid", "SM1", "--at", four_minutes_ago)  # fmt: skip
    return cli


def can_send(cli: Cli, *extra: str, code: int = 0) -> dict[str, object]:
    out = cli.run("can-send", "loc-1", "ada", "--channel", "sms", "--json", *extra, code=code)
    doc: dict[str, object] = json.loads(out.stdout)
    return doc


def test_the_confirmation_text_once_within_the_window(stopped: Cli) -> None:
    assert can_send(stopped)["allowed"] is False
    allowed = can_send(stopped, "--purpose", "opt-out-confirmation", "--exit-code")
    assert allowed["rule"] == "confirmation.within-window"
    later = (datetime.now(UTC) + timedelta(minutes=2)).isoformat()
    late = can_send(stopped, "--purpose", "opt-out-confirmation", "--at", later)
    assert (late["allowed"], late["rule"]) == (False, "confirmation.window-passed")
    record = ("confirmation", "record", "loc-1", "--channel", "sms", "--to", PHONE)
    out = stopped.run(*record, "--message-sid", "SM2", "--json")
    assert json.loads(out.stdout)["events"] == ["OptOutConfirmationSent"]
    second = stopped.run(*record, "--message-sid", "SM3", code=1)
    assert "only one is allowed" in second.stderr
    refused = can_send(stopped, "--purpose", "opt-out-confirmation", "--exit-code", code=1)
    assert refused["rule"] == "confirmation.already-sent"
    history = json.loads(stopped.run("history", "loc-1", "ada", "--json").stdout)
    assert history[-1]["event"] == "OptOutConfirmationSent"
    assert 230 < history[-1]["detail"]["delay_seconds"] < 300


def test_policy_show_lists_the_scope_rules_and_the_window(tmp_path: Path) -> None:
    cli = Cli(None)
    doc = json.loads(cli.run("policy", "show").stdout)
    assert doc["revocation_scope"][0]["name"] == "revoke-all"
    assert doc["revocation_scope"][0]["effective_from"] == "2027-01-31"
    assert doc["confirmation"]["window_seconds"] == 300
    summary = cli.run("policy", "show", "--format", "summary").stdout
    assert "revoke-all             2027-01-31     sms, call   sms, call" in summary
    assert "opt-out confirmation: one text within 300 s on sms" in summary
    assert "quiet-hours.US-FL  20:00-08:00  sms, call  marketing" in summary
    assert "review deadline: 10 business days (US holidays)" in summary
    assert [r["region"] for r in doc["quiet_hours"]] == ["US", "US-FL", "US-OK", "US-MD"]
    assert doc["review"]["deadline"]["business_days"] == 10


def test_review_list_resolve_and_stats(tmp_path: Path) -> None:
    cli = Cli(str(tmp_path / "ledger.db"))
    cli.run("init")
    cli.run("contacts", "add", "loc-1", "ada", "--phone", PHONE)
    cli.run("inbound", "loc-1", "--channel", "sms", "--from", PHONE, "--body",
            "please stop texting me", "--message-sid", "SM3", "--at", "2026-11-20T15:00:00Z")  # fmt: skip
    [item] = json.loads(cli.run("review", "list", "loc-1", "--format", "json").stdout)
    assert (item["item"], item["deadline"], item["overdue"]) == ("SM3", "2026-12-07", False)
    csv_out = cli.run("review", "list", "--format", "csv").stdout
    assert (
        csv_out.splitlines()[0] == "item,location_id,contacts,channel,received_at,deadline,overdue"
    )
    assert "SM3,loc-1,ada,sms," in csv_out
    assert "SM3" in cli.run("review", "list").stdout
    stats = json.loads(cli.run("stats", "loc-1", "--json").stdout)
    assert stats["loc-1"]["reviews"]["open"] == 1
    resolve = ("review", "resolve", "loc-1", "SM3", "--actor", "rita", "--note", "called back")
    out = cli.run(*resolve, "--as", "revocation").stdout
    assert out.startswith("appended RevocationConfirmed")
    assert "already resolved" in cli.run(*resolve, "--as", "not-revocation", code=1).stderr
    assert json.loads(cli.run("review", "list", "--format", "json").stdout) == []
    after = json.loads(cli.run("stats", "loc-1", "--json").stdout)["loc-1"]
    assert after["reviews"] == {"open": 0, "overdue": 0}  # every count named, zeros included
    status = json.loads(cli.run("status", "loc-1", "ada", "--json").stdout)
    assert status["channels"]["sms"]["status"] == "permanent"


def test_the_demo_shows_a_revoke_all_stop_and_the_confirmation_text(tmp_path: Path) -> None:
    out = Cli(None).run("demo", "--db", str(tmp_path / "demo.db")).stdout
    part = out[out.index("== Revoke-all") : out.index("Try it yourself")]
    assert "BLOCKED: outbound automated call: permanent DND on call" in part
    assert "call blocked too by scope rule revoke-all" in part
    assert "ALLOWED: outbound automated sms: one opt-out confirmation text allowed" in part
    assert "appended OptOutConfirmationSent for contact-ben" in part
    assert "refused: a confirmation (message SM-demo-11) was already recorded" in part
    assert part.rstrip().endswith("[confirmation.already-sent]")
    ada = Cli(str(tmp_path / "demo.db")).run("history", "loc-demo", "contact-ada", "--json")
    assert len(json.loads(ada.stdout)) == 6  # the first part's story is unchanged


def test_quiet_hours_from_the_command_line(tmp_path: Path) -> None:
    cli = Cli(str(tmp_path / "ledger.db"))
    cli.run("init")
    add = cli.run("contacts", "add", "loc-1", "ben", "--phone", "+12125550100",
                  "--region", "US-FL", "--time-zone", "America/New_York").stdout  # fmt: skip
    assert add == "appended Registered for ben\nappended ContactLocated for ben\n"
    ask = ("can-send", "loc-1", "ben", "--channel", "sms", "--purpose", "marketing", "--at")
    quiet = cli.run(*ask, "2026-12-03T01:01:00Z", "--exit-code", code=1).stdout
    assert quiet.startswith("BLOCKED: outbound automated sms: quiet hours for US-FL")
    assert "it is 20:01 in America/New_York (EST) [quiet-hours.US-FL]" in quiet
    assert cli.run(*ask, "2026-12-03T00:59:00Z", "--exit-code").stdout.startswith("ALLOWED")
    bad = cli.run("contacts", "add", "loc-1", "cy", "--time-zone", "Mars/Base", code=1)
    assert "unknown time zone 'Mars/Base'" in bad.stderr
    assert "not registered" in cli.run("status", "loc-1", "cy", code=1).stderr
