"""The ``dnd-ledger`` command line: thin commands over :class:`DndLedger`."""

from __future__ import annotations

import csv
import functools
import io
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import psycopg
from eventsourcing.persistence import PersistenceError

from dnd_ledger import commands as cmd
from dnd_ledger.application import DndLedger
from dnd_ledger.cli_format import dumps, format_option, render_rows
from dnd_ledger.cli_output import (
    decision_text,
    emit_json,
    outcome_json,
    outcome_text,
    status_text,
    table,
)
from dnd_ledger.domain.errors import LedgerError, LedgerUnavailable
from dnd_ledger.domain.policy import PolicyError
from dnd_ledger.domain.text import NotText, decode_text
from dnd_ledger.domain.values import ALL_CHANNELS, Channel, Direction, Mode, Purpose
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


class LedgerGroup(click.Group):
    """Errors, usage errors included, are one ``Error: ...`` line on stderr."""

    def main(  # one signature instead of click's overloads
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if os.environ.get("NO_COLOR"):  # https://no-color.org: any value turns colour off
            extra.setdefault("color", False)
        run = functools.partial(
            super().main, args, prog_name, complete_var, standalone_mode=False, **extra
        )
        if not standalone_mode:
            return run()
        try:
            code: Any = run()
        except click.ClickException as e:
            click.echo(f"Error: {e.format_message()}", err=True)
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=LedgerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    envvar="DND_LEDGER_DB",
    help="Database: a path, sqlite:///path or postgresql://... [default: ./dnd-ledger.db]",
)
@click.option(
    "--policy",
    envvar="DND_LEDGER_POLICY",
    type=click.Path(dir_okay=False),
    help="Policy file (TOML or JSON).",
)
@click.version_option(package_name="dnd-ledger")
@click.pass_context
def cli(ctx: click.Context, db: str | None, policy: str | None) -> None:
    """dnd-ledger: the consent (Do-Not-Disturb) ledger.

    \b
    Example:
      dnd-ledger init
      dnd-ledger contacts add loc-1 c-42 --phone +14155550100 --email ada@example.com
      dnd-ledger can-send loc-1 c-42 --channel sms
    """
    ctx.obj = Ctx(Settings.from_env(db=db, policy=policy))
    ctx.call_on_close(ctx.obj.close)


@cli.command()
@pass_ctx
@ledger_errors
def init(c: Ctx) -> None:
    """Create the store (idempotent).

    Example: dnd-ledger --db ./ledger.db init
    """
    c.create = True
    ledger = c.ledger
    click.echo(f"ledger ready at {ledger.db.display}")


@cli.group()
def contacts() -> None:
    """Register contacts and their addresses."""


@contacts.command("add")
@click.argument("location")
@click.argument("contact_id")
@click.option("--phone", "phones", multiple=True, help="Phone number, E.164 (repeatable).")
@click.option("--email", "emails", multiple=True, help="Email address (repeatable).")
@click.option("--actor", help="Who registered it.")
@click.option("--request-id", help="Idempotency key for retries.")
@click.option("--region", help="Where the contact lives, for quiet hours (US, US-FL...).")
@click.option("--time-zone", help="The contact's IANA time zone (America/New_York...).")
@at_option
@json_option
@pass_ctx
@ledger_errors
def contacts_add(
    c: Ctx, location: str, contact_id: str, phones: tuple[str, ...], emails: tuple[str, ...],
    actor: str | None, request_id: str | None, region: str | None, time_zone: str | None,
    at: datetime | None, as_json: bool,
) -> None:  # fmt: skip
    """Register a contact (or add addresses to it).

    \b
    Examples:
      dnd-ledger contacts add loc-1 c-42 --phone +14155550100 --email ada@example.com
      dnd-ledger contacts add loc-1 c-41 --phone +14155550141 --at 2026-10-01T09:00:00Z
    """
    command = cmd.RegisterContact(location, contact_id, phones, emails, at, actor, request_id)
    if region is None and time_zone is None:
        _report(c.ledger.execute(command), as_json)
        return
    where = cmd.LocateContact(location, contact_id, region, time_zone, at, actor)
    for outcome in c.ledger.execute_many([command, where], raise_errors=True):
        _report(outcome, as_json)


