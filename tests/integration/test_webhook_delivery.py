"""Signed webhooks to subscribers, on every backend, against a real HTTP receiver on
127.0.0.1: one signed webhook per change, order per contact, retries with backoff
while other contacts flow, positions and failures kept in the database."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.integration.receiver import receiver

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.cli.main import cli
from dnd_ledger.delivery.subscriber import Subscriber, verify
from dnd_ledger.delivery.webhooks import Deliverer
from dnd_ledger.domain.values import Channel
from dnd_ledger.settings import ConfigError, load_config

SECRET = "whsec-7Yq2Lp9Vx4Rt8Kz3"
PHONE = "+14155550100"
SMS, EMAIL, CALL = Channel.SMS, Channel.EMAIL, Channel.CALL


class FakeTime:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _sub(url: str, **extra: object) -> Subscriber:
    return Subscriber.model_validate({"name": "crm", "url": url, "secret": SECRET, **extra})


class TestDelivery:
    def test_a_stop_reaches_a_subscriber_as_one_signed_webhook(self, ledger: DndLedger) -> None:
        ledger.execute(c.RegisterContact("loc-1", "ada", (PHONE,)))
        ledger.execute(c.ReceiveInbound("loc-1", SMS, PHONE, "STOP", "SM1"))
        with receiver() as rx:
            deliverer = Deliverer(ledger, [_sub(rx.url)])
            assert deliverer.run_once().sent == 1
            assert deliverer.run_once().sent == 0  # nothing twice
        assert len(rx.received) == 1
        got = rx.received[0]
        assert verify(SECRET, got.signature, got.body, now=int(time.time()))
        assert not verify(SECRET + "x", got.signature, got.body, now=int(time.time()))
        assert not verify(SECRET, got.signature, got.body + b" ", now=int(time.time()))
        change = got.change
        assert (change["contact_id"], change["channel"], change["before"], change["after"]) == (
            "ada", "sms", "inactive", "permanent",
        )  # fmt: skip
        assert change["cause_event"] == "OptOutKeyword"
        assert got.delivery == str(change["id"])

    def test_only_the_locations_and_channels_subscribed(self, ledger: DndLedger) -> None:
        ledger.execute(c.RegisterContact("loc-1", "ada", (PHONE,)))
        ledger.execute(c.RegisterContact("loc-2", "bob", ("+14155550101",)))
        ledger.execute(c.SetDnd("loc-1", "ada", (SMS, EMAIL, CALL), "alice"))
        ledger.execute(c.SetDnd("loc-2", "bob", (SMS,), "alice"))
        with receiver() as rx:
            sub = _sub(rx.url, locations=["loc-1"], channels=["sms", "call"])
            Deliverer(ledger, [sub]).run_once()
        assert [(r.change["location_id"], r.change["channel"]) for r in rx.received] == [
            ("loc-1", "sms"),
            ("loc-1", "call"),
        ]

    def test_a_failing_subscriber_gets_every_change_in_order_once_it_recovers(
        self, ledger: DndLedger
    ) -> None:
        ledger.execute(c.RegisterContact("loc-1", "ada", (PHONE,)))
        clock = FakeTime()
        with receiver() as rx:
            rx.fail = lambda change: True
            deliverer = Deliverer(ledger, [_sub(rx.url, retry_seconds=10)], clock=clock)
            expected = []
            for i in range(6):
                command = c.SetDnd if i % 2 == 0 else c.ClearDnd
                ledger.execute(command("loc-1", "ada", (SMS,), "alice"))
                expected.append("active" if i % 2 == 0 else "inactive")
                clock.now += 3
                deliverer.run_once()
            status = deliverer.status()[0]
            assert status["pending"] == 6
            assert status["last_error"] == "HTTP 500"
            assert rx.received == []
            attempts = rx.attempts
            deliverer.run_once()  # nothing due yet: the backoff holds
            assert rx.attempts == attempts
            rx.fail = lambda change: False
            clock.now += 20  # past the first retry's delay
            deliverer.run_once()
        assert [r.change["after"] for r in rx.received] == expected
        ids = [int(r.delivery) for r in rx.received]
        assert ids == sorted(ids)
        assert len(set(ids)) == len(ids)
        status = deliverer.status()[0]
        assert (status["pending"], status["delivered"], status["given_up"]) == (0, 6, 0)

    def test_other_contacts_keep_flowing_while_one_is_retried(self, ledger: DndLedger) -> None:
        ledger.execute(c.RegisterContact("loc-1", "ada", (PHONE,)))
        ledger.execute(c.RegisterContact("loc-1", "bob", ("+14155550101",)))
        clock = FakeTime()
        with receiver() as rx:
            rx.fail = lambda change: change["contact_id"] == "ada"
            deliverer = Deliverer(ledger, [_sub(rx.url)], clock=clock)
            ledger.execute(c.SetDnd("loc-1", "ada", (SMS,), "alice"))
            ledger.execute(c.SetDnd("loc-1", "bob", (SMS,), "alice"))
            ledger.execute(c.ClearDnd("loc-1", "ada", (SMS,), "alice"))
            ledger.execute(c.SetDnd("loc-1", "bob", (CALL,), "alice"))
            deliverer.run_once()
            assert [(r.change["contact_id"], r.change["channel"]) for r in rx.received] == [
                ("bob", "sms"),
                ("bob", "call"),
            ]
            rx.fail = lambda change: False
            clock.now += 2
            deliverer.run_once()
        assert [(r.change["contact_id"], r.change["after"]) for r in rx.received[2:]] == [
            ("ada", "active"),
            ("ada", "inactive"),
        ]

    def test_backoff_doubles_then_gives_up_after_the_configured_time(
        self, ledger: DndLedger
    ) -> None:
        ledger.execute(c.RegisterContact("loc-1", "ada", (PHONE,)))
        ledger.execute(c.SetDnd("loc-1", "ada", (SMS,), "alice"))
        clock = FakeTime()
        start = clock.now
        with receiver() as rx:
            rx.fail = lambda change: change["channel"] == "sms"
            sub = _sub(rx.url, retry_seconds=60, give_up_hours=1)
            deliverer = Deliverer(ledger, [sub], clock=clock)
            tried_at = []
            while clock.now - start < 2 * 3600:
                before = rx.attempts
                deliverer.run_once()
                if rx.attempts > before:
                    tried_at.append(clock.now - start)
                clock.now += 30
            ledger.execute(c.SetDnd("loc-1", "ada", (EMAIL,), "alice"))  # flows again
            deliverer.run_once()
        gaps = [b - a for a, b in itertools.pairwise(tried_at)]
        assert gaps[:4] == [60, 120, 240, 480]
        status = deliverer.status()[0]
        assert (status["pending"], status["given_up"]) == (0, 1)
        assert [r.change["channel"] for r in rx.received] == ["email"]

    def test_positions_and_retries_survive_a_restart(self, ledger: DndLedger) -> None:
        ledger.execute(c.RegisterContact("loc-1", "ada", (PHONE,)))
        ledger.execute(c.SetDnd("loc-1", "ada", (SMS,), "alice"))
        with receiver() as rx:
            rx.fail = lambda change: True
            clock = FakeTime()
            Deliverer(ledger, [_sub(rx.url)], clock=clock).run_once()
            ledger.execute(c.SetDnd("loc-1", "ada", (CALL,), "alice"))
            rx.fail = lambda change: False
            clock.now += 5
            again = Deliverer(ledger, [_sub(rx.url)], clock=clock)  # as after a restart
            again.run_once()
            again.run_once()
        assert [r.change["channel"] for r in rx.received] == ["sms", "call"]


def test_subscriber_config_is_validated() -> None:
    with pytest.raises(ValueError, match="http"):
        Subscriber.model_validate({"name": "x", "url": "ftp://h/", "secret": SECRET})
    with pytest.raises(ValueError, match="16"):
        Subscriber.model_validate({"name": "x", "url": "http://h/", "secret": "short"})
    sub = _sub("http://h/", retry_seconds=2, max_retry_seconds=10)
    assert [sub.retry_delay(n) for n in (1, 2, 3, 4, 5)] == [2, 4, 8, 10, 10]
    assert _sub("http://h/").give_up_hours == 24


def test_cli_deliver_and_subscribers_status(tmp_path: Path) -> None:
    db = str(tmp_path / "ledger.db")

    def run(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(cli, ["--db", db, *args])
        assert result.exit_code == code, result.output
        return result.output

    run("init")
    run("contacts", "add", "loc-1", "ada", "--phone", PHONE)
    run("dnd", "set", "loc-1", "ada", "--channel", "sms", "--channel", "call", "--actor", "a")
    with receiver() as rx:
        config = tmp_path / "ledger.toml"
        config.write_text(
            f'[[subscribers]]\nname = "crm"\nurl = "{rx.url}"\nsecret = "{SECRET}"\n'
            'channels = ["sms"]\n'
        )
        assert "sent 1," in run("deliver", "--config", str(config), "--once")
        status = json.loads(run("subscribers", "status", "--config", str(config), "--json"))
        assert [
            (s["name"], s["delivered"], s["behind"], s["pending"]) for s in status["subscribers"]
        ] == [("crm", 1, 0, 0)]
        assert "crm" in run("subscribers", "status", "--config", str(config))
    assert [r.change["channel"] for r in rx.received] == ["sms"]
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert "no [[subscribers]]" in run("deliver", "--config", str(empty), code=1)
    placeholder = tmp_path / "placeholder.toml"
    placeholder.write_text(
        '[[subscribers]]\nname = "crm"\nurl = "http://127.0.0.1:9/"\n'
        'secret = "<32 random characters>"\n'
    )
    refused = run("deliver", "--config", str(placeholder), "--once", code=1)
    assert "subscribers 'crm': secret is a placeholder" in refused


def test_subscriber_names_must_be_unique_in_the_config(tmp_path: Path) -> None:
    entry = f'[[subscribers]]\nname = "crm"\nurl = "http://h/"\nsecret = "{SECRET}"\n'
    config = tmp_path / "ledger.toml"
    config.write_text(entry + entry)
    with pytest.raises(ConfigError, match="unique"):
        load_config(config)
    config.write_text(entry)
    assert [s.name for s in load_config(config).subscribers] == ["crm"]
