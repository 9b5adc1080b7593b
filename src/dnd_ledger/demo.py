"""`dnd-ledger demo`: one contact's consent story, end to end, on a fresh SQLite file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from dnd_ledger import commands as cmd
from dnd_ledger.cli.output import decision_text, outcome_text, status_text
from dnd_ledger.demo_rules import run_rules_demo
from dnd_ledger.domain.errors import LedgerError
from dnd_ledger.domain.values import Channel, EmailSignal, Mode
from dnd_ledger.settings import Settings

LOC = "loc-demo"
ADA = "contact-ada"
PHONE = "+14155550100"
EMAIL = "ada@example.com"


def run_demo(path: Path, policy: str | None) -> None:
    for stale in (path, Path(f"{path}.pii-key")):
        stale.unlink(missing_ok=True)
    settings = Settings(db=str(path), policy=policy)
    ledger = settings.open()
    t0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)

    def at(hours: float) -> datetime:
        return t0 + timedelta(hours=hours)

    def step(title: str, command: cmd.Command, cli: str) -> None:
        click.secho(f"\n== {title}", bold=True)
        # Provider events arrive as webhooks (or `dnd-ledger ingest`), not as commands.
        click.echo(f"   webhook: {cli[1:-1]}" if cli.startswith("(") else f"   $ dnd-ledger {cli}")
        try:
            click.echo("   " + outcome_text(ledger.execute(command)))
        except LedgerError as e:
            click.secho(f"   refused: {e}", fg="red")

    def show(when: datetime | None = None) -> None:
        view = ledger.status(LOC, ADA, as_of=when)
        click.echo("\n".join("   " + line for line in status_text(view).splitlines()))

    click.secho(f"dnd-ledger demo: ledger at {path}", bold=True)
    step("Ada is registered with a phone and an email address",
         cmd.RegisterContact(LOC, ADA, (PHONE,), (EMAIL,), at(0), actor="alice"),
         f"contacts add {LOC} {ADA} --phone {PHONE} --email {EMAIL}")  # fmt: skip
    step("Ada replies STOP to a text: permanent DND on SMS",
         cmd.ReceiveInbound(LOC, Channel.SMS, PHONE, "Stop!", "SM-demo-1", at(1)),
         f"inbound {LOC} --channel sms --from {PHONE} --body 'Stop!' --message-sid SM-demo-1")  # fmt: skip
    click.echo("   " + decision_text(ledger.can_send(LOC, ADA, Channel.SMS, mode=Mode.MANUAL)))
    step("An agent tries to clear it from the contact record: refused",
         cmd.ClearDnd(LOC, ADA, (Channel.SMS,), "alice", occurred_at=at(2)),
         f"dnd clear {LOC} {ADA} --channel sms --actor alice")  # fmt: skip
    step("Ada texts START from the same number: SMS is open again",
         cmd.ReceiveInbound(LOC, Channel.SMS, PHONE, "START", "SM-demo-2", at(5)),
         f"inbound {LOC} --channel sms --from {PHONE} --body START --message-sid SM-demo-2")  # fmt: skip
    step("The carrier reports 30003 (unreachable handset): temporary DND on SMS",
         cmd.ReportCarrierStatus(LOC, Channel.SMS, PHONE, "SM-demo-3", "undelivered", 30003, at(9)),
         "(Twilio status callback ErrorCode=30003)")  # fmt: skip
    step("Mailgun reports a spam complaint: permanent DND on email",
         cmd.ReportEmailEvent(LOC, EMAIL, EmailSignal.COMPLAINED, "mg-token-demo-1", None, "evt-1", at(20)),
         "(Mailgun webhook event=complained)")  # fmt: skip
    step("The webhook is delivered again: a duplicate, nothing appended",
         cmd.ReportEmailEvent(LOC, EMAIL, EmailSignal.COMPLAINED, "mg-token-demo-1", None, "evt-1", at(20)),
         "(the same Mailgun delivery, retried)")  # fmt: skip
    step("A late 30004 arrives, out of order: it happened before the 30003",
         cmd.ReportCarrierStatus(LOC, Channel.SMS, PHONE, "SM-demo-0", "undelivered", 30004, at(7)),
         "(Twilio status callback ErrorCode=30004, RawDlrDoneDate 2 hours before the 30003)")  # fmt: skip

    click.secho("\n== Ada now", bold=True)
    show()
    click.secho(f"\n== Ada as of {at(3).isoformat()} (after STOP, before START)", bold=True)
    show(at(3))
    click.secho(f"\n== Ada as of {at(6).isoformat()} (after START)", bold=True)
    show(at(6))
    click.secho("\n== History", bold=True)
    for h in ledger.history(LOC, ADA):
        click.echo(
            f"   #{h.version:<2} {h.occurred_at.isoformat(timespec='seconds')}  {h.event:<22} {h.source:<8} {h.actor or '-'}"
        )
    run_rules_demo(settings, t0)
    click.echo(
        f"\nTry it yourself: dnd-ledger --db {path} status {LOC} {ADA} --as-of {at(3).isoformat()}"
    )
    ledger.close()
