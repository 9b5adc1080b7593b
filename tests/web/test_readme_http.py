"""The README's HTTP section is kept true: its shell block runs here as written.

The block runs in bash in a fresh directory, with the project's virtualenv first
on PATH, as a newcomer would run it. The only change is the port (a free one
instead of 8000). Afterwards the browser's step is replayed with curl: sign in
with the token through the form, then open the audit page with the cookie.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"

pytestmark = pytest.mark.slow


def http_block() -> str:
    text = README.read_text()
    start = text.index("## HTTP API")
    m = re.compile(r"```sh\n(.*?)```", re.S).search(text, start)
    assert m, "no ```sh block in the README's HTTP section"
    return m.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


BROWSER = """
# -- the browser's step, replayed: the sign-in form, then the page with the cookie only
PAGE=/v1/locations/loc-1/contacts/c-42/audit.html
curl -s -c jar -o /dev/null -w 'sign-in %{http_code} %{redirect_url}\\n' \\
  --data-urlencode "token=$TOKEN" --data-urlencode "next=$PAGE" http://127.0.0.1:8000/v1/sign-in
curl -s -b jar -o page.html -w 'page %{http_code}\\n' http://127.0.0.1:8000$PAGE
grep -c OptOutKeyword page.html
grep -i -c 'set-cookie' jar || true
"""


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's steps use curl")
def test_the_readme_http_section_runs_as_written(tmp_path: Path) -> None:
    script = http_block()
    assert "dnd-ledger serve --port 8000 &" in script
    port = str(free_port())
    body = (script + BROWSER).replace("8000", port)
    prologue = "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true; wait' EXIT\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DND_LEDGER_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(
        ["bash", "-c", prologue + body],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert '"status":"ok"' in out
    assert '{"result":"appended","events":["Registered"],"contacts":["c-42"]}' in out
    assert "<Response/>" in out
    assert '"allowed":false' in out
    assert '"event":"OptOutKeyword"' in out
    assert f"http://127.0.0.1:{port}/v1/locations/loc-1/contacts/c-42/audit.html" in out
    lines = out.splitlines()
    assert "200" in lines  # the audit page, fetched with the token as a header
    assert "permanent DND" in (tmp_path / "audit.html").read_text()
    assert f"sign-in 303 http://127.0.0.1:{port}/v1/locations/loc-1/contacts/c-42/audit.html" in (
        out
    )
    assert "page 200" in out
    assert (tmp_path / "ledger.db").is_file()
    assert "Error" not in result.stderr
    # Steps 7 and 8: contacts, reveal, address removal and erasure.
    assert '{"contacts":[{"contact_id":"c-42","dnd":"partial"' in out
    assert '"open_reviews":[]' in out
    assert '"value":"+14155550100"' in out
    assert '"events":["AddressRemoved"]' in out
    assert '"erased":3' in out
