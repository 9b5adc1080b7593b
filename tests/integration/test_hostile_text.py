"""Control characters, NUL and spreadsheet formulas, on every backend (issue 13, items 2-4).

PostgreSQL text cannot hold NUL: before these checks, a NUL in an actor or a
request id was a database error (a 500 over HTTP), and one in a STOP's body lost
the opt-out. Identifiers and free text are now refused at the door with a clear
error; a message body is cleaned, classified and recorded.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.audit_format import audit_csv, render_audit
from dnd_ledger.cli.main import cli as dnd_ledger_cli
from dnd_ledger.csv_safe import cell
from dnd_ledger.domain.errors import InvalidInput
from dnd_ledger.domain.values import Channel
from dnd_ledger.textcheck import clean_body, escape, problem

L = "loc-1"
PHONE = "+14155550100"
SMS = Channel.SMS


def _register(ledger: DndLedger, contact: str = "ada") -> None:
    ledger.execute(c.RegisterContact(L, contact, (PHONE,), ("ada@example.com",)))


def _head(ledger: DndLedger) -> int:
    return ledger.projector.head()


@pytest.mark.parametrize(
    "bad", ["\x00", "\x1b]0;owned\x07", "\x07", "\x9b", "\u202e", "\u2066", "\x7f"]
)
def test_identifiers_and_text_with_controls_are_refused_and_append_nothing(
    ledger: DndLedger, bad: str
) -> None:
    _register(ledger)
    before = _head(ledger)
    refused = [
        c.SetDnd(L, "ada", (SMS,), actor=f"alice{bad}"),
        c.SetDnd(L, "ada", (SMS,), actor="alice", reason=f"asked{bad}"),
        c.SetDnd(L, "ada", (SMS,), actor="alice", request_id=f"req{bad}"),
        c.ApproveOptIn(L, "ada", (SMS,), f"sam{bad}", "SUP-1", "signed form"),
        c.ApproveOptIn(L, "ada", (SMS,), "sam", f"SUP{bad}1", "signed form"),
        c.ApproveOptIn(L, "ada", (SMS,), "sam", "SUP-1", f"signed{bad} form"),
        c.RegisterContact(L, f"bob{bad}", (PHONE,)),
        c.RegisterContact(f"loc{bad}", "bob", (PHONE,)),
        c.ReceiveInbound(L, SMS, PHONE, "STOP", f"SM{bad}1"),
    ]
    for command in refused:
        with pytest.raises(InvalidInput, match="contains a"):
            ledger.execute(command)
    assert _head(ledger) == before


def test_free_text_keeps_newline_and_tab(ledger: DndLedger) -> None:
    _register(ledger)
    out = ledger.execute(c.SetDnd(L, "ada", (SMS,), actor="alice", reason="line one\n\tline two"))
    assert out.result == "appended"
    with pytest.raises(InvalidInput, match="actor contains a control character"):
        ledger.execute(c.SetDnd(L, "ada", (SMS,), actor="ali\tce"))


def test_errors_name_the_field_not_the_value(ledger: DndLedger) -> None:
    _register(ledger)
    with pytest.raises(InvalidInput) as e:
        ledger.execute(c.SetDnd(L, "ada", (SMS,), actor="secret-name\x1b[2J"))
    assert "secret-name" not in str(e.value)
    assert str(e.value) == "actor contains a control character (U+001B)"


@pytest.mark.parametrize("body", ["STOP\x00", "\x00STOP", "ST\x1bOP", "STOP\u202e", "STOP\x9b"])
def test_a_stop_with_control_characters_is_still_an_opt_out(ledger: DndLedger, body: str) -> None:
    _register(ledger)
    out = ledger.execute(c.ReceiveInbound(L, SMS, PHONE, body, "SM-nul"))
    assert out.events == ("OptOutKeyword",)
    assert ledger.can_send(L, "ada", SMS).allowed is False
    detail = ledger.history(L, "ada")[-1].detail
    # The stored body is the cleaned text; the exact text received keeps its own reference.
    assert ledger.reveal(detail["body_ref"]) == "STOP"
    assert detail["received_ref"] == ledger.keyring.ref("text", body)
    assert detail["received_ref"] != detail["body_ref"]


def test_provider_opt_out_type_with_nul_still_records_the_stop(ledger: DndLedger) -> None:
    _register(ledger)
    out = ledger.execute(
        c.ReceiveInbound(L, SMS, PHONE, "STOP", "SM-t", provider_opt_out_type="STOP\x00")
    )
    assert out.events == ("OptOutKeyword",)
    assert ledger.history(L, "ada")[-1].detail["provider_opt_out_type"] == "STOP"


def test_a_batch_with_one_bad_command_records_the_others(ledger: DndLedger) -> None:
    _register(ledger)
    outcomes = ledger.execute_many(
        [
            c.SetDnd(L, "ada", (SMS,), actor="al\x00ice", request_id="r1"),
            c.ReceiveInbound(L, SMS, PHONE, "STOP\x00", "SM-b"),
            c.ReportEmailEvent(L, "ada@example.com", "complained", "tok\x00en"),  # type: ignore[arg-type]
        ]
    )
    assert [o.result for o in outcomes] == ["rejected", "appended", "rejected"]
    assert ledger.can_send(L, "ada", SMS).allowed is False


def test_textcheck_helpers() -> None:
    assert problem("plain id") is None
    assert problem("a\nb") == "contains a control character (U+000A)"
    assert problem("a\nb", text=True) is None
    assert problem("\u202eevil") == "contains a bidirectional control (U+202E)"
    assert problem("\ud800") == "is not valid Unicode text (a lone surrogate)"
    assert clean_body("S\x00T\x1bO\u2067P\n") == "STOP\n"
    assert escape("\x1b]0;t\x07\u202e") == "\\x1b]0;t\\x07\\u202e"


# -- CSV formula injection --------------------------------------------------------------


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_cells_that_a_spreadsheet_would_run_are_quoted(start: str) -> None:
    assert cell(f"{start}HYPERLINK(1)") == "'" + escape(f"{start}HYPERLINK(1)")
    assert cell("c-42") == "c-42"
    assert cell(None) == ""
    assert cell(7) == "7"


def test_audit_csv_neutralises_formulas_in_every_free_field(ledger: DndLedger) -> None:
    ledger.execute(c.RegisterContact(L, "=cmd|' /C calc'!A0", (PHONE,)))
    ledger.execute(
        c.SetDnd(L, "=cmd|' /C calc'!A0", (SMS,), actor="@SUM(1+1)", reason="+1+1",
                 request_id="-2+3")
    )  # fmt: skip
    ledger.execute(
        c.ApproveOptIn(L, "=cmd|' /C calc'!A0", (SMS,), "=approver", "+SUP", "-evidence")
    )
    ledger.refresh_views()
    rows = ledger.views.audit(L, None, None, None)
    text = audit_csv(rows)
    for record in list(csv.DictReader(io.StringIO(text))):
        for name, value in record.items():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), (name, value)
    assert "'=cmd|' /C calc'!A0" in text
    assert "'@SUM(1+1)" in text


def test_stored_control_characters_are_rendered_escaped(ledger: DndLedger) -> None:
    """Rows written before the checks existed may hold controls: output escapes them."""
    row = {
        "position": 1, "location_id": L, "contact_id": "ada", "occurred_at": "2026-01-01T00:00:00+00:00",
        "recorded_at": "2026-01-01T00:00:00+00:00", "event": "DndSetByUser", "source": "user",
        "actor": "al\x1b]0;owned\x07ice\x9b", "channels": "sms", "effect": "block",
        "reason": "r\u202e", "before": {}, "after": {"sms": "active"}, "idempotency_key": None,
        "policy_version": "p", "evidence": None,
    }  # fmt: skip
    for fmt in ("table", "json", "jsonl", "csv"):
        out = render_audit([row], fmt)
        for raw in ("\x1b", "\x07", "\x9b", "\u202e"):
            assert raw not in out, (fmt, raw)
    assert json.loads(render_audit([row], "json"))[0]["actor"] == row["actor"]


def test_cli_history_and_audit_never_print_raw_escapes(tmp_path: Path) -> None:
    db = str(tmp_path / "l.db")
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(dnd_ledger_cli, ["--db", db, *args], catch_exceptions=False)
        return result.output

    run("init")
    run("contacts", "add", L, "ada", "--phone", PHONE)
    refused = run("dnd", "set", L, "ada", "--channel", "sms", "--actor", "x\x1b]0;t\x07")
    assert "Error: actor contains a control character (U+001B)" in refused
    assert "\x1b" not in refused
    for args in (("history", L, "ada"), ("audit", L, "ada", "--format", "csv")):
        out = run(*args)
        assert "\x1b" not in out


# -- ingest: a bad line never stops the others, on any engine -------------------------------


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_ingest_with_nul_lines_records_every_good_line(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = str(tmp_path / "l.db") if engine == "sqlite" else request.getfixturevalue("pg_url")
    env = {"DND_LEDGER_PII_KEY": "00112233445566778899aabbccddeeff", "DND_LEDGER_PII_KEY_FILE": ""}
    runner = CliRunner()
    assert runner.invoke(dnd_ledger_cli, ["--db", db, "init"], env=env).exit_code == 0
    lines = []
    for i in range(1200):
        body = "STOP\x00" if i == 7 else f"hello {i}"
        sid = "SM\x00bad" if i == 9 else f"SM{i:05d}"
        form = {"MessageSid": sid, "AccountSid": "AC01", "From": f"+1415555{i:04d}",
                "To": "+14155550199", "Body": body}  # fmt: skip
        lines.append(json.dumps(form))
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = runner.invoke(
        dnd_ledger_cli,
        ["--db", db, "ingest", str(path), "--format", "twilio-inbound", "--location", L, "--json"],
        env=env,
    )
    assert result.exception is None or isinstance(result.exception, SystemExit)
    summary = json.loads(result.stdout)
    assert summary["rejected"] == 1  # the NUL MessageSid, named by its line
    assert summary["errors"][0]["line"] == 10
    assert "\x00" not in summary["errors"][0]["error"]
    assert summary["appended"] == 1  # the STOP, recorded; "hello" lines are ignored
    assert summary["ignored"] == 1198
