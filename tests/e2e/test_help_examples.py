"""Every ``Example:`` in every command's ``--help`` runs as written, in a fresh directory.

The examples are collected from the CLI itself, so a new command's example is
checked as soon as it exists: the test fails until it is placed in :data:`STORY`
(run in that order, each must exit 0), in :data:`LONG_RUNNING` (started, must
still be running after a moment, then stopped) or, with the reason, in
:data:`ELSEWHERE`. The only preparation is what a reader would have done by
then: a service configuration, a legacy CSV and a Twilio status export beside
the ledger, and the ``$TOKEN`` and ``$FORM`` the web examples name.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
from tests.web.support import TWILIO_TOKEN, config_toml

from dnd_ledger.cli.main import cli

pytestmark = pytest.mark.slow
EXE = Path(sys.executable).with_name("dnd-ledger")

#: Run in this order; each must exit 0.
STORY = [
    "dnd-ledger keys generate --out ledger.key > ledger.pub",
    "dnd-ledger init",
    "dnd-ledger --db ./ledger.db init",
    "DND_LEDGER_SIGNING_KEY=ledger.key dnd-ledger keys public > ledger.pub",
    "dnd-ledger contacts add loc-1 c-42 --phone +14155550100 --email ada@example.com",
    "dnd-ledger contacts add loc-1 c-41 --phone +14155550141 --at 2026-10-01T09:00:00Z",
    "dnd-ledger can-send loc-1 c-42 --channel sms",
    "dnd-ledger can-send loc-1 c-42 --channel sms --manual --exit-code",  # allowed: exit 0
    "dnd-ledger inbound loc-1 --channel sms --from +14155550100 --body STOP --message-sid SM1",
    "dnd-ledger confirmation record loc-1 --channel sms --to +14155550100 --message-sid SM2",
    "dnd-ledger dnd set loc-1 c-42 --channel sms --channel call --actor alice",
    "dnd-ledger dnd clear loc-1 c-42 --channel email --actor alice --suppression-removed",
    "dnd-ledger support approve-opt-in loc-1 c-42 --channel sms --approver sam \\\n"
    '  --ticket SUP-981 --evidence "signed web form 2026-11-02, IP 203.0.113.9"',
    "dnd-ledger import-legacy legacy-contacts.csv",
    "dnd-ledger ingest twilio-status.jsonl --format twilio-status --location loc-1",
    "dnd-ledger inbound loc-1 --channel sms --from +14155550100 --body 'please stop texting me'"
    " --message-sid SM003",
    "dnd-ledger review list loc-1 --overdue --format csv",
    'dnd-ledger review resolve loc-1 SM003 --as revocation --actor rita --note "called back"',
    "dnd-ledger status loc-1 c-41 --as-of 2026-11-01T00:00:00Z",
    "dnd-ledger history loc-1 c-42 --json",
    "dnd-ledger contacts list loc-1",
    "dnd-ledger contacts list loc-1 --channel sms --state permanent --format csv",
    "dnd-ledger contacts show loc-1 c-42",
    "dnd-ledger contacts find loc-1 --phone +14155550100",
    "dnd-ledger stats loc-1 --json",
    "dnd-ledger audit loc-1 c-42 --format csv",
    "dnd-ledger audit loc-1 --since 2026-11-01T00:00:00Z --format jsonl",
    "dnd-ledger projections status --json",
    "dnd-ledger changes loc-1 --after 0 --format jsonl",
    "dnd-ledger subscribers status --config ledger.toml --json",
    "dnd-ledger projections rebuild audit",
    "dnd-ledger notary status --json",
    "dnd-ledger checkpoint",
    "dnd-ledger proof inclusion 7",
    "dnd-ledger audit export loc-1 c-42 --bundle c-42.bundle.json",
    "dnd-ledger audit verify-bundle c-42.bundle.json --public-key ledger.pub \\\n"
    "  --as-of 2026-11-02T12:00:00Z",
    "dnd-ledger audit export loc-1 c-42 --format consent-record > c-42.jsonld",
    "cp c-42.bundle.json last-month.bundle.json",  # an auditor kept last month's bundle
    "dnd-ledger verify --known-checkpoint last-month.bundle.json",
    "dnd-ledger keys rotate --out ledger-2027.key",
    "dnd-ledger policy show",  # before the next: write the file it reads
    "dnd-ledger policy show > /dev/null && printf 'version = \"site-1\"\\n' > policy.toml",
    "dnd-ledger --policy policy.toml policy show",
    'dnd-ledger web hash-token "$TOKEN"',
    'dnd-ledger web sign-twilio loc-1 /v1/locations/loc-1/webhooks/twilio/inbound "$FORM"',
    'dnd-ledger web sign-mailgun loc-1 \'{"event": "failed", "severity": "permanent",\n'
    '  "reason": "bounce", "recipient": "ada@example.com", "id": "ev-1",\n'
    '  "timestamp": 1700000000}\' > webhook.json',
    "dnd-ledger witness generate --out witness.key > witness.pub",
    "dnd-ledger contacts remove-address loc-1 c-42 --phone +14155550100 --actor alice",
    'dnd-ledger pii erase loc-1 c-42 --actor dpo --reason "erasure request T-77"',
    "dnd-ledger demo",
]
#: Lines above that are not examples but the reader's own steps between them.
OWN_STEPS = {
    "dnd-ledger checkpoint",
    "cp c-42.bundle.json last-month.bundle.json",
    "dnd-ledger policy show > /dev/null && printf 'version = \"site-1\"\\n' > policy.toml",
    "dnd-ledger inbound loc-1 --channel sms --from +14155550100 --body 'please stop texting me'"
    " --message-sid SM003",
    "dnd-ledger policy show",
}
#: Services: started in the same directory, must still be running after a few seconds.
LONG_RUNNING = [
    "dnd-ledger --db ./ledger.db serve --config ledger.toml --port 8000",
    "dnd-ledger notary run --follow",
    "dnd-ledger deliver --config ledger.toml --follow",
    "dnd-ledger witness serve --key witness.key --state witness-state --log-key ledger.pub",
]
#: Examples that name a machine this test does not have, with what stands in for them.
ELSEWHERE = {
    "dnd-ledger --db postgresql://ledger@db/ledger projections run --follow":
        "a PostgreSQL host named db; tests/integration run the follower on PostgreSQL",
    "dnd-ledger --db postgresql://ledger@db/ledger serve --config ledger.toml --workers 4":
        "a PostgreSQL host named db; tests/web/test_serve.py runs --workers on PostgreSQL",
    "dnd-ledger checkpoint --witness http://witness.example:7380 --json":
        "a witness at witness.example; tests/integration/test_witness.py runs one",
    "dnd-ledger publish --nats nats://127.0.0.1:4222 --follow":
        "it would leave a stream on the machine's NATS; tests/integration/test_nats_publish.py"
        " runs it with a stream of its own",
    "dnd-ledger proof consistency 1000 2000":
        "a log of 2,000 events; tests/integration/test_notary.py proves consistency",
    "dnd-ledger pii reveal ph_0123456789abcdef0123456789abcdef":
        "that reference; the story reveals a reference of its own (see the test)",
}  # fmt: skip


def examples() -> set[str]:
    """Every example command of every command's help (continuation lines joined)."""
    found: set[str] = set()

    def walk(command: click.Command, path: list[str]) -> None:
        ctx = click.Context(command, info_name=" ".join(path))
        text = command.help or ""
        lines = text.splitlines()
        for i, line in enumerate(lines):
            stripped = line.strip()
            if not stripped.startswith("Example"):
                continue
            rest = stripped.split(":", 1)[1].strip()
            block = [rest] if rest else []
            for follow in lines[i + 1 :]:
                if not follow.strip() or not follow.startswith(" "):
                    break
                block.append(follow.strip())
            current = ""
            for part in block:
                current = f"{current}\n  {part}" if current else part
                try:
                    words = shlex.split(current)
                except ValueError:  # an open quote: the example goes on
                    continue
                program = next((w for w in words if "=" not in w), "")  # past VAR=value
                if program == "dnd-ledger":
                    found.add(current)
                current = ""
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])
        del ctx

    walk(cli, ["dnd-ledger"])
    return found