def _report(outcome: cmd.Outcome, as_json: bool) -> None:
    if as_json:
        emit_json(outcome_json(outcome))
    else:
        click.echo(outcome_text(outcome))


@cli.group()
def dnd() -> None:
    """Set or clear DND from the contact record."""


@dnd.command("set")
@click.argument("location")
@click.argument("contact_id")
@channels_options
@click.option("--actor", required=True, help="The user making the change.")
@click.option("--reason", help="Why.")
@click.option("--request-id", help="Idempotency key for retries.")
@at_option
@json_option
@pass_ctx
@ledger_errors
def dnd_set(
    c: Ctx, location: str, contact_id: str, channels: tuple[str, ...], all_channels: bool,
    actor: str, reason: str | None, request_id: str | None, at: datetime | None, as_json: bool,
) -> None:  # fmt: skip
    """Set temporary DND on channels.

    Example: dnd-ledger dnd set loc-1 c-42 --channel sms --channel call --actor alice
    """
    chosen = pick_channels(channels, all_channels)
    command = cmd.SetDnd(location, contact_id, chosen, actor, reason, at, request_id)
    _report(c.ledger.execute(command), as_json)


@dnd.command("clear")
@click.argument("location")
@click.argument("contact_id")
@channels_options
@click.option("--actor", required=True, help="The user making the change.")
@click.option("--reason", help="Why.")
@click.option(
    "--suppression-removed",
    is_flag=True,
    help="Attest the email left the provider's suppression list and was re-validated.",
)
@click.option("--request-id", help="Idempotency key for retries.")
@at_option
@json_option
@pass_ctx
@ledger_errors
def dnd_clear(
    c: Ctx, location: str, contact_id: str, channels: tuple[str, ...], all_channels: bool,
    actor: str, reason: str | None, suppression_removed: bool, request_id: str | None,
    at: datetime | None, as_json: bool,
) -> None:  # fmt: skip
    """Clear temporary DND (permanent DND is refused).

    Example: dnd-ledger dnd clear loc-1 c-42 --channel email --actor alice --suppression-removed
    """
    chosen = pick_channels(channels, all_channels)
    command = cmd.ClearDnd(
        location, contact_id, chosen, actor, reason, suppression_removed, at, request_id
    )
    _report(c.ledger.execute(command), as_json)


@cli.group()
def support() -> None:
    """Support staff actions."""


@support.command("approve-opt-in")
@click.argument("location")
@click.argument("contact_id")
@channels_options
@click.option("--approver", required=True, help="The support user approving.")
@click.option("--ticket", required=True, help="Support ticket id.")
@click.option("--evidence", required=True, help="The contact's opt-in evidence.")
@click.option("--request-id", help="Idempotency key for retries.")
@at_option
@json_option
@pass_ctx
@ledger_errors
def approve_opt_in(
    c: Ctx, location: str, contact_id: str, channels: tuple[str, ...], all_channels: bool,
    approver: str, ticket: str, evidence: str, request_id: str | None, at: datetime | None,
    as_json: bool,
) -> None:  # fmt: skip
    """Lift DND (permanent too) with the contact's opt-in evidence.

    \b
    Example:
      dnd-ledger support approve-opt-in loc-1 c-42 --channel sms --approver sam \\
        --ticket SUP-981 --evidence "signed web form 2026-11-02, IP 203.0.113.9"
    """
    chosen = pick_channels(channels, all_channels)
    command = cmd.ApproveOptIn(
        location, contact_id, chosen, approver, ticket, evidence, at, request_id
    )
    _report(c.ledger.execute(command), as_json)


