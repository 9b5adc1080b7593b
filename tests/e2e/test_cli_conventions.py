"""Conventions every command keeps: one --format, NO_COLOR, completion, documented settings."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from dnd_ledger.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

READ_COMMANDS = [
    ["status", "loc-1", "c-42"],
    ["can-send", "loc-1", "c-42", "--channel", "sms"],
    ["history", "loc-1", "c-42"],
    ["stats", "loc-1"],
    ["projections", "status"],
    ["audit", "loc-1", "c-42"],
    ["contacts", "list", "loc-1"],
    ["contacts", "show", "loc-1", "c-42"],
    ["contacts", "find", "loc-1", "--phone", "+14155550100"],
]


def run(db: Path, *args: str, env: dict[str, str] | None = None, color: bool = False) -> str:
    result = CliRunner().invoke(cli, ["--db", str(db), *args], env=env, color=color)
    assert result.exit_code == 0, (args, result.output)
    return result.stdout


def timeless(out: str) -> object:
    """The JSON output without the query's own "now" (as_of, known_at)."""
    data = json.loads(out)
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in ("as_of", "known_at")}
    return data


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    run(path, "init")
    run(path, "contacts", "add", "loc-1", "c-42", "--phone", "+14155550100")
    run(path, "inbound", "loc-1", "--channel", "sms", "--from", "+14155550100", "--body",
        "STOP", "--message-sid", "SM1")  # fmt: skip
    return path


@pytest.mark.parametrize("command", READ_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_every_read_command_takes_one_format_option(db: Path, command: list[str]) -> None:
    as_json = run(db, *command, "--format", "json")
    assert json.loads(as_json) is not None
    assert timeless(run(db, *command, "--json")) == timeless(as_json)  # --json is shorthand
    for line in run(db, *command, "--format", "jsonl").splitlines():
        json.loads(line)
    rows = list(csv.reader(io.StringIO(run(db, *command, "--format", "csv"))))
    assert rows
    assert len({len(r) for r in rows}) == 1  # a header and rows of its width
    assert run(db, *command, "--format", "table").strip()


def test_stats_json_names_every_status_with_zeros_and_channels_as_a_mapping(db: Path) -> None:
    stats = json.loads(run(db, "stats", "--json"))["loc-1"]
    assert stats["overall"] == {"on": 0, "off": 0, "partial": 1}
    assert stats["channels"]["sms"] == {"inactive": 0, "active": 0, "permanent": 1}
    assert stats["channels"]["email"] == {"inactive": 1, "active": 0, "permanent": 0}
    assert set(stats["channels"]) == {"email", "sms", "call", "fb", "gmb", "whatsapp"}


def test_no_color_turns_colour_off(tmp_path: Path) -> None:
    args = ["demo", "--db", str(tmp_path / "demo.db")]
    coloured = CliRunner().invoke(cli, args, color=True, env={"NO_COLOR": ""})
    assert "\x1b[" in coloured.output
    plain = CliRunner().invoke(cli, ["demo", "--db", str(tmp_path / "demo2.db")], color=True,
                               env={"NO_COLOR": "1"})  # fmt: skip
    assert plain.exit_code == 0, plain.output
    assert "\x1b[" not in plain.output


def test_audit_help_shows_the_trail_options() -> None:
    out = CliRunner().invoke(cli, ["audit", "--help"]).output
    for option in ("--since", "--until", "--format"):
        assert option in out


def test_shell_completion_works_as_the_readme_says() -> None:
    text = README.read_text()
    assert "_DND_LEDGER_COMPLETE=bash_source dnd-ledger" in text
    result = CliRunner().invoke(
        cli, [], prog_name="dnd-ledger", env={"_DND_LEDGER_COMPLETE": "bash_source"}
    )
    assert "_dnd_ledger_completion" in result.output


def test_the_configuration_table_lists_every_setting() -> None:
    used = set()
    for path in (ROOT / "src" / "dnd_ledger").rglob("*.py"):
        used |= set(re.findall(r"DND_LEDGER_[A-Z_]+", path.read_text()))
    used.discard("DND_LEDGER_TEST_POSTGRES")  # the test suite's, not the ledger's
    text = README.read_text()
    table = text[text.index("## Configuration") : text.index("**Shell completion.**")]
    missing = sorted(name for name in used if f"`{name}`" not in table)
    assert missing == []
    assert "`NO_COLOR`" in table


def test_gitignore_ignores_pii_key_files() -> None:
    assert "*.pii-key" in (ROOT / ".gitignore").read_text().split()
