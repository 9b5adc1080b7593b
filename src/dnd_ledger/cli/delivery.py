"""CLI commands that send the change feed out: ``deliver``, ``subscribers status``."""

from __future__ import annotations

import signal
import sys
import time
from types import FrameType
from typing import Any

import click

from dnd_ledger.cli.common import Ctx, ledger_errors, pass_ctx
from dnd_ledger.cli.output import emit_json, table
from dnd_ledger.cli.web import CONFIG_HELP, _config
from dnd_ledger.delivery.lock import InstallationLock

config_option = click.option(
    "--config",
    "config_path",
    envvar="DND_LEDGER_CONFIG",
    type=click.Path(dir_okay=False),
    help=CONFIG_HELP,
)


def _stop_on_sigterm() -> None:
    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)


def hold_lock(lock: InstallationLock, follow: bool, interval: float, what: str) -> None:
    """Take the installation's lock; with ``follow``, wait for it as a standby."""
    told = False
    while not lock.try_acquire():
        if not follow:
            raise click.ClickException(f"another {what} holds the lock for this database")
        if not told:
            click.echo(f"waiting: another {what} holds the lock for this database", err=True)
            told = True
        time.sleep(interval)


@click.command("deliver")
@config_option
@click.option("--follow", is_flag=True, help="Keep delivering as changes commit.")
@click.option("--once", is_flag=True, help="One round: retry what is due, send what is new.")
@click.option(
    "--interval", type=click.FloatRange(0.01, 60), default=1.0, show_default=True,
    help="Seconds between rounds with --follow when there is nothing to send.",
)  # fmt: skip
@click.option(
    "--lease", type=click.FloatRange(1, 3600), default=15.0, show_default=True,
    help="SQLite: seconds a killed deliverer's lock lasts.",
)  # fmt: skip
@pass_ctx
@ledger_errors
def deliver(
    c: Ctx, config_path: str | None, follow: bool, once: bool, interval: float, lease: float
) -> None:
    """Send each change to the config's [[subscribers]] as a signed webhook.

    At-least-once, in order per contact; failures are retried with backoff.
    One deliverer runs per database (a lock decides; others wait with --follow).
    Without --follow it stops when nothing new is left and no retry is due.

    Example: dnd-ledger deliver --config ledger.toml --follow
    """
    from dnd_ledger.delivery.webhooks import Deliverer

    if follow and once:
        raise click.UsageError("give --follow or --once, not both")
    config = _config(config_path)
    if not config.subscribers:
        raise click.ClickException("no [[subscribers]] in the configuration: nothing to deliver")
    from dnd_ledger.web.config import subscriber_secret_problems

    if problems := subscriber_secret_problems(config):
        raise click.ClickException("refusing to sign with unusable secrets: " + "; ".join(problems))
    _stop_on_sigterm()
    ledger = c.ledger
    lock = InstallationLock(ledger, "deliver", lease=lease)
    try:
        hold_lock(lock, follow, interval, "deliverer")
        deliverer = Deliverer(ledger, config.subscribers)
        while True:
            lock.try_acquire()  # renews the lease; raises if it went to another process
            done = deliverer.run_once()
            if done.sent or done.failed or done.queued or done.given_up:
                click.echo(
                    f"sent {done.sent}, failed {done.failed}, queued {done.queued},"
                    f" given up {done.given_up}"
                )
                sys.stdout.flush()
            if once or (not follow and not done.sent and not done.queued):
                return
            if not done.sent and not done.queued:
                time.sleep(interval)
    finally:
        lock.release()


@click.group()
def subscribers() -> None:
    """The change feed's webhook subscribers."""


@subscribers.command("status")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
@pass_ctx
@ledger_errors
def subscribers_status(c: Ctx, config_path: str | None, as_json: bool) -> None:
    """Each subscriber's position in the feed, backlog, retries and failures.

    Example: dnd-ledger subscribers status --config ledger.toml --json
    """
    from dnd_ledger.delivery.webhooks import Deliverer

    config = _config(config_path)
    ledger = c.ledger
    deliverer = Deliverer(ledger, config.subscribers)
    deliverer.feed.current()
    rows: list[dict[str, Any]] = deliverer.status()
    if as_json:
        emit_json({"subscribers": rows})
        return
    headers = ("name", "position", "behind", "delivered", "pending", "given_up", "last_error")
    click.echo(table(headers, [[r[h] for h in headers] for r in rows]))


@click.command("publish")
@click.option(
    "--nats", "nats_url", required=True, help="The NATS server, e.g. nats://127.0.0.1:4222."
)
@click.option("--stream", default="DND_CHANGES", show_default=True, help="The JetStream stream.")
@click.option(
    "--subject-prefix", default="dnd.changes", show_default=True,
    help="Changes go to <prefix>.<location>.",
)  # fmt: skip
@click.option("--follow", is_flag=True, help="Keep publishing as changes commit.")
@click.option("--interval", type=click.FloatRange(0.01, 60), default=1.0, show_default=True)
@click.option(
    "--lease", type=click.FloatRange(1, 3600), default=15.0, show_default=True,
    help="SQLite: seconds a killed publisher's lock lasts.",
)  # fmt: skip
@pass_ctx
@ledger_errors
def publish(
    c: Ctx, nats_url: str, stream: str, subject_prefix: str, follow: bool, interval: float,
    lease: float,
) -> None:  # fmt: skip
    """Publish each change to NATS JetStream, once, in order.

    Each message has the header Nats-Msg-Id = the change id (JetStream drops a
    re-publish after a crash); the position advances after JetStream's ack.
    The stream is created on <prefix>.> if it does not exist.

    Example: dnd-ledger publish --nats nats://127.0.0.1:4222 --follow
    """
    import asyncio

    import nats.errors

    from dnd_ledger.delivery.nats_publish import Publisher, run

    _stop_on_sigterm()
    ledger = c.ledger
    lock = InstallationLock(ledger, f"publish:{stream}", lease=lease)
    try:
        hold_lock(lock, follow, interval, "publisher")
        publisher = Publisher(ledger, stream=stream, prefix=subject_prefix)

        def report(n: int) -> None:
            click.echo(f"published {n}")
            sys.stdout.flush()

        try:
            asyncio.run(
                run(publisher, nats_url, follow=follow, interval=interval, report=report,
                    renew=lock.try_acquire)
            )  # fmt: skip
        except (OSError, TimeoutError, nats.errors.Error) as e:
            raise click.ClickException(f"NATS at {nats_url}: {type(e).__name__}: {e}") from e
    finally:
        lock.release()
