"""The command line side of issue 12: merged policies, reused request ids, file inputs
that are not UTF-8 (one ``Error: ...`` line naming the line, never a traceback)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.e2e.test_cli import ENV_NAMES, PHONE, Cli, L

ADA = "ada"
LEGACY_HEADER = b"location_id,contact_id,phone,email,dnd\n"


@pytest.fixture(autouse=True)
def _no_ledger_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    ledger = Cli(str(tmp_path / "ledger.db"))
    ledger.run("init")
    return ledger


def events(cli: Cli) -> list[str]:
    return [item["event"] for item in cli.json("history", L, ADA)]


class TestPolicyShowPrintsTheMergedPolicy:
    def test_one_changed_code_shows_beside_every_built_in_one(
        self, cli: Cli, tmp_path: Path
    ) -> None:
        policy = tmp_path / "p.toml"
        policy.write_text('version = "car-1"\n[carrier_codes.30008]\neffect = "temporary"\n'
                          '[carrier_codes.30005]\neffect = "none"\n')  # fmt: skip
        doc = json.loads(cli.run("--policy", str(policy), "policy", "show", db=False).stdout)
        codes = {code: rule["effect"] for code, rule in doc["carrier_codes"].items()}
        assert codes == {"30003": "temporary", "30004": "permanent", "30005": "none",
                         "30006": "temporary", "21610": "permanent", "63014": "permanent",
                         "30008": "temporary"}  # fmt: skip
        assert set(doc["email_failed_permanent"]) == {
            "bounce", "generic", "suppress-bounce", "suppress-complaint", "suppress-unsubscribe"
        }  # fmt: skip
        out = cli.run("--policy", str(policy), "policy", "show", "--format", "summary").stdout
        assert "30004         permanent" in out
        assert "30005         none" in out
        assert "suppress-complaint         permanent" in out
        assert "review (longer messages containing): temporary: STOP, UNSTOP" in out


class TestRequestIdReuse:
    def test_a_clear_with_the_set_requests_id_is_refused_with_exit_1(self, cli: Cli) -> None:
        cli.run("contacts", "add", L, ADA, "--phone", PHONE)
        cli.run("dnd", "set", L, ADA, "--channel", "sms", "--actor", "alice", "--request-id", "r1")
        error = cli.fail(
            "dnd", "clear", L, ADA, "--channel", "sms", "--actor", "alice", "--request-id", "r1"
        )
        assert "request id 'r1' was already used for a different request" in error
        assert events(cli) == ["Registered", "DndSetByUser"]
        again = cli.json(
            "dnd", "set", L, ADA, "--channel", "sms", "--actor", "alice", "--request-id", "r1"
        )
        assert again["result"] == "duplicate"


class TestFilesThatAreNotUtf8:
    def test_a_latin1_legacy_csv_is_one_error_line_with_its_line_number(
        self, cli: Cli, tmp_path: Path
    ) -> None:
        path = tmp_path / "legacy.csv"
        path.write_bytes(LEGACY_HEADER + b"loc-1,ada,+14155550100,,true\n"
                         b"loc-1,bob,+14155550111,j\xf6rg@example.com,true\n")  # fmt: skip
        error = cli.fail("import-legacy", str(path))
        assert error == (
            f"Error: {path} is not UTF-8 text: line 3, column 25: byte 0xf6 is not UTF-8"
        )
        cli.fail("status", L, ADA)  # nothing was imported

    def test_a_latin1_legacy_csv_on_standard_input_too(self, cli: Cli, tmp_path: Path) -> None:
        path = tmp_path / "legacy.csv"
        path.write_bytes(LEGACY_HEADER + b"loc-1,ada,,\xe9@example.com,true\n")
        done = subprocess.run(
            [sys.executable, "-m", "dnd_ledger", "--db", str(cli.db), "import-legacy", "-"],
            input=path.read_bytes(), capture_output=True, check=False,
        )  # fmt: skip
        assert done.returncode == 1
        assert done.stderr.decode().splitlines() == [
            "Error: standard input is not UTF-8 text: line 2, column 12: byte 0xe9 is not UTF-8"
        ]

    def test_a_utf8_legacy_csv_with_a_byte_order_mark_still_imports(
        self, cli: Cli, tmp_path: Path
    ) -> None:
        path = tmp_path / "legacy.csv"
        path.write_bytes(
            b"\xef\xbb\xbf" + LEGACY_HEADER + "loc-1,ada,,jörg@example.com,true\n".encode()
        )
        assert cli.json("import-legacy", str(path))["appended"] == 1

    def test_a_policy_file_names_the_line_of_its_bad_byte(self, cli: Cli, tmp_path: Path) -> None:
        path = tmp_path / "p.toml"
        path.write_bytes(b'version = "v1"\n# caf\xe9\n')
        error = cli.fail("--policy", str(path), "policy", "show")
        assert error == (
            f"Error: policy file {path} is not UTF-8 text: line 2, column 6: byte 0xe9 is not UTF-8"
        )

    @pytest.mark.parametrize(
        "args",
        [
            ("verify", "--known-checkpoint", "{file}"),
            ("audit", "verify-bundle", "{file}", "--public-key", "{file}"),
            ("ingest", "{line}", "--format", "mailgun", "--location", L,
             "--verify-signatures", "--config", "{file}"),
        ],
    )  # fmt: skip
    def test_other_file_inputs_report_bad_bytes_with_the_line(
        self, cli: Cli, tmp_path: Path, args: tuple[str, ...]
    ) -> None:
        bad = tmp_path / "bad.txt"
        bad.write_bytes(b"first line\n\xff\xfe\n")
        line = tmp_path / "one.jsonl"
        line.write_text("{}\n")
        argv = [a.format(file=bad, line=line) for a in args]
        error = cli.fail(*argv, code=2 if args[0] == "verify" else 1)
        assert "is not UTF-8 text: line 2" in error

    def test_the_offline_verifier_reports_a_bad_public_key_file(self, tmp_path: Path) -> None:
        bad = tmp_path / "key.pub"
        bad.write_bytes(b"\xff\n")
        bundle = tmp_path / "b.json"
        bundle.write_text("{}")
        done = subprocess.run(
            [sys.executable, "-m", "dnd_ledger.notary.offline", str(bundle), "--public-key", str(bad)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 1
        assert done.stderr.splitlines() == [
            f"Error: bundle rejected: public key file {bad} is not UTF-8 text: line 1: byte 0xff"
        ]
