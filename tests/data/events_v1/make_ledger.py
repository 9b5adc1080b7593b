"""Make ``ledger.db`` and ``expected.json``: a small SQLite ledger holding every event
class the ledger has, and what the code of the day decoded and answered from it.

Run from the repository root, against the code whose stored format is to be kept:

    PYTHONPATH=$PWD/src python tests/data/events_v1/make_ledger.py

The file is only ever read by tests/integration/test_stored_events_v1.py (on a copy).
Its expected values are written by this script, with the code it runs against: run it
again only to capture a new format, never to make a failing test pass.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.domain.address import Address
from dnd_ledger.domain.contact import Contact
from dnd_ledger.domain.policy import load_policy
from dnd_ledger.domain.values import Channel, EmailSignal
from dnd_ledger.services import contact_admin

HERE = Path(__file__).resolve().parent
KEY = b"events-v1-fixture-key-0123456789"
L, L2 = "loc-1", "loc-2"
ADA, BOB, CY, DEE, EVE = "ada", "bob", "cy", "dee", "eve"
P1, P2, P3, P4 = "+14155550100", "+14155550111", "+14155550122", "+14155550133"
E1, E2, E3 = "ada@example.com", "bob@example.com", "dee@example.com"
T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
EST = timezone(timedelta(hours=-5))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def tick(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def typed(v: Any) -> Any:
    """A value as JSON that names its type: equal typed values mean equal values."""
    if v is None or type(v) in (bool, int, float, str):
        return v
    if isinstance(v, Enum):
        return {"enum": f"{type(v).__module__}.{type(v).__qualname__}", "value": v.value}
    if isinstance(v, datetime):
        return {"datetime": v.isoformat(), "tzinfo": type(v.tzinfo).__name__}
    if isinstance(v, UUID):
        return {"uuid": str(v)}
    if type(v) is list:
        return {"list": [typed(x) for x in v]}
    if type(v) is dict:
        return {"dict": {k: typed(x) for k, x in v.items()}}
    raise TypeError(f"no typed form for {type(v).__qualname__}")


def run(ledger: DndLedger, clock: Clock) -> None:
    sms, wa, email, call = Channel.SMS, Channel.WHATSAPP, Channel.EMAIL, Channel.CALL
    do = ledger.execute
    do(c.RegisterContact(L, ADA, (P1,), (E1,), actor="rita", request_id="req-1"))
    do(c.RegisterContact(L, BOB, (P2, P1), (E2,)))
    do(c.RegisterContact(L, CY, (P3,), occurred_at=datetime(2026, 11, 20, 9, 30, tzinfo=EST)))
    clock.tick(minutes=1)
    do(c.RegisterContact(L, ADA, (P1, P4), (E1,), actor="rita"))  # AddressesAdded
    do(c.SetDnd(L, ADA, (call, Channel.FB), "rita", reason="asked on the phone: “no calls” ✓"))
    clock.tick(minutes=1)
    do(c.ClearDnd(L, ADA, (Channel.FB,), "rita", reason="changed her mind", request_id="req-2"))
    do(c.ReceiveInbound(L, sms, P1, "STOP", "SM-stop-1"))  # OptOutKeyword (scope-widened)
    clock.tick(minutes=2)
    do(c.RecordConfirmation(L, sms, P1, "SM-conf-1"))  # OptOutConfirmationSent
    clock.tick(minutes=5)
    do(c.ReceiveInbound(L, sms, P2, "START", "SM-start-1"))  # StartReceived
    do(c.ReceiveInbound(L, sms, P3, "please stop texting me", "SM-rev-1"))  # RevocationSuspected
    do(c.ReceiveInbound(L, wa, P3, "stop it please", "WA-rev-2"))
    do(c.ReceiveInbound(L, sms, P4, "hello", "SM-theirs", provider_opt_out_type="STOP"))
    clock.tick(days=1)
    do(c.ResolveReview(L, "SM-rev-1", "revocation", "rita", "called the customer"))
    do(c.ResolveReview(L, "WA-rev-2", "not-revocation", "sam", "was a joke ☺"))
    do(c.ReportCarrierStatus(L, sms, P2, "SM-out-1", "undelivered", 30003))
    do(c.ReportCarrierStatus(L, sms, P2, "SM-out-2", "failed", 30004))
    do(c.ReportCarrierStatus(L, sms, P3, "SM-out-3", "failed", 21610))
    do(c.ReportCarrierStatus(L, wa, P2, "WA-out-4", "failed", 63014))
    do(c.ReportCarrierStatus(L, sms, P2, "SM-out-5", "failed", 30008))  # CarrierErrorReported
    do(c.ReportCarrierStatus(L, sms, "+14155550999", "SM-out-6", "failed", 30004))  # no contact
    em = EmailSignal
    do(c.ReportEmailEvent(L, E2, em.FAILED_PERMANENT, "tok-1", reason="bounce", event_id="ev-1"))
    do(c.ReportEmailEvent(L, E2, em.FAILED_TEMPORARY, "tok-2", reason="mailbox full"))
    do(c.ReportEmailEvent(L, E1, em.COMPLAINED, "tok-3"))
    do(c.ReportEmailEvent(L, E1, em.UNSUBSCRIBED, "tok-4", key_per_recipient=True))
    clock.tick(hours=1)
    do(c.ClearDnd(L, BOB, (email,), "rita", reason="removed from the bounce list",
                  suppression_removed=True))  # fmt: skip
    do(c.ApproveOptIn(L, ADA, (sms,), "sam", "TCK-42", "signed form, 2026-11-21"))
    do(c.ImportLegacy(L2, DEE, True, (P1,), (E3,), occurred_at=datetime(2025, 1, 2, tzinfo=UTC)))
    do(c.ImportLegacy(L2, EVE, False, (), ("eve@example.com",)))
    do(c.LocateContact(L, CY, "US-FL", "America/New_York", actor="rita"))
    do(c.RemoveAddress(L, BOB, "rita", phones=(P1,), reason="not his number"))
    clock.tick(minutes=3)
    do(c.RegisterContact(L, "fay", (P4,), actor="ops", request_id="req-fay"))
    contact_admin.erase(ledger, L, CY, "ops", "asked to be forgotten")  # PersonalDataErased
    clock.tick(minutes=1)
    ledger.refresh_views()


def event_classes() -> list[str]:
    """Every event class of the ledger's aggregates, by qualified name."""
    found = []
    for agg in (Contact, Address):
        for cls in vars(agg).values():
            # Event and Created are the library's per-aggregate bases; DndEvent ours.
            if (
                isinstance(cls, type)
                and issubclass(cls, Aggregate.Event)
                and cls.__name__ not in ("Event", "Created", "DndEvent")
            ):
                found.append(cls.__qualname__)
    return found


