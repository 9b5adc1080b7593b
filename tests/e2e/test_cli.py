"""The ``dnd-ledger`` command line, end to end, against the contract of issue 2.

Most tests drive the click command through ``CliRunner``, each on its own SQLite
file under ``tmp_path``; a few start the real console script and
``python -m dnd_ledger``; two run against PostgreSQL. Where the contract fixes
the output (``status --json``, ``can-send --json``, write results, the import
summary) the whole parsed JSON is compared.

The rules themselves are tested through the application in
``tests/integration/test_rules.py``; here the question is what a person or a
script sees at the command line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.cli.main import cli as dnd_ledger_cli
from dnd_ledger.domain.errors import InvalidInput
from dnd_ledger.domain.values import EmailSignal
from dnd_ledger.settings import Settings

L = "loc-1"
ADA = "ada"
BOB = "bob"
PHONE = "+14155550100"
PHONE2 = "+14155550111"
EMAIL = "ada@example.com"
CHANNELS = ("email", "sms", "call", "fb", "gmb", "whatsapp")

# Fixed times in the past: the ledger refuses an occurred_at more than five
# minutes ahead of the real clock, and accepts any time before it.
T_REG = "2026-01-05T10:00:00Z"
T_STOP = "2026-01-05T11:00:00Z"
T_SET = "2026-01-05T12:00:00Z"
T_LATER = "2026-01-05T13:00:00Z"
AS_OF = "2026-01-06T00:00:00Z"

ENV_NAMES = ("DND_LEDGER_DB", "DND_LEDGER_POLICY", "DND_LEDGER_PII_KEY", "DND_LEDGER_PII_KEY_FILE")

UNSTOP_OPT_IN_POLICY = """\
version = "ops-unstop-opt-in"
opt_out_keywords = ["STOP", "UNSUBSCRIBE", "CANCEL", "STOPALL", "END", "QUIT",
                    "REVOKE", "OPTOUT", "OPT OUT", "OPT-OUT"]
opt_in_keywords = ["START", "UNSTOP"]
"""

DEFAULT_OPT_OUT = [
    "STOP",
    "UNSTOP",
    "UNSUBSCRIBE",
    "CANCEL",
    "STOPALL",
    "STOP ALL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
    "OPT OUT",
    "OPT-OUT",
]


# -- helpers ---------------------------------------------------------------------
def iso(t: str) -> str:
    """What the CLI prints for a time given as ``...Z``."""
    return datetime.fromisoformat(t).isoformat()


def soon() -> str:
    """A knowledge time after everything a test records, to the second."""
    return (datetime.now(UTC) + timedelta(minutes=1)).replace(microsecond=0).isoformat()


def channel(
    status: str = "inactive",
    since: str | None = None,
    code: str | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    return {
        "status": status,
        "since": iso(since) if since else None,
        "code": code,
        "message": message,
    }


def all_inactive() -> dict[str, dict[str, Any]]:
    return {ch: channel() for ch in CHANNELS}


def error_line(result: Result, *, one_line: bool = True) -> str:
    """The refusal's ``Error: ...`` line, after checking the refusal's shape."""
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"unhandled {type(result.exception).__name__}: {result.exception}"
    )
    assert result.exit_code != 0, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    assert lines[-1] == errors[0], result.stderr
    if one_line:
        assert lines == errors, result.stderr
    return errors[0]


class Cli:
    """``dnd-ledger --db <db> ...`` through click's CliRunner."""

    def __init__(self, db: str | None) -> None:
        self.db = db

    def run(
        self, *args: str, code: int = 0, env: dict[str, str] | None = None, db: bool = True
    ) -> Result:
        argv = [*(["--db", self.db] if db and self.db else []), *args]
        result = CliRunner().invoke(dnd_ledger_cli, argv, env=env, prog_name="dnd-ledger")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"dnd-ledger {' '.join(argv)} crashed") from result.exception
        assert result.exit_code == code, f"exit {result.exit_code}: {result.output}"
        return result

    def json(self, *args: str, code: int = 0, env: dict[str, str] | None = None) -> Any:
        result = self.run(*args, "--json", code=code, env=env)
        assert result.stdout.count("\n") == 1, "JSON output is exactly one line"
        return json.loads(result.stdout)

    def fail(self, *args: str, code: int = 1, env: dict[str, str] | None = None) -> str:
        """Run a command the CLI must refuse with one ``Error: ...`` line."""
        return error_line(self.run(*args, code=code, env=env))

    def usage_fail(self, *args: str) -> str:
        """A click usage error: exit 2, ``Error: ...`` last (after click's usage hint)."""
        return error_line(self.run(*args, code=2), one_line=False)

    def history(self, location: str = L, contact: str = ADA) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.json("history", location, contact)
        return items

    def events(self, location: str = L, contact: str = ADA) -> list[str]:
        return [item["event"] for item in self.history(location, contact)]

    def status(self, contact: str = ADA, location: str = L, **times: str) -> dict[str, Any]:
        args = [f"--{k.replace('_', '-')}={v}" for k, v in times.items()]
        doc: dict[str, Any] = self.json("status", location, contact, *args)
        return doc

    def register(self, contact: str = ADA, *extra: str) -> None:
        if not extra:
            extra = ("--phone", PHONE, "--email", EMAIL)
        self.run("contacts", "add", L, contact, *extra, "--at", T_REG)

    def sms(self, body: str, sid: str, at: str = T_STOP, phone: str = PHONE, *pre: str) -> Any:
        return self.json(
            *pre, "inbound", L, "--channel", "sms", "--from", phone, "--body", body,
            "--message-sid", sid, "--at", at,
        )  # fmt: skip


@pytest.fixture(autouse=True)
def _no_ledger_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The caller's DND_LEDGER_* settings must not leak into a test."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "ledger.db")


@pytest.fixture
def cli(db: str) -> Cli:
    """A fresh ledger made by ``init`` (no other command creates one)."""
    made = Cli(db)
    made.run("init")
    return made


@pytest.fixture
def ada(cli: Cli) -> Cli:
    """A ledger with Ada registered (phone and email) at T_REG."""
    cli.register()
    return cli


@pytest.fixture
def ada_stopped(ada: Cli) -> Cli:
    """Ada replied STOP by SMS at T_STOP: permanent SMS DND."""
    ada.sms("STOP", "SM-stop")
    return ada


def seed(db: str, *commands: c.Command) -> None:
    """Record provider events the CLI has no command for, through the application."""
    ledger = Settings(db=db).open()
    try:
        for command in commands:
            ledger.execute(command)
    finally:
        ledger.close()


