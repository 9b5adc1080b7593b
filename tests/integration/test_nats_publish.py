"""Publishing the change feed to the real NATS JetStream server at 127.0.0.1:4222.

Each test makes its own uniquely named stream (and subject prefix) and deletes it.
Without a server answering they skip with the reason, except under CI=true, where
they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import SHARED_DATABASES, TEST_KEY

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.delivery.nats_publish import Publisher, ledger_id, subject_token
from dnd_ledger.delivery.nats_publish import run as run_publisher
from dnd_ledger.domain.values import Channel
from dnd_ledger.projections.changes import feed_of

NATS_URL = os.environ.get("DND_LEDGER_TEST_NATS", "nats://127.0.0.1:4222")
KEY = b"test-key-0123456789abcdef"


def _nats_reason() -> str | None:
    host, port = NATS_URL.removeprefix("nats://").rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=3) as s:
            if not s.recv(4).startswith(b"INFO"):
                return f"{NATS_URL} answered, but not as a NATS server"
    except OSError as e:
        return f"NATS not answering at {NATS_URL}: {e}"
    return None


@contextlib.contextmanager
def fresh_stream() -> Iterator[tuple[str, str]]:
    """A fresh stream name and subject prefix, the stream deleted afterwards (skips, or
    under CI=true fails, when NATS is not answering)."""
    reason = _nats_reason()
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true requires NATS JetStream: {reason}")
        pytest.skip(reason)
    tag = uuid.uuid4().hex[:10]
    name, prefix = f"DND_TEST_{tag}", f"dndtest.{tag}"
    try:
        yield name, prefix
    finally:
        asyncio.run(_delete(name))


@pytest.fixture
def stream() -> Iterator[tuple[str, str]]:
    with fresh_stream() as found:
        yield found


async def _delete(name: str) -> None:
    import nats
    from nats.js.errors import NotFoundError

    nc = await nats.connect(NATS_URL)
    try:
        with contextlib.suppress(NotFoundError):
            await nc.jetstream().delete_stream(name)
    finally:
        await nc.close()


def messages(name: str, prefix: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(subject, Nats-Msg-Id, change) of every message in the stream, in stream order."""

    async def read() -> list[tuple[str, str, dict[str, Any]]]:
        import nats

        nc = await nats.connect(NATS_URL)
        try:
            js = nc.jetstream()
            info = await js.stream_info(name)
            out = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                msg = await js.get_msg(name, seq)
                headers = msg.headers or {}
                out.append((msg.subject, headers.get("Nats-Msg-Id", ""), json.loads(msg.data)))
            return out
        finally:
            await nc.close()

    return asyncio.run(read())


def _publish(ledger: DndLedger, name: str, prefix: str) -> int:
    publisher = Publisher(ledger, stream=name, prefix=prefix)
    count: list[int] = []
    asyncio.run(run_publisher(publisher, NATS_URL, follow=False, interval=0.1, report=count.append))
    return sum(count)


