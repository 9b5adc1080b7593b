"""The writer's own batch, written from its aggregates' state: no re-decode, no re-fold.

A command's events change a contact in memory first (:class:`Contact` notes the
channels before and after each new event). When the writer projects its own
events in its transaction, a contact's status row, its stats and the before/after
of each audit row are taken from those notes and the aggregate's current state,
instead of reading the view's row and folding the events into it again. An
address's view rows come from its events and the aggregate's location, reference
and kind.

The aggregates are the ones the batch saves, so their state is the fold of every
event up to the batch's last: a save whose aggregates were behind the log fails on
the version check and projects nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from dnd_ledger.domain.address import Address
from dnd_ledger.domain.contact import Contact
from dnd_ledger.domain.state import ALL_INACTIVE, ChannelChange, overall
from dnd_ledger.projections.batch import Batch
from dnd_ledger.projections.rows import ContactView, changed, contact_audit_row, stats_keys

_REGISTERED = ChannelChange(dict(ALL_INACTIVE), dict(ALL_INACTIVE), None)


def fill(work: Batch, events: Sequence[tuple[int, Any]], aggregates: Mapping[Any, Any]) -> bool:
    """Take ``events`` (position, event) into ``work`` from ``aggregates`` (by id);
    False, with ``work`` untouched, when an event's aggregate or its note is missing
    (then the caller folds the events as catch-up does)."""
    changes: list[ChannelChange | None] = []
    for _position, e in events:
        agg = aggregates.get(e.originator_id)
        if isinstance(e, Contact.Event) and isinstance(agg, Contact):
            if isinstance(e, Contact.Registered):
                changes.append(_REGISTERED)
                continue
            noted = agg.change_of(e.originator_version)
            if noted is None:
                return False
            changes.append(noted)
        elif isinstance(e, Address.Event) and isinstance(agg, Address):
            changes.append(None)
        else:
            return False
    for (position, e), change in zip(events, changes, strict=True):
        agg = aggregates[e.originator_id]
        if change is None:
            work.addresses[str(e.originator_id)] = (agg.location_id, agg.ref, str(agg.kind))
            work.take(position, e)
        else:
            _contact(work, position, e, agg, change)
    return True


def _contact(work: Batch, position: int, e: Any, agg: Contact, change: ChannelChange) -> None:
    before, after, effect = change
    aid = str(e.originator_id)
    cv = work.contacts.get(aid)
    if cv is None:
        new = isinstance(e, Contact.Registered)
        cv = ContactView(aid, agg.location_id, agg.contact_id, channels=dict(before), new=new)
        cv.overall = overall(cv.channels)
        work.contacts[aid] = cv
        work.stats_before[aid] = Counter() if new else stats_keys(cv)
        # The aggregate's state, read when the rows are written (after the batch's
        # last command): the view must not keep it (see Batch.borrowed).
        cv.state = agg.state
        work.borrowed.add(aid)
    cv.version = e.originator_version
    cv.last_occurred = agg.last_occurred
    cv.channels = dict(after)
    cv.overall = overall(cv.channels)
    before_s, after_s = changed(before, after, effect.touched if effect else ())
    work.audit.append(
        contact_audit_row(position, e, agg.location_id, agg.contact_id, before_s, after_s)
    )


__all__ = ["fill"]