def answers(ledger: DndLedger) -> dict[str, Any]:
    """can_send and status of every contact, as JSON."""
    out: dict[str, Any] = {}
    contacts = [(L, ADA), (L, BOB), (L, CY), (L, "fay"), (L2, DEE), (L2, EVE)]
    for loc, cid in contacts:
        view = ledger.status(loc, cid)
        out[f"{loc}/{cid}"] = {
            "status": {ch.value: s.status.value for ch, s in view.channels.items()},
            "can_send": {
                ch.value: [d.allowed, d.reason] for ch in Channel
                for d in [ledger.can_send(loc, cid, ch)]
            },
        }  # fmt: skip
    return out


def aggregates(ledger: DndLedger, ids: list[UUID]) -> dict[str, Any]:
    """Each aggregate replayed from its stored events (a fresh ledger: no cache), as JSON."""
    out: dict[str, Any] = {}
    for agg_id in ids:
        agg = ledger.repository.get(agg_id)
        if isinstance(agg, Contact):
            summary: dict[str, Any] = {
                "phones": agg.phones, "emails": agg.emails, "keys": sorted(agg.keys),
                "channels": {ch.value: s.to_json() for ch, s in agg.state.channels().items()},
            }  # fmt: skip
        else:
            assert isinstance(agg, Address)
            summary = {"kind": agg.kind.value, "claimants": agg.claimants,
                       "keys": sorted(agg.keys)}  # fmt: skip
        out[str(agg_id)] = {"class": type(agg).__qualname__, "version": agg.version, **summary}
    return out


def main() -> None:
    db = HERE / "ledger.db"
    for p in HERE.glob("ledger.db*"):
        p.unlink()
    clock = Clock()
    policy = load_policy(HERE / "policy.toml")
    ledger = DndLedger(f"sqlite:///{db}", policy=policy, pii_key=KEY, clock=clock)
    try:
        run(ledger, clock)
        events = []
        for n in ledger.recorder.select_notifications(start=1, limit=10_000):
            e = ledger.mapper.to_domain_event(n)
            events.append({
                "id": n.id, "topic": n.topic, "class": type(e).__qualname__,
                "state": n.state.decode(), "decoded": typed(dict(vars(e))),
            })  # fmt: skip
        ids = list(
            dict.fromkeys(
                n.originator_id for n in ledger.recorder.select_notifications(start=1, limit=10_000)
            )
        )
        expected: dict[str, Any] = {"now": clock.now.isoformat(), "answers": answers(ledger)}
    finally:
        ledger.close()
    fresh = DndLedger(f"sqlite:///{db}", policy=policy, pii_key=KEY, clock=clock)
    try:
        expected["aggregates"] = aggregates(fresh, ids)
    finally:
        fresh.close()
    expected["events"] = events
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")  # one file, no -wal beside it
    with sqlite3.connect(db) as conn:
        conn.execute("VACUUM")
    conn.close()
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
    classes = sorted({e["class"] for e in events})
    missing = sorted(set(event_classes()) - set(classes))
    assert not missing, f"no event of {missing}"
    print(f"{len(events)} events, {len(classes)} classes: {', '.join(classes)}", file=sys.stderr)


if __name__ == "__main__":
    main()