@cli.command()
@click.argument("location")
@click.option("--channel", type=click.Choice(["sms", "whatsapp"]), required=True)
@click.option("--from", "from_address", required=True, help="Sender phone number (E.164).")
@click.option("--body", required=True, help="Message text.")
@click.option("--message-sid", required=True, help="Provider message id (idempotency key).")
@at_option
@json_option
@pass_ctx
@ledger_errors
def inbound(
    c: Ctx, location: str, channel: str, from_address: str, body: str, message_sid: str,
    at: datetime | None, as_json: bool,
) -> None:  # fmt: skip
    """Record an inbound message from an address (keywords are processed).

    Example: dnd-ledger inbound loc-1 --channel sms --from +14155550100 --body STOP --message-sid SM1
    """
    command = cmd.ReceiveInbound(location, Channel(channel), from_address, body, message_sid, at)
    _report(c.ledger.execute(command), as_json)


@cli.command()
@click.argument("location")
@click.argument("contact_id")
@click.option("--as-of", type=TIME, help="Effective time (default: now).")
@click.option("--known-at", type=TIME, help="Knowledge time (default: now).")
@format_option
@pass_ctx
@ledger_errors
def status(
    c: Ctx, location: str, contact_id: str, as_of: datetime | None, known_at: datetime | None,
    fmt: str,
) -> None:  # fmt: skip
    """Per-channel DND state of a contact.

    Example: dnd-ledger status loc-1 c-41 --as-of 2026-11-01T00:00:00Z
    """
    view = c.ledger.status(location, contact_id, as_of=as_of, known_at=known_at)
    if fmt == "table":
        click.echo(status_text(view))
    elif fmt == "csv":
        data = view.to_json()
        rows = [{"channel": ch, **s} for ch, s in data["channels"].items()]
        click.echo(render_rows(rows, fmt, ["channel", "status", "since", "code", "message"]))
    else:
        click.echo(dumps(view.to_json()))


@cli.command("can-send")
@click.argument("location")
@click.argument("contact_id")
@click.option("--channel", type=CHANNEL, required=True)
@click.option("--manual", "mode", flag_value="manual", help="A message a person sends.")
@click.option("--automated", "mode", flag_value="automated", default=True, help="[default]")
@click.option("--inbound", is_flag=True, help="Ask about an inbound message or call instead.")
@click.option("--as-of", type=TIME, help="Effective time (default: now).")
@click.option("--known-at", type=TIME, help="Knowledge time (default: now).")
@click.option("--purpose", type=click.Choice([p.value for p in Purpose]), help="Why it goes out.")
@click.option("--at", "at", type=TIME, help="When it would go out (default: now).")
@click.option("--exit-code", is_flag=True, help="Exit 1 when not allowed.")
@format_option
@pass_ctx
@ledger_errors
def can_send(
    c: Ctx, location: str, contact_id: str, channel: str, mode: str, inbound: bool,
    as_of: datetime | None, known_at: datetime | None, purpose: str | None, at: datetime | None,
    exit_code: bool, fmt: str,
) -> None:  # fmt: skip
    """May we message this contact on this channel now, and why (not)?

    Example: dnd-ledger can-send loc-1 c-42 --channel sms --manual --exit-code
    """
    decision = c.ledger.rules.can_send(
        location, contact_id, Channel(channel), purpose=Purpose(purpose) if purpose else None,
        at=at, direction=Direction.INBOUND if inbound else Direction.OUTBOUND,
        mode=Mode(mode), as_of=as_of, known_at=known_at,
    )  # fmt: skip
    if fmt == "table":
        click.echo(decision_text(decision))
    elif fmt == "csv":
        data = decision.to_json()
        click.echo(render_rows([data], fmt, list(data)))
    else:
        click.echo(dumps(decision.to_json()))
    if exit_code and not decision.allowed:
        sys.exit(1)


@cli.command()
@click.argument("location")
@click.argument("contact_id")
@format_option
@pass_ctx
@ledger_errors
def history(c: Ctx, location: str, contact_id: str, fmt: str) -> None:
    """The contact's events in recording order.

    Example: dnd-ledger history loc-1 c-42 --json
    """
    items = c.ledger.history(location, contact_id)
    if fmt != "table":
        data = [i.to_json() for i in items]
        click.echo(render_rows(data, fmt, list(data[0]) if data else []))
        return
    rows = [
        (i.version, i.event, i.occurred_at, i.recorded_at, i.source, i.actor,
         ",".join(i.effect.get("channels", [])) or "-", _effect_word(i.effect))
        for i in items
    ]  # fmt: skip
    click.echo(
        table(["#", "event", "occurred", "recorded", "source", "actor", "channels", "effect"], rows)
    )