# -- status ----------------------------------------------------------------------
class TestStatus:
    def test_status_json_is_exactly_one_object_naming_all_six_channels(
        self, ada_stopped: Cli
    ) -> None:
        ada_stopped.run(
            "dnd", "set", L, ADA, "--channel", "email", "--actor", "alice",
            "--reason", "asked by phone", "--at", T_SET,
        )  # fmt: skip
        known = soon()

        doc = ada_stopped.status(as_of=AS_OF, known_at=known)

        assert doc == {
            "location_id": L,
            "contact_id": ADA,
            "dnd": "partial",
            "channels": {
                "email": channel("active", T_SET, "user", "asked by phone"),
                "sms": channel("permanent", T_STOP, "STOP", "opt-out keyword on sms"),
                "call": channel(),
                "fb": channel(),
                "gmb": channel(),
                "whatsapp": channel(),
            },
            "as_of": iso(AS_OF),
            "known_at": known,
        }
        assert list(doc["channels"]) == list(CHANNELS)

    def test_status_json_of_a_contact_with_dnd_on_every_channel_says_on(self, ada: Cli) -> None:
        ada.run("dnd", "set", L, ADA, "--all", "--actor", "alice", "--at", T_SET)
        known = soon()

        doc = ada.status(as_of=AS_OF, known_at=known)

        message = "set by alice from the contact record"
        assert doc == {
            "location_id": L,
            "contact_id": ADA,
            "dnd": "on",
            "channels": {ch: channel("active", T_SET, "user", message) for ch in CHANNELS},
            "as_of": iso(AS_OF),
            "known_at": known,
        }

    def test_status_as_of_before_the_opt_out_shows_the_past_without_dnd(
        self, ada_stopped: Cli
    ) -> None:
        known = soon()

        doc = ada_stopped.status(as_of="2026-01-05T10:30:00Z", known_at=known)

        assert doc == {
            "location_id": L,
            "contact_id": ADA,
            "dnd": "off",
            "channels": all_inactive(),
            "as_of": iso("2026-01-05T10:30:00Z"),
            "known_at": known,
        }

    def test_status_known_at_before_the_stop_was_recorded_does_not_know_it(self, ada: Cli) -> None:
        # The STOP happened on 5 January but was recorded after `known`: at that
        # moment the ledger knew Ada but not her STOP yet.
        known = datetime.now(UTC).isoformat()
        ada.sms("STOP", "SM-stop")
        doc = ada.status(as_of=AS_OF, known_at=known)

        assert doc["dnd"] == "off"
        assert doc["channels"] == all_inactive()
        assert (doc["as_of"], doc["known_at"]) == (iso(AS_OF), known)
        # On 6 January itself the ledger knew nothing of Ada: an error, not "off".
        error = ada.fail("status", L, ADA, f"--as-of={AS_OF}", f"--known-at={AS_OF}")
        assert "was not registered" in error

    def test_status_times_keep_the_offset_they_were_given_in(self, ada_stopped: Cli) -> None:
        doc = ada_stopped.status(as_of="2026-01-06T01:00:00+01:00", known_at="2099-01-01T00:00:00Z")

        assert doc["as_of"] == "2026-01-06T01:00:00+01:00"
        assert doc["known_at"] == "2099-01-01T00:00:00+00:00"
        assert doc["channels"]["sms"]["status"] == "permanent"

    def test_status_defaults_to_now_for_both_timelines(self, ada_stopped: Cli) -> None:
        before = datetime.now(UTC)
        doc = ada_stopped.status()
        after = datetime.now(UTC)

        as_of = datetime.fromisoformat(doc["as_of"])
        assert before <= as_of <= after
        assert doc["known_at"] == doc["as_of"]
        assert doc["channels"]["sms"]["status"] == "permanent"

    def test_status_without_json_prints_a_table_for_people(self, ada_stopped: Cli) -> None:
        out = ada_stopped.run("status", L, ADA, "--as-of", AS_OF).stdout

        lines = out.splitlines()
        assert lines[0].startswith(f"{L}/{ADA}: DND PARTIAL  (as of 2026-01-06T00:00:00+00:00")
        assert lines[1].split() == ["channel", "status", "since", "code", "why"]
        rows = {line.split()[0]: line.split()[1] for line in lines[3:]}
        assert rows == {ch: "permanent" if ch == "sms" else "inactive" for ch in CHANNELS}


# -- can-send --------------------------------------------------------------------
class TestCanSend:
    def test_can_send_json_names_the_permanent_dnd_that_blocks_it(self, ada_stopped: Cli) -> None:
        doc = ada_stopped.json("can-send", L, ADA, "--channel", "sms", "--known-at", soon())

        assert doc == {
            "allowed": False,
            "channel": "sms",
            "direction": "outbound",
            "mode": "automated",
            "status": "permanent",
            "reason": (
                "permanent DND on sms since 2026-01-05T11:00:00+00:00 "
                "(OptOutKeyword: opt-out keyword on sms)"
            ),
            "code": "STOP",
            "rule": "outbound.dnd-blocks-all",
            "event": "OptOutKeyword",
        }

    def test_can_send_json_allows_a_channel_without_dnd(self, ada_stopped: Cli) -> None:
        doc = ada_stopped.json("can-send", L, ADA, "--channel", "email")

        assert doc == {
            "allowed": True,
            "channel": "email",
            "direction": "outbound",
            "mode": "automated",
            "status": "inactive",
            "reason": "no DND on email",
            "code": None,
            "rule": "outbound.no-dnd",
            "event": None,
        }

    @pytest.mark.parametrize("flag", ["--manual", "--automated"])
    def test_manual_and_automated_outbound_are_both_blocked_by_dnd(
        self, ada_stopped: Cli, flag: str
    ) -> None:
        doc = ada_stopped.json("can-send", L, ADA, "--channel", "sms", flag)

        assert doc["mode"] == flag.removeprefix("--")
        assert (doc["allowed"], doc["status"], doc["code"]) == (False, "permanent", "STOP")

    def test_exit_code_is_1_when_not_allowed_and_0_when_allowed(self, ada_stopped: Cli) -> None:
        blocked = ada_stopped.run("can-send", L, ADA, "--channel", "sms", "--exit-code", code=1)
        allowed = ada_stopped.run("can-send", L, ADA, "--channel", "email", "--exit-code", code=0)

        assert blocked.stdout.startswith("BLOCKED: outbound automated sms: permanent DND on sms")
        assert blocked.stderr == ""
        assert (
            allowed.stdout
            == "ALLOWED: outbound automated email: no DND on email [outbound.no-dnd]\n"
        )

    def test_without_exit_code_a_blocked_answer_still_exits_0(self, ada_stopped: Cli) -> None:
        doc = ada_stopped.json("can-send", L, ADA, "--channel", "sms", code=0)
        assert doc["allowed"] is False

    def test_exit_code_with_json_prints_the_decision_and_exits_1(self, ada_stopped: Cli) -> None:
        result = ada_stopped.run(
            "can-send", L, ADA, "--channel", "sms", "--json", "--exit-code", code=1
        )
        assert json.loads(result.stdout)["allowed"] is False

    def test_as_of_before_the_opt_out_was_allowed(self, ada_stopped: Cli) -> None:
        doc = ada_stopped.json(
            "can-send", L, ADA, "--channel", "sms", "--as-of", "2026-01-05T10:59:59Z"
        )
        assert (doc["allowed"], doc["status"], doc["rule"]) == (True, "inactive", "outbound.no-dnd")

    def test_inbound_call_is_rejected_and_inbound_sms_blocked_when_dnd_is_on(
        self, ada: Cli
    ) -> None:
        ada.run("dnd", "set", L, ADA, "--all", "--actor", "alice", "--at", T_SET)

        call = ada.json("can-send", L, ADA, "--channel", "call", "--inbound")
        sms = ada.json("can-send", L, ADA, "--channel", "sms", "--inbound", "--manual")

        assert call == {
            "allowed": False,
            "channel": "call",
            "direction": "inbound",
            "mode": "automated",
            "status": "active",
            "reason": "inbound call rejected: DND is on for all channels",
            "code": "user",
            "rule": "inbound.call-rejected",
            "event": "DndSetByUser",
        }
        assert sms["direction"] == "inbound"
        assert sms["mode"] == "manual"
        assert sms["allowed"] is False
        assert sms["rule"] == "inbound.blocked-at-system-level"
        assert "accepted by the carrier but blocked at system level" in sms["reason"]
        ada.run("can-send", L, ADA, "--channel", "call", "--inbound", "--exit-code", code=1)

    def test_inbound_is_accepted_when_dnd_is_only_partial(self, ada_stopped: Cli) -> None:
        doc = ada_stopped.json("can-send", L, ADA, "--channel", "sms", "--inbound")

        assert doc == {
            "allowed": True,
            "channel": "sms",
            "direction": "inbound",
            "mode": "automated",
            "status": "permanent",
            "reason": "inbound accepted: DND is not on for all channels",
            "code": None,
            "rule": "inbound.accept",
            "event": None,
        }


