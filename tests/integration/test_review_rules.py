"""Review items of suspected revocations, on every backend: deadlines, verdicts, counts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from tests.conftest import SHARED_DATABASES, Clock

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.domain.errors import AlreadyResolved, InvalidInput, UnknownReviewItem
from dnd_ledger.domain.values import Channel, DndKind
from dnd_ledger.services.reviews import review_counts, review_items

L, ADA, PHONE = "loc-1", "ada", "+14155550100"
SMS, CALL = Channel.SMS, Channel.CALL
FRIDAY_BEFORE_THANKSGIVING = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


def suspect(ledger: DndLedger, sid: str = "SM-1") -> None:
    ledger.execute(c.ReceiveInbound(L, SMS, PHONE, "please stop texting me", sid))


def resolve(ledger: DndLedger, verdict: str, item: str = "SM-1", actor: str = "rita") -> c.Outcome:
    return ledger.execute(c.ResolveReview(L, item, verdict, actor, "called the customer"))


def status(ledger: DndLedger, ch: Channel = SMS) -> DndKind:
    return ledger.status(L, ADA).channels[ch].status


@pytest.fixture
def flagged(ledger: DndLedger, clock: Clock) -> DndLedger:
    clock.now = FRIDAY_BEFORE_THANKSGIVING
    ledger.execute(c.RegisterContact(L, ADA, (PHONE,)))
    suspect(ledger)
    return ledger


def test_a_suspected_revocation_opens_an_item_due_in_ten_business_days(
    flagged: DndLedger, clock: Clock
) -> None:
    [item] = review_items(flagged, L)
    assert (item.item, item.contacts, item.channel) == ("SM-1", [ADA], "sms")
    assert item.deadline == "2026-12-07"  # Thanksgiving does not count
    assert flagged.history(L, ADA)[-1].detail["review_deadline"] == "2026-12-07"
    assert review_items(flagged, L, overdue=True) == []
    assert review_counts(flagged) == {L: {"open": 1, "overdue": 0}}
    clock.now = datetime(2026, 12, 8, 0, 0, 1, tzinfo=UTC)
    assert [i.item for i in review_items(flagged, L, overdue=True)] == ["SM-1"]
    assert review_counts(flagged, L) == {L: {"open": 1, "overdue": 1}}
    assert review_items(flagged, "loc-other") == []


def test_items_are_listed_oldest_first(flagged: DndLedger, clock: Clock) -> None:
    clock.advance(days=1)
    suspect(flagged, "SM-2")
    assert [i.item for i in review_items(flagged)] == ["SM-1", "SM-2"]


def test_confirmed_as_revocation_is_permanent(flagged: DndLedger, clock: Clock) -> None:
    clock.advance(days=2)
    out = resolve(flagged, "revocation")
    assert out.events == ("RevocationConfirmed",)
    assert status(flagged) is DndKind.PERMANENT
    assert status(flagged, CALL) is DndKind.INACTIVE  # before 2027-01-31: its channel only
    last = flagged.history(L, ADA)[-1]
    assert (last.event, last.actor, last.source) == ("RevocationConfirmed", "rita", "support")
    assert last.occurred_at == FRIDAY_BEFORE_THANKSGIVING  # when the message came in
    assert review_items(flagged) == []
    assert review_counts(flagged) == {}
    with pytest.raises(AlreadyResolved, match="already resolved as revocation by rita"):
        resolve(flagged, "not-revocation")


def test_a_confirmed_revocation_gets_the_keyword_scope(ledger: DndLedger, clock: Clock) -> None:
    clock.now = datetime(2027, 2, 1, 15, 0, tzinfo=UTC)
    ledger.execute(c.RegisterContact(L, ADA, (PHONE,)))
    suspect(ledger)
    resolve(ledger, "revocation")
    assert status(ledger, CALL) is DndKind.PERMANENT
    assert ledger.history(L, ADA)[-1].detail["scope_rule"] == "revoke-all"


def test_dismissed_lifts_the_review_dnd_only(flagged: DndLedger, clock: Clock) -> None:
    assert status(flagged) is DndKind.ACTIVE
    flagged.execute(c.SetDnd(L, ADA, (SMS,), "alice"))
    clock.advance(hours=1)
    assert resolve(flagged, "not-revocation").events == ("RevocationDismissed",)
    sms = flagged.status(L, ADA).channels[SMS]
    assert (sms.status, sms.event) == (DndKind.ACTIVE, "DndSetByUser")
    flagged.execute(c.ClearDnd(L, ADA, (SMS,), "alice"))
    assert status(flagged) is DndKind.INACTIVE


def test_dismissed_keeps_a_keyword_opt_out(flagged: DndLedger, clock: Clock) -> None:
    flagged.execute(c.ReceiveInbound(L, SMS, PHONE, "STOP", "SM-9"))
    resolve(flagged, "not-revocation")
    assert status(flagged) is DndKind.PERMANENT


def test_bad_resolutions_append_nothing(flagged: DndLedger) -> None:
    before = len(flagged.history(L, ADA))
    with pytest.raises(UnknownReviewItem):
        resolve(flagged, "revocation", item="SM-nope")
    with pytest.raises(InvalidInput, match="revocation or not-revocation"):
        resolve(flagged, "maybe")
    with pytest.raises(InvalidInput):
        flagged.execute(c.ResolveReview(L, "SM-1", "revocation", "rita", ""))
    assert len(flagged.history(L, ADA)) == before


@SHARED_DATABASES
def test_an_item_another_process_just_opened_can_be_resolved(
    two_ledgers: tuple[DndLedger, DndLedger], clock: Clock
) -> None:
    first, second = two_ledgers
    clock.now = FRIDAY_BEFORE_THANKSGIVING
    first.execute(c.RegisterContact(L, ADA, (PHONE,)))
    second.status(L, ADA)  # the second process has read its views before the item exists
    suspect(first)
    assert resolve(second, "revocation").result == "appended"
    assert status(first) is DndKind.PERMANENT