def _effect_word(effect: dict[str, Any]) -> str:
    op = effect.get("op")
    if op == "block":
        return "permanent DND" if effect.get("level") == "permanent" else "temporary DND"
    return {
        "clear-temporary": "clear temporary",
        "opt-in": "opt-in (clears)",
        "clear-all": "clear all",
        "clear-review": "clear review",
    }.get(str(op), "-")


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@cli.command("import-legacy")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@json_option
@pass_ctx
@ledger_errors
def import_legacy(c: Ctx, file: str, as_json: bool) -> None:
    """Import the legacy single-flag DND list (idempotent).

    CSV columns: location_id,contact_id,phone,email,dnd (dnd: true/false, 1/0,
    yes/no, on/off). Several phones or emails in one cell are separated by ';'.

    Example: dnd-ledger import-legacy legacy-contacts.csv
    """
    rows = list(_read_legacy(file))
    summary: dict[str, Any] = {"appended": 0, "duplicates": 0, "rejected": 0, "errors": []}
    batch: list[tuple[int, cmd.ImportLegacy]] = []

    def flush() -> None:
        outcomes = c.ledger.execute_many([b for _, b in batch])
        for (line, _), o in zip(batch, outcomes, strict=True):
            _tally(summary, line, o)
        batch.clear()

    show = sys.stderr.isatty() and not as_json
    out: Any = sys.stderr if show else _Null()
    with click.progressbar(rows, label="importing", file=out) as bar:
        for line, row in bar:
            if isinstance(row, str):
                summary["rejected"] += 1
                summary["errors"].append({"line": line, "error": row})
                continue
            batch.append((line, row))
            if len(batch) >= 500:
                flush()
        if batch:
            flush()
    if as_json:
        emit_json(summary)
    else:
        click.echo(
            f"imported: {summary['appended']} appended, {summary['duplicates']} duplicates, "
            f"{summary['rejected']} rejected"
        )
        for err in summary["errors"]:
            click.echo(f"  line {err['line']}: {err['error']}")
    if summary["rejected"]:
        sys.exit(1)  # like ingest: the good rows are in, the bad ones need attention


class _Null:
    def write(self, _: str) -> int:
        return 0

    def flush(self) -> None:
        pass


def _tally(summary: dict[str, Any], line: int, o: cmd.Outcome) -> None:
    if o.result == "appended":
        summary["appended"] += 1
    elif o.result == "duplicate":
        summary["duplicates"] += 1
    else:
        summary["rejected"] += 1
        summary["errors"].append({"line": line, "error": o.detail.get("error", o.result)})


def _read_legacy(file: str) -> Iterator[tuple[int, cmd.ImportLegacy | str]]:
    raw = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    try:
        text = decode_text(raw, "standard input" if file == "-" else file)
    except NotText as e:
        raise click.ClickException(str(e)) from None
    with io.StringIO(text, newline="") as f:
        reader = csv.DictReader(f)
        need = {"location_id", "contact_id", "phone", "email", "dnd"}
        missing = need - set(reader.fieldnames or ())
        if missing:
            raise click.ClickException(f"CSV is missing columns: {', '.join(sorted(missing))}")
        for row in reader:
            line = reader.line_num
            flag = (row.get("dnd") or "").strip().lower()
            if flag not in _TRUE and flag not in _FALSE:
                yield line, f"dnd value {row.get('dnd')!r} is not true/false, 1/0, yes/no or on/off"
                continue
            yield (
                line,
                cmd.ImportLegacy(
                    location_id=(row.get("location_id") or "").strip(),
                    contact_id=(row.get("contact_id") or "").strip(),
                    dnd=flag in _TRUE,
                    phones=_split(row.get("phone")),
                    emails=_split(row.get("email")),
                ),
            )


def _split(cell: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (cell or "").split(";") if p.strip())


@cli.group()
def policy() -> None:
    """The DND policy in force."""