# -- write commands ----------------------------------------------------------------
WRITES = [
    pytest.param(
        ["contacts", "add", L, BOB, "--phone", PHONE2, "--request-id", "req-1"],
        ["Registered"], [BOB], [],
        id="contacts-add",
    ),
    pytest.param(
        ["dnd", "set", L, ADA, "--channel", "call", "--actor", "alice", "--request-id", "req-1"],
        ["DndSetByUser"], [ADA], [],
        id="dnd-set",
    ),
    pytest.param(
        ["dnd", "clear", L, ADA, "--channel", "fb", "--actor", "alice", "--request-id", "req-1"],
        ["DndClearedByUser"], [ADA], [],
        id="dnd-clear",
    ),
    pytest.param(
        ["support", "approve-opt-in", L, ADA, "--channel", "sms", "--approver", "sam",
         "--ticket", "SUP-1", "--evidence", "signed web form", "--request-id", "req-1"],
        ["SupportOptInApproved"], [ADA], [],
        id="support-approve-opt-in",
    ),
    pytest.param(
        ["inbound", L, "--channel", "whatsapp", "--from", PHONE, "--body", "stop",
         "--message-sid", "SM-wa-1"],
        ["OptOutKeyword"], [ADA], ["OptOutKeyword"],
        id="inbound",
    ),
]  # fmt: skip


class TestWriteCommands:
    @pytest.mark.parametrize(("args", "events", "contacts", "dup_events"), WRITES)
    def test_write_with_json_reports_appended_then_duplicate_for_the_same_key(
        self,
        ada: Cli,
        args: list[str],
        events: list[str],
        contacts: list[str],
        dup_events: list[str],
    ) -> None:
        ada.run("dnd", "set", L, ADA, "--channel", "fb", "--actor", "alice", "--at", T_SET)
        who = contacts[0]
        before = len(ada.history(L, who)) if who == ADA else 0

        first = ada.json(*args)
        again = ada.json(*args)

        assert first == {"result": "appended", "events": events, "contacts": contacts}
        assert again == {"result": "duplicate", "events": dup_events, "contacts": contacts}
        assert len(ada.history(L, who)) == before + len(events)

    def test_write_without_json_says_what_was_appended(self, ada: Cli) -> None:
        args = ("dnd", "set", L, ADA, "--channel", "sms", "--actor", "alice", "--request-id", "r")
        assert ada.run(*args).stdout == f"appended DndSetByUser for {ADA}\n"
        assert ada.run(*args).stdout == "duplicate: already recorded, nothing appended\n"

    def test_registering_the_same_addresses_again_is_a_duplicate(self, ada: Cli) -> None:
        again = ada.json("contacts", "add", L, ADA, "--phone", PHONE, "--email", EMAIL)
        more = ada.json("contacts", "add", L, ADA, "--email", "ada@work.example")

        assert again == {"result": "duplicate", "events": [], "contacts": [ADA]}
        assert more == {"result": "appended", "events": ["AddressesAdded"], "contacts": [ADA]}
        assert ada.events() == ["Registered", "AddressesAdded"]

    def test_an_opt_out_from_an_unknown_address_is_held_then_applied_on_registration(
        self, cli: Cli
    ) -> None:
        held = cli.sms("STOP", "SM-early", phone=PHONE2)
        registered = cli.json("contacts", "add", L, BOB, "--phone", PHONE2, "--at", T_LATER)

        assert held == {
            "result": "appended",
            "events": ["OptOutKeyword"],
            "contacts": [],
            "address": "held until a contact registers the address",
        }
        assert registered == {
            "result": "appended",
            "events": ["Registered", "OptOutKeyword"],
            "contacts": [BOB],
        }
        assert cli.status(BOB)["channels"]["sms"] == channel(
            "permanent", T_STOP, "STOP", "opt-out keyword on sms"
        )

    def test_an_ordinary_inbound_message_appends_nothing_and_says_ignored(self, ada: Cli) -> None:
        doc = ada.sms("see you at 3", "SM-chat")

        assert doc == {
            "result": "ignored",
            "events": [],
            "contacts": [],
            "classification": "message",
        }
        assert ada.events() == ["Registered"]

    def test_start_from_the_same_number_lifts_the_permanent_sms_dnd(self, ada_stopped: Cli) -> None:
        doc = ada_stopped.sms("Start", "SM-start", at=T_LATER)

        assert doc == {"result": "appended", "events": ["StartReceived"], "contacts": [ADA]}
        assert ada_stopped.status()["channels"]["sms"] == channel()

    def test_support_opt_in_lifts_permanent_dnd(self, ada_stopped: Cli) -> None:
        ada_stopped.run(
            "support", "approve-opt-in", L, ADA, "--channel", "sms", "--approver", "sam",
            "--ticket", "SUP-981", "--evidence", "signed web form 2026-01-05", "--at", T_LATER,
        )  # fmt: skip
        assert ada_stopped.status()["channels"]["sms"] == channel()


