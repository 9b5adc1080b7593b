"""audit export --format consent-record: DPV JSON-LD records of the consent history."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dnd_ledger.cli.main import cli

PHONE = "+14155550100"
README = Path(__file__).resolve().parents[2] / "README.md"


def run(db: Path, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, ["--db", str(db), *args])
    assert result.exit_code == code, result.output
    return result.output


def test_opt_outs_are_withdrawn_and_opt_ins_given_per_channel(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    run(db, "init")
    run(db, "contacts", "add", "loc-1", "c-42", "--phone", PHONE)
    run(db, "inbound", "loc-1", "--channel", "sms", "--from", PHONE, "--body", "STOP",
        "--message-sid", "SM1", "--at", "2026-11-02T10:00:00Z")  # fmt: skip
    run(db, "support", "approve-opt-in", "loc-1", "c-42", "--channel", "sms", "--approver", "sam",
        "--ticket", "T-1", "--evidence", "signed form", "--at", "2026-11-03T10:00:00Z")  # fmt: skip
    out = run(db, "audit", "export", "loc-1", "c-42", "--format", "consent-record")
    doc = json.loads(out)
    assert doc["@context"]["dpv"] == "https://w3id.org/dpv#"
    graph = doc["@graph"]
    assert [r["dpv:hasConsentStatus"]["@id"] for r in graph] == [
        "dpv:ConsentWithdrawn",
        "dpv:ConsentGiven",
    ]
    stop, opt_in = graph
    assert stop["@type"] == "dpv:ConsentRecord"
    assert stop["dnd:channel"] == "sms"
    assert stop["dpv:isIndicatedAtTime"] == "2026-11-02T10:00:00+00:00"
    assert stop["dpv:hasIndicationMethod"] == "OptOutKeyword"
    assert stop["dct:source"] == "provider"
    assert stop["dnd:evidence"] == ["inbound:SM1"]  # the provider message id, as keyed
    assert stop["dpv:hasDataSubject"] == {"@id": "urn:dnd-ledger:contact:loc-1:c-42"}
    assert opt_in["dpv:isIndicatedBy"] == "sam"
    assert opt_in["dnd:evidence"][-1].startswith("tx_")
    assert stop["dnd:policyVersion"]
    assert PHONE not in out
    assert "signed form" not in out


def test_consent_record_needs_a_contact(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    run(db, "init")
    run(db, "audit", "export", "loc-1", "--format", "consent-record", code=2)


def test_the_readme_consent_record_command_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = README.read_text()
    start = text.index("## Consent records")
    block = re.compile(r"```sh\n(.*?)```", re.S).search(text, start)
    assert block
    monkeypatch.chdir(tmp_path)
    run(Path("dnd-ledger.db"), "init")
    run(Path("dnd-ledger.db"), "contacts", "add", "loc-1", "c-42", "--phone", PHONE)
    run(Path("dnd-ledger.db"), "dnd", "set", "loc-1", "c-42", "--channel", "email", "--actor", "al")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DND_LEDGER_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(["bash", "-euc", block.group(1)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    graph = json.loads((tmp_path / "c-42.jsonld").read_text())["@graph"]
    assert [r["dnd:channel"] for r in graph] == ["email"]