@policy.command("show")
@click.option("--format", "fmt", type=click.Choice(["json", "summary"]), default="json")
@click.pass_obj
@ledger_errors
def policy_show(c: Ctx, fmt: str) -> None:
    """Print the effective policy (built-in defaults, or the --policy file).

    Example: dnd-ledger --policy policy.toml policy show
    """
    p = c.settings.load_policy()
    if fmt == "json":
        emit_json({"stamp": p.stamp, "digest": p.digest, **p.model_dump(mode="json")})
        return
    click.echo(f"policy {p.stamp}")
    click.echo(f"opt-out keywords: {', '.join(p.opt_out_keywords)}")
    click.echo(f"opt-in keywords:  {', '.join(p.opt_in_keywords)}")
    rows = [(code, r.effect, r.channel or "message's channel", r.description)
            for code, r in sorted(p.carrier_codes.items())]  # fmt: skip
    click.echo(table(["carrier code", "effect", "channel", "meaning"], rows))
    reasons = [(reason, r.effect, "yes" if r.requires_suppression_removal else "no")
            for reason, r in sorted(p.email_failed_permanent.items())]  # fmt: skip
    click.echo(table(["mailgun permanent failure", "effect", "needs suppression removal"], reasons))
    words = p.opt_out_keywords if p.review.words is None else p.review.words
    review = f"{p.review.effect}: {', '.join(words)}" if p.review.enabled else "off"
    click.echo(f"review (longer messages containing): {review}")
    scope = [(r.name, r.effective_from.isoformat(), ", ".join(r.opt_out_on), ", ".join(r.blocks))
             for r in p.revocation_scope]  # fmt: skip
    click.echo(table(["revocation scope rule", "opt-outs from", "opt-out on", "blocks"], scope))
    quiet = [(r.name, f"{r.start:%H:%M}-{r.end:%H:%M}", ", ".join(r.channels), ", ".join(r.purposes))
             for r in p.quiet_hours]  # fmt: skip
    click.echo(table(["quiet hours", "local time", "channels", "purposes"], quiet))
    dl = p.review.deadline
    click.echo(
        f"review deadline: {dl.business_days} business days ({dl.holiday_calendar} holidays)"
    )
    cf = p.confirmation
    click.echo(f"opt-out confirmation: one text within {cf.window_seconds} s on "
               f"{', '.join(cf.channels)}")  # fmt: skip


@cli.command()
@click.option("--db", "demo_db", default="./dnd-ledger-demo.db", show_default=True,
              help="Where to write the demo ledger (recreated each run).")  # fmt: skip
@click.pass_obj
@ledger_errors
def demo(c: Ctx, demo_db: str) -> None:
    """Run a realistic scenario end to end on a fresh embedded store.

    Example: dnd-ledger demo
    """
    from dnd_ledger.demo import run_demo

    run_demo(Path(demo_db), c.settings.policy)


class DefaultGroup(click.Group):
    """A group that runs its default command when the first word names no subcommand."""

    default_command = "trail"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_options(ctx, formatter)
        default = self.commands[self.default_command]
        rows = [r for p in default.get_params(ctx) if isinstance(p, click.Option)
                and "--help" not in p.opts and (r := p.get_help_record(ctx))]  # fmt: skip
        with formatter.section(f"Options of `{ctx.command_path} {self.default_command}`"):
            formatter.write_dl(rows)


@cli.group(cls=DefaultGroup)
def audit() -> None:
    """The compliance audit trail (and, with subcommands, its export).

    \b
    Examples:
      dnd-ledger audit loc-1 c-42 --format csv
      dnd-ledger audit loc-1 --since 2026-11-01T00:00:00Z --format jsonl
    """


def main() -> None:
    cli(prog_name="dnd-ledger")


# Command groups defined in their own modules register themselves on import.
import dnd_ledger.cli_notary  # noqa: E402, F401
from dnd_ledger import (  # noqa: E402, F401
    cli_changes,
    cli_contacts,
    cli_delivery,
    cli_ingest,
    cli_pii,
    cli_rules,
    cli_views,
    cli_web,
)
