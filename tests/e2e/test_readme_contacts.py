"""The README's "Contacts and personal data" block runs as written, in a fresh directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def contacts_block() -> str:
    text = README.read_text()
    start = text.index("## Contacts and personal data")
    m = re.compile(r"```sh\n(.*?)```", re.S).search(text, start)
    assert m, "no ```sh block in the README's contacts section"
    return m.group(1)


def test_the_readme_contacts_block_runs_as_written(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DND_LEDGER_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + contacts_block()],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert '"next_cursor": "' in out
    assert "ada@example.com\n" in out  # revealed
    assert "appended AddressRemoved for c-43" in out
    assert re.search(r"sms\s+permanent", out)  # c-43 keeps the STOP its old number sent
    assert "erased 3 value(s) of c-42" in out
    assert "kept phone ph_" not in out  # c-43 no longer holds the number: it went too
    assert out.rstrip().splitlines()[-1].startswith("BLOCKED")
    assert "erased\n" in out  # the second reveal failed
    assert "+14155550100" not in out  # no command printed the number back