# -- refusals ------------------------------------------------------------------------
class TestRefusals:
    def test_clearing_permanent_dnd_is_refused_naming_its_cause_and_appends_nothing(
        self, ada_stopped: Cli
    ) -> None:
        before = ada_stopped.history()

        error = ada_stopped.fail("dnd", "clear", L, ADA, "--channel", "sms", "--actor", "alice")

        assert error.startswith("Error: sms has permanent DND (permanent DND by OptOutKeyword")
        assert "code STOP" in error
        assert "since 2026-01-05T11:00:00+00:00" in error
        assert "cannot be cleared from the contact record" in error
        assert "START" in error
        assert "support-approved opt-in" in error
        assert ada_stopped.history() == before
        assert ada_stopped.status()["channels"]["sms"]["status"] == "permanent"

    def test_clearing_all_is_refused_whole_when_one_channel_is_permanent(
        self, ada_stopped: Cli
    ) -> None:
        ada_stopped.run("dnd", "set", L, ADA, "--channel", "email", "--actor", "a", "--at", T_SET)
        before = ada_stopped.history()

        error = ada_stopped.fail(
            "dnd", "clear", L, ADA, "--all", "--actor", "alice", "--json", "--request-id", "r1"
        )

        assert "sms has permanent DND" in error
        assert ada_stopped.history() == before
        assert ada_stopped.status()["channels"]["email"]["status"] == "active"

    def test_clearing_a_bounce_email_dnd_needs_the_suppression_removed_attestation(
        self, ada: Cli, db: str
    ) -> None:
        # The CLI has no command for provider webhooks: record the Mailgun
        # bounce through the application, on the same ledger file.
        seed(db, c.ReportEmailEvent(L, EMAIL, EmailSignal.FAILED_PERMANENT, "mg-tok-1", "bounce",
                                    "evt-1", datetime.fromisoformat(T_STOP)))  # fmt: skip
        assert ada.status()["channels"]["email"] == channel(
            "active", T_STOP, "bounce", "email failed-permanent: bounce"
        )
        before = ada.history()

        error = ada.fail("dnd", "clear", L, ADA, "--channel", "email", "--actor", "alice")

        assert error.startswith("Error: email DND was caused by ")
        assert "suppression list" in error
        assert "--suppression-removed" in error
        assert ada.history() == before
        cleared = ada.json(
            "dnd", "clear", L, ADA, "--channel", "email", "--actor", "alice",
            "--suppression-removed",
        )  # fmt: skip
        assert cleared == {"result": "appended", "events": ["DndClearedByUser"], "contacts": [ADA]}
        assert ada.status()["channels"]["email"] == channel()
        assert ada.history()[-1]["detail"] == {"suppression_removed": True}

    @pytest.mark.parametrize(
        "args",
        [
            ["dnd", "set", L, ADA, "--channel", "sms", "--actor", "alice", "--at", "2026-01-05T10:00:00"],
            ["contacts", "add", L, BOB, "--at", "2026-01-05T10:00:00"],
            ["inbound", L, "--channel", "sms", "--from", PHONE, "--body", "STOP",
             "--message-sid", "SM-x", "--at", "2026-01-05T10:00:00"],
            ["status", L, ADA, "--as-of", "2026-01-05T10:00:00"],
            ["can-send", L, ADA, "--channel", "sms", "--known-at", "2026-01-05T10:00:00"],
        ],
        ids=["dnd-set", "contacts-add", "inbound", "status", "can-send"],
    )  # fmt: skip
    def test_a_time_without_a_zone_is_refused_and_nothing_is_appended(
        self, ada: Cli, args: list[str]
    ) -> None:
        before = ada.history()

        error = ada.usage_fail(*args)

        assert "'2026-01-05T10:00:00' has no time zone" in error
        assert ada.history() == before
        ada.fail("history", L, BOB)

    def test_a_time_that_is_not_iso_8601_is_refused(self, ada: Cli) -> None:
        error = ada.usage_fail("status", L, ADA, "--as-of", "yesterday")
        assert "'yesterday' is not an ISO 8601 time" in error

    def test_a_time_more_than_five_minutes_ahead_is_refused(self, ada: Cli) -> None:
        ahead = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        before = ada.history()

        error = ada.fail("dnd", "set", L, ADA, "--channel", "sms", "--actor", "a", "--at", ahead)

        assert "is more than 5 minutes ahead of the ledger clock" in error
        assert ada.history() == before

    @pytest.mark.parametrize(
        "args",
        [
            ["dnd", "set", L, ADA, "--channel", "pigeon", "--actor", "alice"],
            ["dnd", "clear", L, ADA, "--channel", "SMS", "--actor", "alice"],
            ["can-send", L, ADA, "--channel", "pigeon"],
            ["inbound", L, "--channel", "email", "--from", PHONE, "--body", "STOP",
             "--message-sid", "SM-x"],
        ],
        ids=["dnd-set", "dnd-clear-upper-case", "can-send", "inbound-on-email"],
    )  # fmt: skip
    def test_an_unknown_channel_is_refused_and_nothing_is_appended(
        self, ada: Cli, args: list[str]
    ) -> None:
        before = ada.history()

        error = ada.usage_fail(*args)

        assert error.startswith("Error: Invalid value for '--channel'")
        assert ada.history() == before

    @pytest.mark.parametrize(
        "args",
        [
            ["status", L, "adda"],
            ["can-send", L, "adda", "--channel", "sms"],
            ["history", L, "adda"],
            ["history", L, "adda", "--json"],
            ["status", "loc-2", "ada", "--json"],
        ],
        ids=["status", "can-send", "history", "history-json", "other-location"],
    )
    def test_querying_an_unregistered_contact_is_an_error_not_no_dnd(
        self, ada: Cli, args: list[str]
    ) -> None:
        error = ada.fail(*args)
        assert error == f"Error: contact {args[2]!r} is not registered in location {args[1]!r}"

    @pytest.mark.parametrize(
        "args",
        [
            ["dnd", "set", L, "adda", "--channel", "sms", "--actor", "alice"],
            ["dnd", "clear", L, "adda", "--all", "--actor", "alice"],
            ["support", "approve-opt-in", L, "adda", "--channel", "sms", "--approver", "sam",
             "--ticket", "T", "--evidence", "E"],
        ],
        ids=["dnd-set", "dnd-clear", "approve-opt-in"],
    )  # fmt: skip
    def test_writing_to_an_unregistered_contact_is_refused(self, ada: Cli, args: list[str]) -> None:
        error = ada.fail(*args)
        assert error == "Error: contact 'adda' is not registered in location 'loc-1'"
        ada.fail("history", L, "adda")

    def test_a_bad_phone_number_is_refused_and_nothing_is_appended(self, ada: Cli) -> None:
        before = ada.history()

        new = ada.fail("contacts", "add", L, BOB, "--phone", "12345", "--email", "bob@example.com")
        added = ada.fail("contacts", "add", L, ADA, "--phone", "+1415")
        inbound = ada.fail(
            "inbound", L, "--channel", "sms", "--from", "not a number", "--body", "STOP",
            "--message-sid", "SM-bad",
        )  # fmt: skip

        assert new.startswith("Error: phone number is not in international E.164 form")
        assert added == "Error: phone number is not a possible number"
        assert inbound.startswith("Error: phone number is not in international")
        assert ada.history() == before
        ada.fail("history", L, BOB)

    @pytest.mark.parametrize("email", ["bob-at-example", "bob@@example.com", "b@ob@example.com"])
    def test_a_bad_email_address_is_refused(self, cli: Cli, email: str) -> None:
        error = cli.fail("contacts", "add", L, BOB, "--email", email)
        assert error == "Error: email address is not valid"
        cli.fail("history", L, BOB)

    def test_a_quoted_local_part_may_hold_an_at_sign(self, cli: Cli) -> None:
        cli.run("contacts", "add", L, BOB, "--email", '"bob@home"@example.com')

    def test_dnd_set_needs_channels_or_all_but_not_both(self, ada: Cli) -> None:
        none = ada.usage_fail("dnd", "set", L, ADA, "--actor", "alice")
        both = ada.usage_fail("dnd", "set", L, ADA, "--all", "--channel", "sms", "--actor", "a")

        assert none == "Error: name at least one --channel, or use --all"
        assert both == "Error: give --channel or --all, not both"
        assert ada.events() == ["Registered"]

    def test_support_opt_in_with_a_blank_ticket_is_refused(self, ada_stopped: Cli) -> None:
        error = ada_stopped.fail(
            "support", "approve-opt-in", L, ADA, "--channel", "sms", "--approver", "sam",
            "--ticket", " ", "--evidence", "signed form",
        )  # fmt: skip
        assert error == "Error: ticket is required"
        assert ada_stopped.status()["channels"]["sms"]["status"] == "permanent"

    @pytest.mark.parametrize(
        "args",
        [
            [
                "dnd",
                "set",
                L,
                ADA,
                "--channel",
                "sms",
                "--actor",
                "a",
                "--at",
                "2026-01-05T10:00:00",
            ],
            ["can-send", L, ADA, "--channel", "pigeon"],
        ],
        ids=["time-without-zone", "unknown-channel"],
    )
    def test_usage_errors_are_one_error_line_too(self, ada: Cli, args: list[str]) -> None:
        result = ada.run(*args, code=2)
        assert len(result.stderr.splitlines()) == 1, result.stderr

    @pytest.mark.parametrize("case", ["not-a-database", "parent-is-a-file"])
    def test_an_unusable_database_path_is_an_error_line(self, tmp_path: Path, case: str) -> None:
        junk = tmp_path / "contacts.csv"
        junk.write_text("location_id,contact_id,phone,email,dnd\n" * 200)
        target = junk if case == "not-a-database" else junk / "ledger.db"

        result = CliRunner().invoke(dnd_ledger_cli, ["--db", str(target), "init"])

        assert result.exit_code == 1
        assert isinstance(result.exception, SystemExit), repr(result.exception)
        assert result.stderr.startswith("Error: "), result.stderr


