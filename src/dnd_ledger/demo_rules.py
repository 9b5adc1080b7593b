"""The demo's second part: revoke-all and the one confirmation text.

The revoke-all rule (47 CFR 64.1200(a)(10)) takes effect on 2027-01-31; so that
the demo can show it today, this part runs under the configured policy with
that date moved to before the story. It uses its own location, so the first
part's location keeps its one contact.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import click

from dnd_ledger import commands as cmd
from dnd_ledger.cli.output import decision_text, outcome_text
from dnd_ledger.domain.errors import LedgerError
from dnd_ledger.domain.policy import Policy
from dnd_ledger.domain.scope import REVOKE_ALL
from dnd_ledger.domain.values import Channel, Purpose
from dnd_ledger.settings import Settings

LOC = "loc-demo-2027"
BEN = "contact-ben"
PHONE = "+14155550122"


def moved_policy(base: Policy, start: datetime) -> Policy:
    rule = {**REVOKE_ALL.model_dump(mode="json"), "effective_from": start.date().isoformat()}
    data = {**base.model_dump(mode="json"), "version": f"{base.version}-revoke-all-now"}
    return Policy.model_validate({**data, "revocation_scope": [rule]})


def run_rules_demo(settings: Settings, t0: datetime) -> None:
    base = settings.load_policy()
    policy = moved_policy(base, t0 - timedelta(days=1))
    ledger = settings.open(create=False, policy=policy)
    stop_at = t0 + timedelta(hours=40)

    def say(title: str) -> None:
        click.secho(f"\n== {title}", bold=True)

    def run(command: cmd.Command, cli: str) -> None:
        click.echo(f"   $ dnd-ledger {cli}")
        try:
            click.echo("   " + outcome_text(ledger.execute(command)))
        except LedgerError as e:
            click.secho(f"   refused: {e}", fg="red")

    def ask(channel: Channel, cli: str, when: datetime, purpose: Purpose | None = None) -> None:
        click.echo(f"   $ dnd-ledger can-send {LOC} {BEN} --channel {channel.value} {cli}".rstrip())
        d = ledger.rules.can_send(LOC, BEN, channel, purpose=purpose, at=when)
        click.echo("   " + decision_text(d))

    at: Callable[[float], datetime] = lambda minutes: stop_at + timedelta(minutes=minutes)  # noqa: E731
    say(f"Revoke-all (47 CFR 64.1200(a)(10)): from {REVOKE_ALL.effective_from} a STOP by text "
        "blocks calls too")  # fmt: skip
    click.echo(f"   (this part runs under policy {policy.stamp}: the rule's date moved to "
               f"{policy.revocation_scope[0].effective_from} so it is in force now)")  # fmt: skip
    run(cmd.RegisterContact(LOC, BEN, (PHONE,), (), at(-60), actor="alice"),
        f"contacts add {LOC} {BEN} --phone {PHONE}")  # fmt: skip
    run(cmd.ReceiveInbound(LOC, Channel.SMS, PHONE, "QUIT", "SM-demo-10", at(0)),
        f"inbound {LOC} --channel sms --from {PHONE} --body QUIT --message-sid SM-demo-10")  # fmt: skip
    ask(Channel.SMS, "", at(1))
    ask(Channel.CALL, "", at(1))
    say("The one confirmation text, within 5 minutes of the opt-out (FCC 24-24)")
    ask(Channel.SMS, f"--purpose opt-out-confirmation --at {at(2).isoformat()}", at(2),
        Purpose.OPT_OUT_CONFIRMATION)  # fmt: skip
    record = f"confirmation record {LOC} --channel sms --to {PHONE} --message-sid"
    run(cmd.RecordConfirmation(LOC, Channel.SMS, PHONE, "SM-demo-11", at(2)),
        f"{record} SM-demo-11 --at {at(2).isoformat()}")  # fmt: skip
    run(cmd.RecordConfirmation(LOC, Channel.SMS, PHONE, "SM-demo-12", at(3)),
        f"{record} SM-demo-12 --at {at(3).isoformat()}")  # fmt: skip
    ask(Channel.SMS, f"--purpose opt-out-confirmation --at {at(3).isoformat()}", at(3),
        Purpose.OPT_OUT_CONFIRMATION)  # fmt: skip
    ledger.close()
