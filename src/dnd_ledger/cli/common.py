"""What every command module shares: time and channel options, the ledger context,
library errors as one line. A leaf: it imports no other command module."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import click
import psycopg
from eventsourcing.persistence import PersistenceError

from dnd_ledger import commands as cmd
from dnd_ledger.application import DndLedger
from dnd_ledger.cli.output import emit_json, outcome_json, outcome_text
from dnd_ledger.domain.errors import LedgerError, LedgerUnavailable
from dnd_ledger.domain.policy import PolicyError
from dnd_ledger.domain.values import ALL_CHANNELS, Channel
from dnd_ledger.files import loose_files
from dnd_ledger.opening import ledger_files, require_ledger
from dnd_ledger.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])
CHANNEL = click.Choice([c.value for c in ALL_CHANNELS])


class IsoTime(click.ParamType):  # type: ignore[type-arg]  # generic only in click stubs' newer releases
    """ISO 8601 with a time zone (``Z`` accepted); a time without a zone is refused."""

    name = "time"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            t = datetime.fromisoformat(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time (e.g. 2026-11-28T09:30:00Z)", param, ctx)
        if t.tzinfo is None or t.utcoffset() is None:
            self.fail(f"{value!r} has no time zone: add Z or an offset such as +01:00", param, ctx)
        return t


TIME = IsoTime()


class Unavailable(click.ClickException):
    """The ledger cannot show its views are current: exit status 3, no decision."""

    exit_code = 3


def ledger_errors(f: F) -> F:
    """Library refusals become one ``Error: ...`` line and exit status 1 (3 when the
    ledger is unavailable: no decision could be made)."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except LedgerUnavailable as e:
            raise Unavailable(str(e)) from e
        except (LedgerError, PolicyError) as e:
            raise click.ClickException(str(e)) from e

    return wrapper  # type: ignore[return-value]


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")(f)


def at_option(f: F) -> F:
    return click.option("--at", "at", type=TIME, help="When it happened (default: now).")(f)


def channels_options(f: F) -> F:
    f = click.option("--all", "all_channels", is_flag=True, help="All six channels.")(f)
    return click.option(
        "--channel", "channels", type=CHANNEL, multiple=True, help="A channel (repeatable)."
    )(f)


def pick_channels(channels: tuple[str, ...], all_channels: bool) -> tuple[Channel, ...]:
    if all_channels and channels:
        raise click.UsageError("give --channel or --all, not both")
    if all_channels:
        return ALL_CHANNELS
    if not channels:
        raise click.UsageError("name at least one --channel, or use --all")
    return tuple(Channel(c) for c in channels)


class Ctx:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._ledger: DndLedger | None = None
        self.create = False  # only ``init`` creates a ledger (see opening.py)

    @property
    def ledger(self) -> DndLedger:
        if self._ledger is None:
            database = self.settings.database
            require_ledger(self.settings, database, create=self.create)
            try:
                self._ledger = self.settings.open(create=self.create)
            except (OSError, sqlite3.Error, PersistenceError, psycopg.Error) as e:
                where = database.display
                raise click.ClickException(f"cannot open the ledger at {where}: {e}") from e
            for warning in loose_files(ledger_files(self.settings, database)):
                click.echo(f"Warning: {warning}", err=True)
        return self._ledger

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()


pass_ctx = click.make_pass_decorator(Ctx)


def recording(f: F) -> F:
    """What every command that records something ends with: ``--at``, ``--json``, the
    ledger context, and the library's refusals as one error line."""
    return at_option(json_option(pass_ctx(ledger_errors(f))))  # type: ignore[return-value]


def report(outcome: cmd.Outcome, as_json: bool) -> None:
    if as_json:
        emit_json(outcome_json(outcome))
    else:
        click.echo(outcome_text(outcome))
