"""The ``dnd-ledger`` command line: the root group, ``init`` and ``demo``, and the one
place where every command group is added to it."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from dnd_ledger.cli import (
    audit,
    changes,
    contacts,
    delivery,
    dnd,
    ingest,
    keys,
    legacy,
    notary,
    pii,
    policy,
    projections,
    proof,
    queries,
    rules,
    support,
    web,
    witness,
)
from dnd_ledger.cli.common import Ctx, ledger_errors, pass_ctx
from dnd_ledger.runtime import tune_gc
from dnd_ledger.settings import Settings


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


@click.command()
@pass_ctx
@ledger_errors
def init(c: Ctx) -> None:
    """Create the store (idempotent).

    Example: dnd-ledger --db ./ledger.db init
    """
    c.create = True
    ledger = c.ledger
    click.echo(f"ledger ready at {ledger.db.display}")


@click.command()
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


COMMANDS: tuple[click.Command, ...] = (
    init,
    demo,
    contacts.contacts,
    dnd.dnd,
    support.support,
    ingest.inbound,
    ingest.ingest,
    queries.status,
    queries.can_send,
    queries.history,
    legacy.import_legacy,
    policy.policy,
    audit.audit,
    projections.projections,
    projections.stats,
    rules.confirmation,
    rules.review,
    changes.changes,
    pii.pii,
    notary.checkpoint,
    notary.notary,
    notary.verify,
    keys.keys,
    proof.proof,
    witness.witness,
    delivery.deliver,
    delivery.subscribers,
    delivery.publish,
    web.serve,
    web.web,
)
for command in COMMANDS:
    cli.add_command(command)


def main() -> None:
    """The ``dnd-ledger`` program (a process of its own: its collector is tuned)."""
    tune_gc()
    cli(prog_name="dnd-ledger")
