"""Answers a reader keeps in memory never outlive the views they came from."""

from __future__ import annotations

import pytest
from tests.conftest import Clock

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.domain.values import Channel, DndKind

KEY = b"test-key-0123456789abcdef"
P = "+14155550100"


@pytest.mark.parametrize(
    "db_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_a_reader_that_never_writes_sees_another_processs_writes(db_url: str, clock: Clock) -> None:
    writer = DndLedger(db_url, pii_key=KEY, clock=clock)
    reader = DndLedger(db_url, pii_key=KEY, clock=clock)
    try:
        writer.execute(c.RegisterContact("loc-1", "ada", (P,)))
        reader.refresh_views()
        assert reader.can_send("loc-1", "ada", Channel.SMS).allowed  # now cached
        assert reader.status("loc-1", "ada", as_of=clock.now).dnd.value == "off"  # history cached
        writer.execute(c.ReceiveInbound("loc-1", Channel.SMS, P, "STOP", "SM1"))
        writer.refresh_views()  # another process keeps the views current
        reader.refresh_views()
        assert not reader.can_send("loc-1", "ada", Channel.SMS).allowed
        assert reader.status("loc-1", "ada").channels[Channel.SMS].status is DndKind.PERMANENT
        assert (
            reader.status("loc-1", "ada", as_of=clock.now).channels[Channel.SMS].status
            is DndKind.PERMANENT
        )
    finally:
        reader.close()
        writer.close()


def test_a_writers_own_cache_follows_its_writes(ledger: DndLedger) -> None:
    ledger.execute(c.RegisterContact("loc-1", "ada", (P,)))
    assert ledger.can_send("loc-1", "ada", Channel.SMS).allowed
    ledger.execute(c.ReceiveInbound("loc-1", Channel.SMS, P, "STOP", "SM1"))
    assert not ledger.can_send("loc-1", "ada", Channel.SMS).allowed
    ledger.execute(c.ReceiveInbound("loc-1", Channel.SMS, P, "START", "SM2"))
    assert ledger.can_send("loc-1", "ada", Channel.SMS).allowed
