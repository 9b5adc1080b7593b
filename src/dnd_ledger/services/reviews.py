"""Review items of suspected revocations: listing them, resolving them.

Every ``RevocationSuspected`` opens an item (its id is the inbound message's id)
whose deadline was recorded with it (:mod:`dnd_ledger.domain.reviews`).
``review resolve`` records, on the address and on every contact that has it,
``RevocationConfirmed`` (permanent DND with the scope a keyword opt-out had when
the message came in) or ``RevocationDismissed`` (lifts that review's temporary
DND only). The address stream, read in the write, decides whether an item is
still open, so two reviewers cannot both resolve it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from dnd_ledger import commands as cmd
from dnd_ledger.commands import Outcome
from dnd_ledger.domain.errors import AlreadyResolved, InvalidInput, UnknownReviewItem
from dnd_ledger.domain.inputs import MAX_TEXT, check_id, required
from dnd_ledger.domain.reviews import (
    CONFIRMED,
    DISMISSED,
    RESOLUTIONS,
    SUSPECTED,
    ReviewItem,
    items_from,
)
from dnd_ledger.domain.scope import scoped
from dnd_ledger.domain.state import Effect, Op
from dnd_ledger.domain.values import AddressKind, Channel, DndKind, Source
from dnd_ledger.services.ports import Ledger
from dnd_ledger.services.provider_signals import record_signal
from dnd_ledger.services.unit_of_work import Unit

_EVENTS = [f"Address.{SUSPECTED}", SUSPECTED, f"Address.{CONFIRMED}", f"Address.{DISMISSED}"]


def review_items(
    app: Ledger, location_id: str | None = None, *, overdue: bool = False,
    include_resolved: bool = False,
) -> list[ReviewItem]:  # fmt: skip
    """Review items oldest first, from the audit view (checked current first)."""
    app.ensure_current()
    marks = ", ".join("?" for _ in _EVENTS)
    where = f"a.event IN ({marks})"
    params: list[Any] = list(_EVENTS)
    if location_id is not None:
        where += " AND a.location_id = ?"
        params.append(location_id)
    rows = [
        {
            "location_id": r.location_id,
            "contact_id": r.contact_id,
            "address_ref": r.address_ref,
            "occurred_at": r.fields.occurred_at,
            "event": r.event,
            "detail": json.loads(r.fields.detail),
        }
        for r in app.views.trail.read(where, params)
    ]
    items = items_from(rows, app.policy.review.deadline)
    now = app.clock()
    return [
        i for i in items
        if (include_resolved or i.resolution is None) and (not overdue or i.overdue(now))
    ]  # fmt: skip


def review_counts(app: Ledger, location_id: str | None = None) -> dict[str, dict[str, int]]:
    """Open and overdue review items per location (for ``stats``)."""
    now = app.clock()
    out: dict[str, dict[str, int]] = {}
    for i in review_items(app, location_id):
        counts = out.setdefault(i.location_id, {"open": 0, "overdue": 0})
        counts["open"] += 1
        counts["overdue"] += i.overdue(now)
    return out


def resolve_review(app: Ledger, unit: Unit, c: cmd.ResolveReview) -> Outcome:
    check_id("location_id", c.location_id)
    item = required("item", c.item)
    actor = required("actor", c.actor)
    note = required("note", c.note, MAX_TEXT)
    event = RESOLUTIONS.get(c.resolution)
    if event is None:
        raise InvalidInput(f"resolution must be revocation or not-revocation, not {c.resolution!r}")
    app.ensure_current()  # an item another process recorded a moment ago is found too
    key = f"inbound:{item}"
    found = [
        r for r in app.views.trail.read(
            "a.location_id = ? AND a.event = ?", (c.location_id, f"Address.{SUSPECTED}")
        )
        if r.fields.idempotency_key == key
    ]  # fmt: skip
    if not found:
        raise UnknownReviewItem(f"no review item {item!r} in location {c.location_id!r}")
    ref = str(found[0].address_ref)
    address = unit.address(c.location_id, AddressKind.PHONE, ref)
    signals = unit.signals(address)
    suspected = next((s for s in signals if s.event == SUSPECTED
                      and s.idempotency_key == key), None)  # fmt: skip
    if suspected is None:
        raise UnknownReviewItem(f"no review item {item!r} in location {c.location_id!r}")
    done = next((s for s in signals if s.event in (CONFIRMED, DISMISSED)
                 and s.detail.get("item") == item), None)  # fmt: skip
    if done is not None:
        raise AlreadyResolved(
            f"review item {item!r} was already resolved as {done.detail.get('resolution')} "
            f"by {done.actor} at {done.occurred_at.isoformat()}"
        )
    channel = Channel(suspected.detail.get("channel") or "sms")
    detail: dict[str, Any] = {
        "item": item, "address_ref": ref, "resolution": c.resolution,
        "review_of": suspected.event_id, "note_ref": unit.ref("text", note),
    }  # fmt: skip
    at: datetime
    if event == CONFIRMED:
        # The revocation occurred when the message came in: its time, and the scope then.
        at = suspected.occurred_at
        effect = Effect(Op.BLOCK, (channel,), DndKind.PERMANENT, code="review-confirmed",
                        message=f"revocation confirmed by review ({actor})", origin=ref)  # fmt: skip
        effect, detail = scoped(app.policy.revocation_scope, effect, at, detail)
    else:
        at = unit.time(c.occurred_at)
        effect = Effect(Op.CLEAR_REVIEW, (channel,), code="review-dismissed",
                        message=f"not a revocation, by review ({actor})", origin=ref)  # fmt: skip
    return record_signal(
        app, unit, c.location_id, AddressKind.PHONE, ref, event, at, f"review:{item}", effect,
        detail, source=Source.SUPPORT, actor=actor,
    )  # fmt: skip
