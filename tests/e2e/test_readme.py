"""The README's commands are kept true: its walk-through runs here as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from dnd_ledger.cli.main import cli
from dnd_ledger.domain.policy import load_policy

README = Path(__file__).resolve().parents[2] / "README.md"


def _block_after(marker: str, lang: str) -> str:
    text = README.read_text()
    start = text.index(marker)
    m = re.compile(rf"```{lang}\n(.*?)```", re.S).search(text, start)
    assert m, f"no ```{lang} block after {marker!r}"
    return m.group(1)


def walkthrough() -> list[tuple[list[str], bool]]:
    steps = []
    for line in _block_after("A walk-through", "console").splitlines():
        assert line.startswith("$ dnd-ledger "), line
        command, _, comment = line[2:].partition("  #")
        expect_failure = "refused" in comment or "exit status 1" in comment
        steps.append((shlex.split(command)[1:], expect_failure))
    return steps


def test_the_readme_walkthrough_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in (
        "DND_LEDGER_DB",
        "DND_LEDGER_POLICY",
        "DND_LEDGER_PII_KEY",
        "DND_LEDGER_PII_KEY_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    outputs = []
    for args, expect_failure in walkthrough():
        result = CliRunner().invoke(cli, args, prog_name="dnd-ledger")
        assert result.exception is None or isinstance(result.exception, SystemExit), args
        assert (result.exit_code != 0) == expect_failure, (args, result.output)
        outputs.append(result.output)
    joined = "\n".join(outputs)
    assert "BLOCKED: outbound manual sms" in joined
    assert "sms has permanent DND" in joined
    assert '"result": "duplicate"' in joined
    assert "OptOutKeyword" in joined
    assert (tmp_path / "dnd-ledger.db").is_file()


def test_the_readme_policy_example_is_a_valid_policy(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(_block_after("## The policy file", "toml"))
    policy = load_policy(path)
    assert policy.version == "acme-2026-11"
    assert policy.classify_inbound("unstop").value == "opt-in"
    assert policy.carrier_rule(30008) is not None
