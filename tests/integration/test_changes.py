"""The change feed, on every backend: each committed change once, in log order, and a
rebuild of the views never re-emits or renumbers one."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from click.testing import CliRunner
from tests.conftest import SHARED_DATABASES

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.cli.main import cli
from dnd_ledger.domain.values import ALL_CHANNELS, Channel
from dnd_ledger.projections.changes import feed_of

SMS, EMAIL, CALL = Channel.SMS, Channel.EMAIL, Channel.CALL
PHONE = "+14155550100"


def _scenario(ledger: DndLedger) -> None:
    ledger.execute(c.RegisterContact("loc-1", "ada", (PHONE,)))
    ledger.execute(c.RegisterContact("loc-1", "bob", ("+14155550101",)))
    ledger.execute(c.SetDnd("loc-1", "ada", (SMS, EMAIL), "alice"))
    ledger.execute(c.SetDnd("loc-1", "ada", (SMS,), "alice"))  # no change: already active
    ledger.execute(c.ReceiveInbound("loc-1", SMS, PHONE, "STOP", "SM1"))
    ledger.execute(c.ClearDnd("loc-1", "ada", (EMAIL,), "alice"))
    ledger.execute(c.SetDnd("loc-1", "bob", (CALL,), "alice"))
    ledger.execute(c.RegisterContact("loc-2", "cy", ("+14155550102",)))
    ledger.execute(c.SetDnd("loc-2", "cy", (SMS,), "alice"))


EXPECTED = [
    ("loc-1", "ada", "sms", "inactive", "active", "DndSetByUser"),
    ("loc-1", "ada", "email", "inactive", "active", "DndSetByUser"),
    ("loc-1", "ada", "sms", "active", "permanent", "OptOutKeyword"),
    ("loc-1", "ada", "email", "active", "inactive", "DndClearedByUser"),
    ("loc-1", "bob", "call", "inactive", "active", "DndSetByUser"),
    ("loc-2", "cy", "sms", "inactive", "active", "DndSetByUser"),
]


def _summary(ledger: DndLedger, location: str | None = None) -> list[tuple[str, ...]]:
    feed = feed_of(ledger)
    feed.current()
    return [
        (ch.location_id, ch.contact_id, ch.channel, ch.before, ch.after, ch.cause_event)
        for ch in feed.page(location, 0, 1000)
    ]


class TestChangeFeed:
    def test_each_change_once_in_log_order(self, ledger: DndLedger) -> None:
        _scenario(ledger)
        assert _summary(ledger) == EXPECTED
        found = feed_of(ledger).page(None, 0, 1000)
        assert [ch.id for ch in found] == list(range(1, len(EXPECTED) + 1))
        positions = [ch.position for ch in found]
        assert positions == sorted(positions)
        assert _summary(ledger, "loc-2") == EXPECTED[5:]
        # Reading again, or catching up again, adds nothing.
        assert feed_of(ledger).catch_up() == 0
        assert _summary(ledger) == EXPECTED

    def test_cursor_pages_read_on_without_gaps(self, ledger: DndLedger) -> None:
        _scenario(ledger)
        feed = feed_of(ledger)
        feed.current()
        seen, after = [], 0
        while page := feed.page("loc-1", after, 2):
            assert len(page) <= 2
            seen += page
            after = page[-1].id
        assert [(ch.contact_id, ch.channel, ch.after) for ch in seen] == [
            (e[1], e[2], e[4]) for e in EXPECTED[:5]
        ]

    def test_a_rebuild_of_the_views_never_re_emits_or_renumbers(self, ledger: DndLedger) -> None:
        _scenario(ledger)
        before = [ch.to_json() for ch in (feed_of(ledger).current(), feed_of(ledger).page(None))[1]]
        ledger.projector.rebuild(["status", "audit", "addresses", "stats"])
        ledger.execute(c.SetDnd("loc-1", "bob", (EMAIL,), "alice"))
        feed = feed_of(ledger)
        feed.current()
        after = [ch.to_json() for ch in feed.page(None, 0, 1000)]
        assert after[: len(before)] == before
        assert len(after) == len(before) + 1
        assert (after[-1]["contact_id"], after[-1]["channel"], after[-1]["id"]) == (
            "bob", "email", len(before) + 1,
        )  # fmt: skip

    def test_a_read_is_never_behind_an_acknowledged_write(self, ledger: DndLedger) -> None:
        ledger.execute(c.RegisterContact("loc-1", "ada", (PHONE,)))
        feed = feed_of(ledger)
        assert feed.wait_page("loc-1") == []
        ledger.execute(c.SetDnd("loc-1", "ada", ALL_CHANNELS, "alice"))
        assert len(feed.wait_page("loc-1")) == len(ALL_CHANNELS)

    def test_a_long_poll_returns_when_a_change_commits(self, ledger: DndLedger) -> None:
        ledger.execute(c.RegisterContact("loc-1", "ada", (PHONE,)))
        feed = feed_of(ledger)
        timer = threading.Timer(0.5, lambda: ledger.execute(c.SetDnd("loc-1", "ada", (SMS,), "x")))
        started = time.monotonic()
        timer.start()
        try:
            found = feed.wait_page("loc-1", 0, 10, wait=10)
        finally:
            timer.join()
        assert [(ch.channel, ch.after) for ch in found] == [("sms", "active")]
        assert time.monotonic() - started < 5

    def test_an_empty_long_poll_waits_then_returns_nothing(self, ledger: DndLedger) -> None:
        started = time.monotonic()
        assert feed_of(ledger).wait_page("loc-1", 0, 10, wait=0.6) == []
        assert time.monotonic() - started >= 0.6


@SHARED_DATABASES
def test_two_processes_catching_up_at_once_write_each_change_once(
    two_ledgers: tuple[DndLedger, DndLedger],
) -> None:
    first, second = two_ledgers
    first.execute(c.RegisterContact("loc-1", "ada", (PHONE,)))
    for i in range(20):
        first.execute(
            c.SetDnd("loc-1", "ada", (SMS,), "a")
            if i % 2 == 0
            else c.ClearDnd("loc-1", "ada", (SMS,), "a")
        )
    errors: list[BaseException] = []

    def run(ledger: DndLedger) -> None:
        try:
            for _ in range(5):
                feed_of(ledger).current()
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(ledger,)) for ledger in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    found = feed_of(second).page(None, 0, 1000)
    assert [ch.after for ch in found] == ["active", "inactive"] * 10
    assert [ch.id for ch in found] == list(range(1, 21))


def test_cli_changes_prints_pages_and_reads_on_from_a_cursor(tmp_path: Path) -> None:
    db = str(tmp_path / "ledger.db")

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, ["--db", db, *args])
        assert result.exit_code == 0, result.output
        return result.output

    run("init")
    run("contacts", "add", "loc-1", "ada", "--phone", PHONE)
    run("dnd", "set", "loc-1", "ada", "--channel", "sms", "--channel", "email", "--actor", "a")
    run("dnd", "clear", "loc-1", "ada", "--channel", "email", "--actor", "a")
    lines = [json.loads(x) for x in run("changes", "loc-1", "--format", "jsonl").splitlines()]
    assert [(x["contact_id"], x["channel"], x["before"], x["after"]) for x in lines] == [
        ("ada", "sms", "inactive", "active"),
        ("ada", "email", "inactive", "active"),
        ("ada", "email", "active", "inactive"),
    ]
    page = json.loads(run("changes", "loc-1", "--after", "1", "--limit", "1", "--format", "json"))
    assert [x["id"] for x in page["changes"]] == [2]
    assert page["next"] == 2
    assert "DndClearedByUser" in run("changes", "loc-1")
    assert json.loads(run("changes", "loc-2", "--format", "json")) == {"changes": [], "next": 0}


class TestReviewChanges:
    def test_a_review_opened_and_resolved_are_change_records(self, ledger: DndLedger) -> None:
        ledger.execute(c.RegisterContact("loc-1", "ada", (PHONE,)))
        ledger.execute(c.ReceiveInbound("loc-1", SMS, PHONE, "please stop texting me", "SM9"))
        ledger.execute(c.ResolveReview("loc-1", "SM9", "revocation", "rita", "asked to stop"))
        found = _summary(ledger)
        assert ("loc-1", "ada", "sms", "none", "review-open", "RevocationSuspected") in found
        assert found[-1] == (
            "loc-1", "ada", "sms", "review-open", "review-confirmed", "RevocationConfirmed",
        )  # fmt: skip
        state = [x for x in found if x[5] == "RevocationConfirmed" and x[4] == "permanent"]
        assert len(state) == 1  # the confirmed revocation's own state change, before it
        assert found.index(state[0]) < len(found) - 1
