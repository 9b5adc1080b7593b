"""The change feed into NATS JetStream, for fan-out beyond one machine.

Each change is published to ``<prefix>.<location>`` (default prefix
``dnd.changes``) with the header ``Nats-Msg-Id`` set to the ledger's id and the change id, and the
publisher's position (``dnd_publisher_positions``) advances only after
JetStream acknowledged it. A publisher killed between the ack and the position
update publishes that change again after a restart, and JetStream's duplicate
window drops it: the stream holds each change once, in order.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dnd_ledger.projections.changes import MAX_PAGE, Change, feed_of

if TYPE_CHECKING:
    from dnd_ledger.application import DndLedger

DEFAULT_STREAM = "DND_CHANGES"
DEFAULT_PREFIX = "dnd.changes"
POSITIONS = (
    "CREATE TABLE IF NOT EXISTS dnd_publisher_positions ("
    " name TEXT PRIMARY KEY, position BIGINT NOT NULL)"
)
_SAFE = re.compile(r"[A-Za-z0-9_-]")


def subject_token(location_id: str) -> str:
    """A location id as one subject token: characters NATS reserves (``.``, ``*``,
    ``>``, spaces...) are written ``~HH`` (their UTF-8 bytes in hex)."""
    return "".join(
        ch if _SAFE.fullmatch(ch) else "".join(f"~{b:02X}" for b in ch.encode())
        for ch in location_id
    )


def subject_of(prefix: str, change: Change) -> str:
    return f"{prefix}.{subject_token(change.location_id)}"


def ledger_id(ledger: DndLedger) -> str:
    """This database's own id, made once: change ids are unique only within one ledger."""
    ledger.sql.execute(
        "INSERT INTO dnd_meta (name, value) VALUES ('ledger_id', ?) ON CONFLICT (name) DO NOTHING",
        (uuid.uuid4().hex,),
    )
    row = ledger.sql.fetchone("SELECT value FROM dnd_meta WHERE name = 'ledger_id'")
    assert row is not None
    return str(row[0])


def msg_id(ledger: str, change_id: int) -> str:
    """The ``Nats-Msg-Id``: JetStream drops a message whose id it saw within its window, so
    the id names the ledger too (two ledgers, or a re-created one, on one stream)."""
    return f"{ledger}-{change_id}"


class Publisher:
    def __init__(
        self,
        ledger: DndLedger,
        *,
        stream: str = DEFAULT_STREAM,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        self.ledger = ledger
        self.sql = ledger.sql
        self.feed = feed_of(ledger)
        self.stream = stream
        self.prefix = prefix
        self.name = f"nats:{stream}"
        self.ledger_id = ledger_id(ledger)
        with self.sql.transaction() as c:
            c.execute(POSITIONS)
            c.execute(
                self.sql.q(
                    "INSERT INTO dnd_publisher_positions (name, position) VALUES (?, 0)"
                    " ON CONFLICT (name) DO NOTHING"
                ),
                (self.name,),
            )

    def position(self) -> int:
        row = self.sql.fetchone(
            "SELECT position FROM dnd_publisher_positions WHERE name = ?", (self.name,)
        )
        return int(row[0]) if row else 0

    def _advance(self, change_id: int) -> None:
        self.sql.execute(
            "UPDATE dnd_publisher_positions SET position = ? WHERE name = ? AND position < ?",
            (change_id, self.name, change_id),
        )

    async def ensure_stream(self, js: Any) -> None:
        """The stream, created on the prefix's subjects when it does not exist yet."""
        from nats.js.errors import NotFoundError

        try:
            await js.stream_info(self.stream)
        except NotFoundError:
            await js.add_stream(name=self.stream, subjects=[f"{self.prefix}.>"])

    async def publish_new(self, js: Any, *, on_ack: Callable[[int], None] | None = None) -> int:
        """Publish every change after the position, one ack at a time; returns how many."""
        done = 0
        self.feed.current()
        while page := self.feed.page(None, self.position(), MAX_PAGE):
            for change in page:
                ack = await js.publish(
                    subject_of(self.prefix, change),
                    change.body(),
                    stream=self.stream,
                    headers={"Nats-Msg-Id": msg_id(self.ledger_id, change.id)},
                )
                self._advance(change.id)
                done += 0 if ack.duplicate else 1
                if on_ack:
                    on_ack(change.id)
        return done


async def run(
    publisher: Publisher,
    url: str,
    *,
    follow: bool,
    interval: float,
    report: Callable[[int], None],
    renew: Callable[[], object] = lambda: None,
) -> None:
    import nats

    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=3)
    try:
        js = nc.jetstream(timeout=10)
        await publisher.ensure_stream(js)
        while True:
            renew()
            done = await publisher.publish_new(js)
            if done:
                report(done)
            if not follow:
                return
            if not done:
                await asyncio.sleep(interval)
    finally:
        await nc.close()
