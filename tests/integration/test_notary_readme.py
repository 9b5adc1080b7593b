"""The README's "Tamper evidence" block runs as written, in a fresh directory, in a real shell."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dnd_ledger.notary.signed_note import parse_vkey

README = Path(__file__).resolve().parents[2] / "README.md"
BIN = Path(sys.executable).parent


def block(number: int = 0) -> list[str]:
    text = README.read_text()
    start = text.index("## Tamper evidence")
    blocks = re.compile(r"```sh\n(.*?)```", re.S).findall(
        text, start, text.index("\n## ", start + 1)
    )
    assert len(blocks) > number, "too few sh blocks in the Tamper evidence section"
    return [line for line in blocks[number].splitlines() if line and not line.startswith("#")]


def run_block(lines: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    script = ["set +e"]
    for line in lines:
        script += [line, 'echo "@@ $?" >&2']
    env = {k: v for k, v in os.environ.items() if not k.startswith("DND_LEDGER_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(["bash", "-c", "\n".join(script)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.mark.slow
def test_the_tamper_evidence_walkthrough_runs_as_written(tmp_path: Path) -> None:
    if shutil.which("sqlite3") is None:
        pytest.skip("the README's walk-through needs the sqlite3 shell")
    lines = block()
    script = ["set +e"]
    for line in lines:
        script += [line, 'echo "@@ $?" >&2']
    env = {k: v for k, v in os.environ.items() if not k.startswith("DND_LEDGER_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(["bash", "-c", "\n".join(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    codes = [int(x) for x in re.findall(r"^@@ (\d+)$", done.stderr, re.M)]
    assert len(codes) == len(lines), done.stderr
    for line, code in zip(lines, codes, strict=True):
        expected = 1 if "exit status 1" in line else 0
        assert code == expected, (line, code, done.stdout, done.stderr)

    assert parse_vkey((tmp_path / "ledger.pub").read_text().strip()).name == "dnd-ledger"
    out = done.stdout
    assert "\nverify: OK\n" in f"\n{out}"
    assert '"position": 7' in out
    assert "bundle OK: checkpoint" in out
    assert "loc-demo/contact-ada: 6 events (versions 1-6), all present and proven included" in out
    assert json.loads((tmp_path / "ada.verified.json").read_text())["ok"] is True
    assert (
        out.rstrip()
        .split("verify: FAILED, 2 problems\n")[1]
        .startswith(
            "first problem: event at position 7 (contact loc-demo/contact-ada version 2, "
            "OptOutKeyword; leaf 6) was changed after it was notarised"
        )
    )

    # The example in the prose after the block works as written too.
    example = "dnd-ledger audit verify-bundle ada.bundle.json --public-key ledger.pub --as-of 2026-11-26T18:00:00Z"
    assert f"`{example}`" in README.read_text().replace("\n", " ")
    asked = subprocess.run(["bash", "-c", example], cwd=tmp_path, env=env,
                           capture_output=True, text=True)  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    assert "DND " in asked.stdout
    assert "as of 2026-11-26T18:00:00+00:00" in asked.stdout


@pytest.mark.slow
def test_the_rotation_and_location_walkthrough_runs_as_written(tmp_path: Path) -> None:
    lines = block(1)
    done = run_block(lines, tmp_path)
    codes = [int(x) for x in re.findall(r"^@@ (\d+)$", done.stderr, re.M)]
    assert codes == [0] * len(lines), (done.stdout, done.stderr)
    out = done.stdout
    assert "\nverify: OK\n" in f"\n{out}"
    assert "signing keys: 2 keys followed from the first through 1 hand-over" in out
    assert "after 1 key hand-over from sha256:" in out
    assert "location loc-demo: complete; the signed location index lists 2 contacts" in out
    assert "loc-demo/contact-zoe: 1 events (versions 1-1), all present and proven included" in out
    first = parse_vkey((tmp_path / "first.pub").read_text().strip())
    second = parse_vkey((tmp_path / "second.pub").read_text().strip())
    assert first.public_key != second.public_key