def test_every_help_example_is_accounted_for() -> None:
    listed = (set(STORY) - OWN_STEPS) | set(LONG_RUNNING) | set(ELSEWHERE)
    have = examples()
    assert have - listed == set(), "examples this test does not run yet"
    assert listed - have == set(), "examples this test runs that no --help shows any more"


def _prepare(directory: Path) -> dict[str, str]:
    subscriber = (  # nobody listens there: deliveries wait and retry
        '[[subscribers]]\nname = "crm"\nurl = "http://127.0.0.1:9/hooks/dnd"\n'
        'secret = "a-long-random-value-for-crm-only"\n'
    )
    (directory / "ledger.toml").write_text(
        config_toml(public_url="https://ledger.example.com") + subscriber
    )
    (directory / "legacy-contacts.csv").write_text(
        "location_id,contact_id,phone,email,dnd\nloc-1,c-7,+14155550107,,true\n"
    )
    status = {"MessageSid": "SM9", "MessageStatus": "undelivered", "ErrorCode": "30003",
              "To": "+14155550100", "AccountSid": "AC1"}  # fmt: skip
    (directory / "twilio-status.jsonl").write_text(json.dumps(status) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DND_LEDGER_")}
    env |= {
        "PATH": f"{EXE.parent}{os.pathsep}{env.get('PATH', '')}",
        "DND_LEDGER_CONFIG": str(directory / "ledger.toml"),
        "DND_LEDGER_SIGNING_KEY": str(directory / "ledger.key"),
        "TOKEN": "reader-token-0123456789",
        "FORM": "From=%2B14155550100&Body=STOP&MessageSid=SM5",
        "NO_COLOR": "1",
    }
    assert TWILIO_TOKEN in (directory / "ledger.toml").read_text()
    return env


def test_the_help_examples_run_as_written(tmp_path: Path) -> None:
    env = _prepare(tmp_path)
    for example in STORY:
        done = subprocess.run(["bash", "-c", example], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        assert done.returncode == 0, f"{example}\nexit {done.returncode}\n{done.stderr[-2000:]}"
    # pii reveal: a reference of this story (the erased contact's phone is gone; c-7's is not).
    shown = subprocess.run(["bash", "-c", "dnd-ledger contacts show loc-1 c-7 --format json"],
                           cwd=tmp_path, env=env, capture_output=True, text=True,
                           check=True)  # fmt: skip
    ref = next(a["ref"] for a in json.loads(shown.stdout)["addresses"] if a["kind"] == "phone")
    revealed = subprocess.run(["bash", "-c", f"dnd-ledger pii reveal {ref}"], cwd=tmp_path,
                              env=env, capture_output=True, text=True, check=False)  # fmt: skip
    assert revealed.returncode == 0, revealed.stderr
    assert "+14155550107" in revealed.stdout


@pytest.mark.parametrize("example", LONG_RUNNING)
def test_the_long_running_examples_start(tmp_path: Path, example: str) -> None:
    env = _prepare(tmp_path)
    for step in ("dnd-ledger keys generate --out ledger.key > ledger.pub",
                 "dnd-ledger --db ./ledger.db init", "dnd-ledger init",
                 "dnd-ledger witness generate --out witness.key > witness.pub"):  # fmt: skip
        subprocess.run(["bash", "-c", step], cwd=tmp_path, env=env, check=True,
                       capture_output=True)  # fmt: skip
    port = _free_port()
    command = example.replace("--port 8000", f"--port {port}")  # the one change: a free port
    proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        exited = proc.wait(timeout=4)
    except subprocess.TimeoutExpired:
        exited = None  # still running, as a service should be
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=15)
    assert exited is None, f"{command} exited with {exited}:\n{err[-2000:]}"
    assert "Traceback" not in err, err


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