# -- init and the database option -------------------------------------------------------
class TestDatabase:
    def test_init_creates_the_store_and_is_idempotent(self, cli: Cli, db: str) -> None:
        first = cli.run("init").stdout
        cli.register()
        again = cli.run("init").stdout

        assert first == again == f"ledger ready at sqlite:///{db}\n"
        assert Path(db).is_file()
        assert Path(db + ".pii-key").is_file()
        assert cli.events() == ["Registered"]

    def test_db_as_a_sqlite_url_is_the_same_file_as_the_path(self, tmp_path: Path, db: str) -> None:
        by_url = Cli(f"sqlite:///{db}")  # an absolute path: four slashes
        assert by_url.run("init").stdout == f"ledger ready at sqlite:///{db}\n"
        by_url.register()

        assert Cli(db).events() == ["Registered"]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.db", "ledger.db.pii-key"]

    def test_a_relative_sqlite_url_and_path_are_relative_to_the_working_directory(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        Cli("sqlite:///rel.db").run("init")
        Cli("sqlite:///rel.db").register()

        assert (tmp_path / "rel.db").is_file()
        assert Cli("rel.db").events() == ["Registered"]

    def test_db_from_the_dnd_ledger_db_environment_variable(self, tmp_path: Path, db: str) -> None:
        env_cli = Cli(None)
        env = {"DND_LEDGER_DB": db}
        assert env_cli.run("init", env=env).stdout == f"ledger ready at sqlite:///{db}\n"
        env_cli.run("contacts", "add", L, ADA, "--phone", PHONE, env=env)

        assert Cli(db).events() == ["Registered"]
        other = str(tmp_path / "other.db")
        # --db wins over the environment.
        assert Cli(other).run("init", env=env).stdout == f"ledger ready at sqlite:///{other}\n"
        Cli(other).fail("history", L, ADA)

    def test_without_db_or_environment_the_ledger_is_dnd_ledger_db_here(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        out = Cli(None).run("init").stdout

        assert out == "ledger ready at sqlite:///./dnd-ledger.db\n"
        assert (tmp_path / "dnd-ledger.db").is_file()

    def test_an_unsupported_database_url_is_an_error(self, tmp_path: Path) -> None:
        error = Cli("mysql://db.example/ledger").fail("init")
        assert error == (
            "Error: unsupported database URL 'mysql://db.example/ledger': "
            "use a file path, sqlite:///path or postgresql://..."
        )

    def test_a_pii_key_that_is_not_the_ledgers_is_refused(self, ada: Cli) -> None:
        error = ada.fail("status", L, ADA, env={"DND_LEDGER_PII_KEY": "ab" * 32})
        assert error.startswith("Error: the PII key does not match the one this ledger was created")
        assert ada.events() == ["Registered"]

    def test_a_pii_key_file_from_the_environment_is_created_and_used(
        self, tmp_path: Path, db: str
    ) -> None:
        key_file = tmp_path / "keys" / "ledger.key"
        env = {"DND_LEDGER_PII_KEY_FILE": str(key_file)}
        Cli(db).run("init", env=env)
        Cli(db).run("contacts", "add", L, ADA, "--phone", PHONE, env=env)

        assert key_file.is_file()
        assert not Path(db + ".pii-key").exists()
        assert Cli(db).json("history", L, ADA, env=env)[0]["event"] == "Registered"
        # Without that key file the ledger's references cannot be made: refused.
        error = Cli(db).fail("history", L, ADA)
        assert error.startswith(f"Error: the PII key file {db}.pii-key does not exist")
        assert not Path(db + ".pii-key").exists()

    def test_a_pii_key_that_is_not_hex_is_refused(self, cli: Cli) -> None:
        assert cli.fail("init", env={"DND_LEDGER_PII_KEY": "not-hex"}) == (
            "Error: DND_LEDGER_PII_KEY must be hex"
        )

    def test_the_cache_entries_come_from_the_environment_and_are_checked(
        self, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DND_LEDGER_CACHE_ENTRIES", "5000")
        ledger = Settings.from_env(db=str(tmp_path / "c.db")).open()
        try:
            assert ledger.repository.cache.entries == 5000  # type: ignore[union-attr]
        finally:
            ledger.close()
        assert cli.fail("init", env={"DND_LEDGER_CACHE_ENTRIES": "lots"}) == (
            "Error: DND_LEDGER_CACHE_ENTRIES must be a number, at least 0: 'lots'"
        )

    def test_the_sqlite_page_cache_comes_from_the_environment_and_is_checked(
        self, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def cache_size(ledger: Any) -> int:
            return int(ledger.sql.fetchall("PRAGMA cache_size", ())[0][0])

        default = Settings.from_env(db=str(tmp_path / "d.db")).open()
        try:
            assert cache_size(default) == -32 * 1024  # KiB, as SQLite counts a negative size
        finally:
            default.close()
        monkeypatch.setenv("DND_LEDGER_SQLITE_CACHE_MIB", "8")
        ledger = Settings.from_env(db=str(tmp_path / "c.db")).open()
        try:
            assert cache_size(ledger) == -8 * 1024
        finally:
            ledger.close()
        # The Python API's own arguments win: the library's reading of the process
        # environment (DND_LEDGER_<KEY>, or another eventsourcing application's keys)
        # changes nothing.
        monkeypatch.setenv("COMPRESSOR_TOPIC", "eventsourcing.compressor:ZlibCompressor")
        own = DndLedger(str(tmp_path / "o.db"), sqlite_cache_mib=16)
        try:
            assert cache_size(own) == -16 * 1024
            assert own.mapper.compressor is None
        finally:
            own.close()
        for bad in ("-1", "1048577", "99999999999999"):  # SQLite would store 0 for the last
            assert cli.fail("init", env={"DND_LEDGER_SQLITE_CACHE_MIB": bad}) == (
                "Error: DND_LEDGER_SQLITE_CACHE_MIB must be a number, at least 0, at most"
                f" 1048576: '{bad}'"
            )
        assert not (tmp_path / "dnd-ledger.db").exists()
        with pytest.raises(InvalidInput, match="from 0 to 1048576 MiB"):
            DndLedger(str(tmp_path / "e.db"), sqlite_cache_mib=1 << 21)


# -- policy ----------------------------------------------------------------------
class TestPolicy:
    def test_policy_show_prints_the_default_keyword_sets_and_a_stamp(self, cli: Cli) -> None:
        doc = json.loads(cli.run("policy", "show").stdout)

        assert doc["opt_out_keywords"] == DEFAULT_OPT_OUT
        assert doc["opt_in_keywords"] == ["START"]
        assert doc["version"] == "builtin-2"
        assert doc["stamp"] == f"builtin-2+{doc['digest'][:12]}"
        assert len(doc["digest"]) == 64
        assert doc["carrier_codes"]["30003"] == {
            "effect": "temporary",
            "channel": None,  # the channel the message went out on
            "description": "Unreachable handset",
        }
        assert {code: r["effect"] for code, r in doc["carrier_codes"].items()} == {
            "30003": "temporary",
            "30005": "temporary",
            "30006": "temporary",
            "30004": "permanent",
            "21610": "permanent",
            "63014": "permanent",
        }

    def test_the_policy_stamp_is_what_each_event_records(self, ada_stopped: Cli) -> None:
        stamp = json.loads(ada_stopped.run("policy", "show").stdout)["stamp"]
        assert {e["policy_version"] for e in ada_stopped.history()} == {stamp}

    def test_policy_show_summary_is_for_people(self, cli: Cli) -> None:
        out = cli.run("policy", "show", "--format", "summary").stdout
        assert out.startswith("policy builtin-2+")
        assert f"opt-out keywords: {', '.join(DEFAULT_OPT_OUT)}\n" in out
        assert "opt-in keywords:  START\n" in out

    def test_a_policy_file_moving_unstop_to_opt_in_changes_what_inbound_records(
        self, ada: Cli, tmp_path: Path
    ) -> None:
        policy = tmp_path / "policy.toml"
        policy.write_text(UNSTOP_OPT_IN_POLICY)
        shown = json.loads(ada.run("--policy", str(policy), "policy", "show", db=False).stdout)

        default = ada.sms("UNSTOP", "SM-1", T_STOP)
        assert ada.status()["channels"]["sms"]["status"] == "permanent"
        moved = ada.sms("UNSTOP", "SM-2", T_LATER, PHONE, "--policy", str(policy))

        assert shown["opt_in_keywords"] == ["START", "UNSTOP"]
        assert "UNSTOP" not in shown["opt_out_keywords"]
        assert shown["stamp"].startswith("ops-unstop-opt-in+")
        assert default["events"] == ["OptOutKeyword"]
        assert moved == {"result": "appended", "events": ["StartReceived"], "contacts": [ADA]}
        assert ada.status()["channels"]["sms"] == channel()
        history = ada.history()
        assert history[-1]["policy_version"] == shown["stamp"]
        assert history[-2]["policy_version"].startswith("builtin-2+")

    def test_policy_from_the_environment_and_as_json(self, ada: Cli, tmp_path: Path) -> None:
        policy = tmp_path / "policy.json"
        policy.write_text(json.dumps({"version": "json-1", "opt_in_keywords": ["START", "YES"]}))
        env = {"DND_LEDGER_POLICY": str(policy)}

        shown = json.loads(ada.run("policy", "show", env=env).stdout)
        doc = ada.json(
            "inbound", L, "--channel", "sms", "--from", PHONE, "--body", "yes",
            "--message-sid", "SM-yes", env=env,
        )  # fmt: skip

        assert shown["version"] == "json-1"
        assert shown["opt_in_keywords"] == ["START", "YES"]
        assert doc["events"] == ["StartReceived"]

    @pytest.mark.parametrize(
        ("name", "content", "message"),
        [
            ("overlap.toml", 'opt_in_keywords = ["STOP"]\n', "keywords both opt-out and opt-in"),
            ("extra.toml", 'colour = "red"\n', "colour: Extra inputs are not permitted"),
            ("syntax.toml", "version = \n", "is not valid .toml"),
            ("empty-version.json", '{"version": ""}', "version: String should have at least 1"),
            ("effect.toml", '[carrier_codes.30003]\neffect = "maybe"\n', "carrier_codes.30003"),
            ("missing.toml", None, "cannot read policy file"),
        ],
        ids=["overlap", "unknown-key", "syntax", "empty-version", "bad-effect", "missing"],
    )
    def test_an_invalid_policy_file_is_an_error_and_records_nothing(
        self, ada: Cli, tmp_path: Path, name: str, content: str | None, message: str
    ) -> None:
        policy = tmp_path / name
        if content is not None:
            policy.write_text(content)

        shown = ada.fail("--policy", str(policy), "policy", "show")
        refused = ada.fail(
            "--policy", str(policy), "dnd", "set", L, ADA, "--all", "--actor", "alice"
        )

        assert shown == refused
        assert shown.startswith("Error: ")
        assert message in shown
        assert name in shown
        assert ada.events() == ["Registered"]


# -- import-legacy -----------------------------------------------------------------
LEGACY_CSV = """\
location_id,contact_id,phone,email,dnd
loc-1,c-1,+14155550101,C1@Example.com,true
loc-1,c-2,+14155550102;+14155550103,,No
loc-1,c-3,,,maybe
loc-1,c-4,+1415,,1
loc-2,c-5,,c5@example.com,OFF
"""

LEGACY_ERRORS = [
    {"line": 4, "error": "dnd value 'maybe' is not true/false, 1/0, yes/no or on/off"},
    {"line": 5, "error": "phone number is not a possible number"},
]

SPELLINGS_ON = ["true", "TRUE", "True", "1", "yes", "YES", "Yes", "on", "ON", "On"]
SPELLINGS_OFF = ["false", "FALSE", "False", "0", "no", "NO", "No", "off", "OFF", "Off"]


def write_csv(tmp_path: Path, text: str, name: str = "legacy.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def legacy_on() -> dict[str, dict[str, Any]]:
    return {
        ch: {
            "status": "active",
            "code": "legacy",
            "message": "DND was on in the legacy single-flag system",
        }
        for ch in CHANNELS
    }


def without_since(channels: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {ch: {k: v for k, v in s.items() if k != "since"} for ch, s in channels.items()}


class TestImportLegacy:
    def test_import_json_summary_counts_appended_and_reports_bad_rows_by_line(
        self, cli: Cli, tmp_path: Path
    ) -> None:
        csv_file = write_csv(tmp_path, LEGACY_CSV)

        summary = cli.json("import-legacy", csv_file, code=1)  # rows were rejected: exit 1

        assert summary == {"appended": 3, "duplicates": 0, "rejected": 2, "errors": LEGACY_ERRORS}
        c1 = cli.status("c-1")
        assert c1["dnd"] == "on"
        assert without_since(c1["channels"]) == legacy_on()
        assert cli.status("c-2")["dnd"] == "off"
        assert cli.status("c-5", location="loc-2")["dnd"] == "off"
        assert cli.events(L, "c-1") == ["Registered", "LegacyDndImported"]
        cli.fail("history", L, "c-3")
        cli.fail("history", L, "c-4")

    def test_imported_addresses_are_the_contacts_own(self, cli: Cli, tmp_path: Path) -> None:
        cli.run("import-legacy", write_csv(tmp_path, LEGACY_CSV), code=1)

        stop = cli.sms("STOP", "SM-c2", phone="+14155550103")

        assert stop["contacts"] == ["c-2"]
        assert cli.status("c-2")["channels"]["sms"]["status"] == "permanent"

    def test_importing_the_same_file_twice_appends_nothing_the_second_time(
        self, cli: Cli, tmp_path: Path
    ) -> None:
        csv_file = write_csv(tmp_path, LEGACY_CSV)
        cli.run("import-legacy", csv_file, code=1)
        before = [cli.history(L, "c-1"), cli.history(L, "c-2"), cli.history("loc-2", "c-5")]

        again = cli.json("import-legacy", csv_file, code=1)

        assert again == {"appended": 0, "duplicates": 3, "rejected": 2, "errors": LEGACY_ERRORS}
        after = [cli.history(L, "c-1"), cli.history(L, "c-2"), cli.history("loc-2", "c-5")]
        assert after == before

    def test_dnd_accepts_true_false_1_0_yes_no_on_off_in_any_case(
        self, cli: Cli, tmp_path: Path
    ) -> None:
        rows = [f"{L},on-{i},,,{v}" for i, v in enumerate(SPELLINGS_ON)]
        rows += [f"{L},off-{i},,,{v}" for i, v in enumerate(SPELLINGS_OFF)]
        csv_file = write_csv(tmp_path, "location_id,contact_id,phone,email,dnd\n" + "\n".join(rows))

        summary = cli.json("import-legacy", csv_file)

        total = len(SPELLINGS_ON) + len(SPELLINGS_OFF)
        assert summary == {"appended": total, "duplicates": 0, "rejected": 0, "errors": []}
        for i in range(len(SPELLINGS_ON)):
            assert cli.status(f"on-{i}")["dnd"] == "on", SPELLINGS_ON[i]
        for i in range(len(SPELLINGS_OFF)):
            assert cli.status(f"off-{i}")["dnd"] == "off", SPELLINGS_OFF[i]

    def test_import_without_json_prints_a_summary_and_each_bad_line(
        self, cli: Cli, tmp_path: Path
    ) -> None:
        out = cli.run("import-legacy", write_csv(tmp_path, LEGACY_CSV), code=1).stdout

        assert out == (
            "imported: 3 appended, 0 duplicates, 2 rejected\n"
            "  line 4: dnd value 'maybe' is not true/false, 1/0, yes/no or on/off\n"
            "  line 5: phone number is not a possible number\n"
        )

    def test_import_of_a_contact_already_registered_keeps_its_history(
        self, ada: Cli, tmp_path: Path
    ) -> None:
        csv_file = write_csv(
            tmp_path, f"location_id,contact_id,phone,email,dnd\n{L},{ADA},{PHONE},,yes\n"
        )

        summary = ada.json("import-legacy", csv_file)

        assert summary == {"appended": 1, "duplicates": 0, "rejected": 0, "errors": []}
        assert ada.events() == ["Registered", "LegacyDndImported"]
        assert ada.status()["dnd"] == "on"

    def test_import_reads_standard_input_for_dash(self, cli: Cli, db: str) -> None:
        result = CliRunner().invoke(
            dnd_ledger_cli, ["--db", db, "import-legacy", "-", "--json"], input=LEGACY_CSV
        )

        assert result.exit_code == 1, result.output  # two rows rejected
        assert json.loads(result.stdout)["appended"] == 3

    def test_a_csv_missing_columns_is_an_error_and_imports_nothing(
        self, cli: Cli, tmp_path: Path
    ) -> None:
        csv_file = write_csv(tmp_path, "location_id,contact_id,dnd\nloc-1,c-1,true\n")

        error = cli.fail("import-legacy", csv_file)

        assert error == "Error: CSV is missing columns: email, phone"
        cli.fail("history", L, "c-1")

    def test_a_missing_file_is_an_error(self, cli: Cli, tmp_path: Path) -> None:
        error = cli.usage_fail("import-legacy", str(tmp_path / "nope.csv"))
        assert "does not exist" in error

    @pytest.mark.parametrize("value", ["", "y", "n", "t", "f"], ids=["blank", "y", "n", "t", "f"])
    def test_a_dnd_value_outside_the_contract_is_reported_and_skipped(
        self, cli: Cli, tmp_path: Path, value: str
    ) -> None:
        csv_file = write_csv(
            tmp_path, f"location_id,contact_id,phone,email,dnd\n{L},c-1,,,{value}\n"
        )

        summary = cli.json("import-legacy", csv_file, code=1)

        assert summary["rejected"] == 1
        assert summary["errors"][0]["line"] == 2
        cli.fail("history", L, "c-1")


# -- history -------------------------------------------------------------------------
class TestHistory:
    def test_history_json_lists_the_events_in_recording_order(self, ada: Cli) -> None:
        ada.run("dnd", "set", L, ADA, "--channel", "email", "--actor", "alice", "--at", T_SET)
        # Recorded last, although it happened before the user's change.
        ada.sms("STOP", "SM-late", at=T_STOP)

        history = ada.history()

        assert [(h["version"], h["event"]) for h in history] == [
            (1, "Registered"),
            (2, "DndSetByUser"),
            (3, "OptOutKeyword"),
        ]
        assert [h["occurred_at"] for h in history] == [iso(T_REG), iso(T_SET), iso(T_STOP)]
        recorded = [datetime.fromisoformat(h["recorded_at"]) for h in history]
        assert recorded == sorted(recorded)
        assert set(history[0]) == {
            "version", "event", "occurred_at", "recorded_at", "source", "actor",
            "idempotency_key", "policy_version", "effect", "detail",
        }  # fmt: skip
        assert (history[1]["source"], history[1]["actor"]) == ("user", "alice")
        assert history[1]["effect"] == {
            "op": "block",
            "channels": ["email"],
            "level": "active",
            "code": "user",
            "message": "set by alice from the contact record",
        }
        assert (history[2]["source"], history[2]["idempotency_key"]) == (
            "provider",
            "inbound:SM-late",
        )

    def test_history_holds_no_raw_phone_email_or_message_body(self, ada: Cli) -> None:
        ada.sms("stop texting me please", "SM-review")
        out = ada.run("history", L, ADA, "--json").stdout

        assert ada.events() == ["Registered", "RevocationSuspected"]
        for raw in (PHONE, PHONE.lstrip("+"), EMAIL, "stop texting me"):
            assert raw not in out

    def test_history_without_json_is_a_table(self, ada_stopped: Cli) -> None:
        lines = ada_stopped.run("history", L, ADA).stdout.splitlines()

        assert lines[0].split() == [
            "#", "event", "occurred", "recorded", "source", "actor", "channels", "effect",
        ]  # fmt: skip
        assert lines[2].split()[:3] == ["1", "Registered", "2026-01-05T10:00:00+00:00"]
        assert lines[3].split()[:2] == ["2", "OptOutKeyword"]
        assert lines[3].endswith("sms       permanent DND")


# -- demo ------------------------------------------------------------------------------
class TestDemo:
    def test_demo_prints_the_scenario_a_person_can_follow(self, tmp_path: Path) -> None:
        demo_db = tmp_path / "demo.db"

        out = Cli(None).run("demo", "--db", str(demo_db)).stdout

        steps = [
            f"dnd-ledger demo: ledger at {demo_db}",
            "Ada replies STOP to a text: permanent DND on SMS",
            "appended OptOutKeyword for contact-ada",
            "BLOCKED: outbound manual sms: permanent DND on sms",
            "An agent tries to clear it from the contact record: refused",
            "refused: sms has permanent DND",
            "Ada texts START from the same number: SMS is open again",
            "appended StartReceived for contact-ada",
            "The carrier reports 30003 (unreachable handset): temporary DND on SMS",
            "appended CarrierErrorTemporary for contact-ada",
            "Mailgun reports a spam complaint: permanent DND on email",
            "appended MailgunComplaint for contact-ada",
            "duplicate: already recorded, nothing appended",
            "== Ada now",
            "== Ada as of ",
            "(after STOP, before START)",
            "== History",
            "Try it yourself: dnd-ledger --db",
        ]
        positions = [out.find(s) for s in steps]
        assert all(p >= 0 for p in positions), [
            s for s, p in zip(steps, positions, strict=True) if p < 0
        ]
        assert positions == sorted(positions)
        assert "email     permanent" in out
        # The earlier as-of view shows SMS opted out and email not yet.
        past = out[out.index("(after STOP, before START)") : out.index("(after START)")]
        assert "sms       permanent" in past
        assert "email     inactive" in past

    def test_the_demo_ledger_can_be_queried_afterwards_and_rerun(self, tmp_path: Path) -> None:
        demo_db = str(tmp_path / "demo.db")
        Cli(None).run("demo", "--db", demo_db)
        Cli(None).run("demo", "--db", demo_db)  # recreated, not appended to

        demo = Cli(demo_db)
        doc = demo.status("contact-ada", location="loc-demo")
        events = demo.events("loc-demo", "contact-ada")

        assert doc["channels"]["email"]["status"] == "permanent"
        assert doc["channels"]["sms"]["status"] == "permanent"
        assert events == [
            "Registered",
            "OptOutKeyword",
            "StartReceived",
            "CarrierErrorTemporary",
            "MailgunComplaint",
            "CarrierError30004",
        ]


# -- the real executables --------------------------------------------------------------
def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    env.update(extra)
    return env


def console_script() -> str:
    path = Path(sys.executable).with_name("dnd-ledger")
    assert path.is_file(), f"console script not installed beside {sys.executable}"
    return str(path)


@pytest.fixture
def proc_db(tmp_path: Path) -> str:
    return str(tmp_path / "proc.db")


@pytest.mark.slow
class TestExecutables:
    def test_the_console_script_answers_with_json_and_exit_codes(
        self, proc_db: str, tmp_path: Path
    ) -> None:
        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [console_script(), "--db", proc_db, *args], capture_output=True, text=True,
                env=clean_env(), cwd=tmp_path, timeout=60, check=False,
            )  # fmt: skip

        assert run("init").returncode == 0
        assert run("contacts", "add", L, ADA, "--phone", PHONE, "--at", T_REG).returncode == 0
        stop = run(
            "inbound", L, "--channel", "sms", "--from", PHONE, "--body", "Stop!",
            "--message-sid", "SM-p1", "--at", T_STOP, "--json",
        )  # fmt: skip
        blocked = run("can-send", L, ADA, "--channel", "sms", "--json", "--exit-code")
        allowed = run("can-send", L, ADA, "--channel", "call", "--exit-code")
        missing = run("status", L, "nobody")
        refused = run("dnd", "clear", L, ADA, "--channel", "sms", "--actor", "alice")

        assert json.loads(stop.stdout) == {
            "result": "appended",
            "events": ["OptOutKeyword"],
            "contacts": [ADA],
        }
        assert blocked.returncode == 1
        assert json.loads(blocked.stdout)["code"] == "STOP"
        assert allowed.returncode == 0
        assert allowed.stdout.startswith("ALLOWED: outbound automated call")
        assert (missing.returncode, missing.stdout) == (1, "")
        assert missing.stderr == "Error: contact 'nobody' is not registered in location 'loc-1'\n"
        assert refused.returncode == 1
        assert refused.stderr.startswith("Error: sms has permanent DND")
        assert refused.stderr.count("\n") == 1

    def test_python_dash_m_dnd_ledger_runs_the_same_cli(self, proc_db: str, tmp_path: Path) -> None:
        def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "dnd_ledger", *args], capture_output=True, text=True,
                env=clean_env(**env), cwd=tmp_path, timeout=60, check=False,
            )  # fmt: skip

        version = run("--version")
        run("init", DND_LEDGER_DB=proc_db)
        added = run("contacts", "add", L, ADA, "--email", EMAIL, "--json", DND_LEDGER_DB=proc_db)
        status = run("status", L, ADA, "--json", DND_LEDGER_DB=proc_db)

        assert version.returncode == 0
        assert version.stdout.startswith("dnd-ledger, version ")
        assert json.loads(added.stdout)["result"] == "appended"
        assert json.loads(status.stdout)["dnd"] == "off"
        assert Path(proc_db).is_file()


# -- PostgreSQL ------------------------------------------------------------------------
@pytest.mark.postgres
def test_the_cli_runs_on_postgresql_with_an_explicit_pii_key(pg_url: str) -> None:
    env = {"DND_LEDGER_PII_KEY": "0123456789abcdef" * 4}
    pg = Cli(pg_url)

    init = pg.run("init", env=env)
    pg.run("init", env=env)
    added = pg.json("contacts", "add", L, ADA, "--phone", PHONE, "--at", T_REG, env=env)
    stop = pg.json(
        "inbound", L, "--channel", "sms", "--from", PHONE, "--body", "STOP",
        "--message-sid", "SM-pg", "--at", T_STOP, env=env,
    )  # fmt: skip
    again = pg.json(
        "inbound", L, "--channel", "sms", "--from", PHONE, "--body", "STOP",
        "--message-sid", "SM-pg", "--at", T_STOP, env=env,
    )  # fmt: skip
    known = soon()
    status = pg.json("status", L, ADA, "--as-of", AS_OF, "--known-at", known, env=env)
    history = pg.json("history", L, ADA, env=env)

    dbname = pg_url.rsplit("/", 1)[1]
    assert init.stdout.startswith("ledger ready at postgresql://")
    assert init.stdout.endswith(f"/{dbname}\n")
    assert added == {"result": "appended", "events": ["Registered"], "contacts": [ADA]}
    assert stop == {"result": "appended", "events": ["OptOutKeyword"], "contacts": [ADA]}
    assert again == {"result": "duplicate", "events": ["OptOutKeyword"], "contacts": [ADA]}
    assert status == {
        "location_id": L,
        "contact_id": ADA,
        "dnd": "partial",
        "channels": {
            **all_inactive(),
            "sms": channel("permanent", T_STOP, "STOP", "opt-out keyword on sms"),
        },
        "as_of": iso(AS_OF),
        "known_at": known,
    }
    assert [h["event"] for h in history] == ["Registered", "OptOutKeyword"]
    wrong_key = pg.fail("status", L, ADA, env={"DND_LEDGER_PII_KEY": "fe" * 32})
    assert wrong_key.startswith("Error: the PII key does not match")


def test_postgresql_without_a_pii_key_is_a_clear_error() -> None:
    # The key is checked before any connection: no server is needed to see it.
    pg = Cli("postgresql://ledger@127.0.0.1:1/dnd_ledger")

    error = pg.fail("init")

    assert error == (
        "Error: PostgreSQL needs the installation's PII key: set DND_LEDGER_PII_KEY_FILE "
        "(a file holding a hex key; created if missing) or DND_LEDGER_PII_KEY"
    )
