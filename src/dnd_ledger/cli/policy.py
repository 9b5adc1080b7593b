"""``dnd-ledger policy show``: the DND policy in force."""

from __future__ import annotations

import click

from dnd_ledger.cli.common import Ctx, ledger_errors
from dnd_ledger.cli.output import emit_json, table


@click.group()
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