class TestPublish:
    def test_each_change_once_in_order_with_its_id(
        self, ledger: DndLedger, stream: tuple[str, str]
    ) -> None:
        name, prefix = stream
        ledger.execute(c.RegisterContact("loc-1", "ada", ("+14155550100",)))
        ledger.execute(c.RegisterContact("loc.2", "bob", ("+14155550101",)))
        ledger.execute(c.ReceiveInbound("loc-1", Channel.SMS, "+14155550100", "STOP", "SM1"))
        ledger.execute(c.SetDnd("loc.2", "bob", (Channel.CALL,), "alice"))
        assert _publish(ledger, name, prefix) == 2
        assert _publish(ledger, name, prefix) == 0  # nothing new: nothing sent
        got = messages(name, prefix)
        me = ledger_id(ledger)
        assert [(s, i, m["contact_id"], m["after"]) for s, i, m in got] == [
            (f"{prefix}.loc-1", f"{me}-1", "ada", "permanent"),
            (f"{prefix}.loc~2E2", f"{me}-2", "bob", "active"),
        ]

    def test_a_re_publish_after_a_lost_position_is_dropped_by_jetstream(
        self, ledger: DndLedger, stream: tuple[str, str]
    ) -> None:
        name, prefix = stream
        ledger.execute(c.RegisterContact("loc-1", "ada", ("+14155550100",)))
        ledger.execute(c.SetDnd("loc-1", "ada", (Channel.SMS, Channel.EMAIL), "alice"))
        assert _publish(ledger, name, prefix) == 2
        # As if the process died after the acks and before storing its position.
        ledger.sql.execute("UPDATE dnd_publisher_positions SET position = 0")
        assert _publish(ledger, name, prefix) == 0
        me = ledger_id(ledger)
        assert [i for _, i, _ in messages(name, prefix)] == [f"{me}-1", f"{me}-2"]

    def test_another_ledger_on_the_same_stream_is_not_taken_for_a_re_publish(
        self, ledger: DndLedger, stream: tuple[str, str], tmp_path: Path
    ) -> None:
        name, prefix = stream
        ledger.execute(c.RegisterContact("loc-1", "ada", ("+14155550100",)))
        ledger.execute(c.SetDnd("loc-1", "ada", (Channel.SMS,), "alice"))
        assert _publish(ledger, name, prefix) == 1
        other = DndLedger(str(tmp_path / "other.db"), pii_key=TEST_KEY)  # change ids from 1 again
        try:
            other.execute(c.RegisterContact("loc-9", "zed", ("+14155550109",)))
            other.execute(c.ReceiveInbound("loc-9", Channel.SMS, "+14155550109", "STOP", "SM9"))
            assert _publish(other, name, prefix) == 1
        finally:
            other.close()
        got = messages(name, prefix)
        assert [(m["contact_id"], m["id"]) for _, _, m in got] == [("ada", 1), ("zed", 1)]


def test_subject_tokens_escape_what_nats_reserves() -> None:
    assert subject_token("loc-1_A") == "loc-1_A"
    assert subject_token("a.b *>") == "a~2Eb~20~2A~3E"
    assert subject_token("é") == "~C3~A9"


@SHARED_DATABASES
@pytest.mark.slow
def test_a_killed_publisher_restarts_and_the_stream_holds_each_change_once_in_order(
    db_url: str, stream: tuple[str, str], tmp_path: Path
) -> None:
    name, prefix = stream
    ledger = DndLedger(db_url, pii_key=KEY)
    try:
        contacts = [f"c{i}" for i in range(40)]
        ledger.execute_many([c.RegisterContact("loc-1", k, ()) for k in contacts])
        for r in range(25):
            command = c.SetDnd if r % 2 == 0 else c.ClearDnd
            ledger.execute_many([command("loc-1", k, (Channel.SMS,), "a") for k in contacts])
        feed = feed_of(ledger)
        feed.current()
        total = feed.head()
        assert total == 1000
        env = {**os.environ, "DND_LEDGER_DB": db_url, "DND_LEDGER_PII_KEY": KEY.hex()}
        argv = [
            sys.executable, "-m", "dnd_ledger", "publish", "--nats", NATS_URL, "--stream", name,
            "--subject-prefix", prefix, "--lease", "1",
        ]  # fmt: skip
        first = subprocess.Popen(
            [*argv, "--follow", "--interval", "0.05"], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        publisher = Publisher(ledger, stream=name, prefix=prefix)
        try:
            give_up = time.monotonic() + 60
            while publisher.position() < 50 and time.monotonic() < give_up:
                time.sleep(0.005)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
        killed_at = publisher.position()
        assert 50 <= killed_at < total, "killed mid-stream"
        time.sleep(1.5)  # the killed process's SQLite lease expires
        again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        assert publisher.position() == total
    finally:
        ledger.close()
    got = messages(name, prefix)
    assert [int(i.rsplit("-", 1)[1]) for _, i, _ in got] == list(range(1, total + 1))
    assert [m["id"] for _, _, m in got] == list(range(1, total + 1))
