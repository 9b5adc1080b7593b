"""The README's change-feed section runs as written: its configuration block with the
subscriber's URL pointed at a receiver on 127.0.0.1, its commands in order (publish to
a stream of the test's own on the real NATS server, deleted afterwards)."""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.e2e.test_readme import _block_after
from tests.integration.receiver import receiver
from tests.integration.test_nats_publish import fresh_stream, messages

from dnd_ledger.cli.main import cli
from dnd_ledger.delivery.subscriber import verify

SECTION = "## Change feed, subscribers and NATS"


@pytest.fixture
def stream() -> Iterator[tuple[str, str]]:
    with fresh_stream() as found:
        yield found


def test_the_readme_change_feed_section_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stream: tuple[str, str]
) -> None:
    name, prefix = stream
    monkeypatch.chdir(tmp_path)
    for var in ("DND_LEDGER_DB", "DND_LEDGER_CONFIG", "DND_LEDGER_PII_KEY"):
        monkeypatch.delenv(var, raising=False)
    config = _block_after(SECTION, "toml")
    secret = next(x.split('"')[1] for x in config.splitlines() if x.startswith("secret"))
    url = "http://127.0.0.1:9000/hooks/dnd"
    assert url in config
    outputs = []
    with receiver() as rx:
        (tmp_path / "ledger.toml").write_text(config.replace(url, rx.url))
        for line in _block_after(SECTION, "console").splitlines():
            assert line.startswith("$ dnd-ledger "), line
            args = shlex.split(line[2:])[1:]
            if args[0] == "publish":
                args += ["--stream", name, "--subject-prefix", prefix]
            result = CliRunner().invoke(cli, args, prog_name="dnd-ledger")
            assert result.exit_code == 0, (args, result.output)
            outputs.append(result.output)
    change = json.loads(outputs[3])
    assert (change["contact_id"], change["channel"], change["after"]) == (
        "c-42", "sms", "permanent",
    )  # fmt: skip
    assert len(rx.received) == 1
    assert verify(secret, rx.received[0].signature, rx.received[0].body, now=int(time.time()))
    assert "crm" in outputs[5]
    assert [m["id"] for _, _, m in messages(name, prefix)] == [change["id"]]
