"""``dnd-ledger contacts ...``: register contacts and their addresses, list, show and find them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from dnd_ledger import commands as cmd
from dnd_ledger.cli.common import (
    Ctx,
    ledger_errors,
    pass_ctx,
    recording,
    report,
)
from dnd_ledger.cli.format import dumps, format_option, render_rows
from dnd_ledger.projections import contact_views as views

CHANNEL_NAMES = views.CHANNEL_NAMES


@click.group()
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
@recording
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
        report(c.ledger.execute(command), as_json)
        return
    where = cmd.LocateContact(location, contact_id, region, time_zone, at, actor)
    for outcome in c.ledger.execute_many([command, where], raise_errors=True):
        report(outcome, as_json)


@contacts.command("list")
@click.argument("location")
@click.option("--dnd", type=click.Choice(views.DND_VALUES), help="Only contacts with this status.")
@click.option("--channel", type=click.Choice(CHANNEL_NAMES), help="With --state: one channel.")
@click.option("--state", type=click.Choice(views.STATES), help="With --channel: its state.")
@click.option("--limit", type=int, default=views.DEFAULT_LIMIT, show_default=True,
              help=f"Contacts per page (at most {views.MAX_LIMIT}).")  # fmt: skip
@click.option("--after", "cursor", help="The cursor a previous page printed: the next page.")
@format_option
@pass_ctx
@ledger_errors
def contacts_list(
    c: Ctx, location: str, dnd: str | None, channel: str | None, state: str | None,
    limit: int, cursor: str | None, fmt: str,
) -> None:  # fmt: skip
    """List a location's contacts, a page at a time, by contact id.

    The next page's cursor is printed after the table (on stderr), or given as
    next_cursor in JSON (jsonl and csv: on stderr).

    \b
    Examples:
      dnd-ledger contacts list loc-1
      dnd-ledger contacts list loc-1 --channel sms --state permanent --format csv
    """
    page = views.list_contacts(
        c.ledger, location, dnd=dnd, channel=channel, state=state, limit=limit, after=cursor
    )
    if fmt == "json":
        click.echo(dumps(page.to_json()))
        return
    rows = [
        {"contact_id": x["contact_id"], "dnd": x["dnd"], **x["channels"]} for x in page.contacts
    ]
    click.echo(render_rows(rows, fmt, ["contact_id", "dnd", *CHANNEL_NAMES]))
    if page.next_cursor:
        click.echo(f"next page: --after {page.next_cursor}", err=True)


@contacts.command("show")
@click.argument("location")
@click.argument("contact_id")
@format_option
@pass_ctx
@ledger_errors
def contacts_show(c: Ctx, location: str, contact_id: str, fmt: str) -> None:
    """A contact's addresses (as references), per-channel state and open reviews.

    `dnd-ledger pii reveal REF` turns a reference back into its value.

    Example: dnd-ledger contacts show loc-1 c-42
    """
    shown = views.show_contact(c.ledger, location, contact_id)
    if fmt in ("json", "jsonl"):
        click.echo(dumps(shown))
        return
    rows = [{"channel": ch, **s} for ch, s in shown["channels"].items()]
    columns = ["channel", "status", "since", "code", "message", "event"]
    if fmt == "csv":
        click.echo(render_rows(rows, fmt, columns))
        return
    click.echo(f"contact {contact_id} in {location}: DND {shown['dnd']}")
    for a in shown["addresses"]:
        click.echo(f"  {a['kind']:<5} {a['ref']}  since {a['since']}")
    click.echo(render_rows(rows, fmt, columns))
    for r in shown["open_reviews"]:
        click.echo(f"open review: {r['channel']} flagged since {r['since']} ({r['event_id']})")


@contacts.command("find")
@click.argument("location")
@click.option("--phone", help="A phone number, E.164.")
@click.option("--email", help="An email address.")
@format_option
@pass_ctx
@ledger_errors
def contacts_find(c: Ctx, location: str, phone: str | None, email: str | None, fmt: str) -> None:
    """The contacts that hold an address, and what providers reported for it.

    Events for an address nobody has yet are held: they apply to the contact
    that registers it.

    Example: dnd-ledger contacts find loc-1 --phone +14155550100
    """
    found = views.find_address(c.ledger, location, phone, email)
    if fmt in ("json", "jsonl"):
        click.echo(dumps(found))
        return
    rows: list[dict[str, Any]] = [
        {"contact_id": x["contact_id"], "since": x["since"]} for x in found["contacts"]
    ]
    if fmt == "csv":
        click.echo(render_rows(rows, fmt, ["contact_id", "since"]))
        return
    click.echo(f"{found['kind']} {found['ref']} in {location}")
    if rows:
        click.echo(render_rows(rows, fmt, ["contact_id", "since"]))
    else:
        click.echo("no contact holds it")
    if found["provider_events"]:
        click.echo("provider events recorded for it:")
        click.echo(
            render_rows(
                found["provider_events"], fmt,
                ["position", "occurred_at", "event", "channels", "effect", "code"],
            )
        )  # fmt: skip


@contacts.command("remove-address")
@click.argument("location")
@click.argument("contact_id")
@click.option("--phone", "phones", multiple=True, help="Phone number to remove (repeatable).")
@click.option("--email", "emails", multiple=True, help="Email address to remove (repeatable).")
@click.option("--actor", required=True, help="Who removes it.")
@click.option("--reason", help="Why.")
@click.option("--request-id", help="Idempotency key for retries.")
@recording
def contacts_remove_address(
    c: Ctx, location: str, contact_id: str, phones: tuple[str, ...], emails: tuple[str, ...],
    actor: str, reason: str | None, request_id: str | None, at: datetime | None, as_json: bool,
) -> None:  # fmt: skip
    """Remove an address from a contact (an AddressRemoved event).

    DND that came from the address stays on the contact (the safe side); later
    provider events for the address no longer reach it.

    Example: dnd-ledger contacts remove-address loc-1 c-42 --phone +14155550100 --actor alice
    """
    command = cmd.RemoveAddress(location, contact_id, actor, phones, emails, reason, at, request_id)
    report(c.ledger.execute(command), as_json)
