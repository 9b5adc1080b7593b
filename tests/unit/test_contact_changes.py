"""What a contact notes about each event not yet stored (the writer's views are written
from it), and the fold's per-channel memo. No I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from dnd_ledger.domain.contact import Contact
from dnd_ledger.domain.state import ALL_INACTIVE, DndState, Effect, Entry, Op, fold
from dnd_ledger.domain.values import ALL_CHANNELS, Channel, DndKind, Source

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SMS, EMAIL = Channel.SMS, Channel.EMAIL
STOP = Effect(op=Op.BLOCK, channels=(SMS,), level=DndKind.PERMANENT, origin="phone-1")
USER_SET = Effect(op=Op.BLOCK, channels=(EMAIL,), level=DndKind.ACTIVE)
USER_CLEAR = Effect(op=Op.CLEAR_TEMPORARY, channels=ALL_CHANNELS)


def _contact() -> Contact:
    return Contact.register(
        "loc-1", "ada", T0, ["phone-1"], [], Source.USER, None, None, "p1", timestamp=T0
    )


def _record(contact: Contact, name: str, effect: Effect, at: datetime) -> None:
    contact.record(
        name, occurred_at=at, source=Source.PROVIDER, actor=None, idempotency_key=None,
        policy_version="p1", effect=effect, timestamp=T0 + timedelta(days=1),
    )  # fmt: skip


def test_each_new_event_notes_the_channels_before_and_after_it() -> None:
    ada = _contact()
    _record(ada, "OptOutKeyword", STOP, T0 + timedelta(minutes=1))
    _record(ada, "DndSetByUser", USER_SET, T0 + timedelta(minutes=2))
    first, second = ada.change_of(2), ada.change_of(3)
    assert first is not None
    assert second is not None
    assert first[0] == dict(ALL_INACTIVE)
    assert first[1][SMS].status is DndKind.PERMANENT
    assert first[1][EMAIL].status is DndKind.INACTIVE
    assert second[0] == first[1]
    assert second[1][EMAIL].status is DndKind.ACTIVE
    assert second[1] == ada.state.channels()
    assert (first.effect, second.effect) == (STOP, USER_SET)  # decoded once, when applied
    assert ada.change_of(1) is None  # the registration changes no channel: not noted


def test_an_event_that_is_no_dnd_event_notes_no_effect() -> None:
    ada = _contact()
    ada.add_addresses(["phone-2"], [], T0, Source.USER, None, None, "p1", timestamp=T0)
    added = ada.change_of(2)
    assert added is not None
    assert added.effect is None
    assert added.before == added.after == dict(ALL_INACTIVE)


def test_a_late_event_notes_the_refolded_channels() -> None:
    ada = _contact()
    _record(ada, "DndClearedByUser", USER_CLEAR, T0 + timedelta(minutes=5))
    _record(ada, "OptOutKeyword", STOP, T0 + timedelta(minutes=1))  # before the clear
    late = ada.change_of(3)
    assert late is not None
    assert late[0][SMS].status is DndKind.INACTIVE
    assert late[1][SMS].status is DndKind.PERMANENT  # a user's clear does not lift a STOP
    assert late[1] == fold(ada.entries or []).channels()


def test_notes_last_only_until_the_events_are_stored_or_the_contact_compacted() -> None:
    ada = _contact()
    _record(ada, "OptOutKeyword", STOP, T0 + timedelta(minutes=1))
    ada.collect_events()  # stored
    _record(ada, "DndSetByUser", USER_SET, T0 + timedelta(minutes=2))
    assert ada.change_of(2) is None  # a stored event's note is gone with the next change
    assert ada.change_of(3) is not None
    ada.collect_events()  # stored: only then may it be compacted
    assert ada.change_of(3) is not None
    ada.compact(NoKeys())
    assert ada.change_of(3) is None


class NoKeys:
    """A keys table with no keys."""

    def holds(self, owner: UUID, key: str) -> bool:
        return False

    def request_key(self, owner: UUID, request: str) -> str | None:
        return None


def test_the_memo_follows_every_change_of_a_channel() -> None:
    state = DndState()
    assert state.channel(SMS).status is DndKind.INACTIVE  # memoised
    state.apply(Entry(T0, T0, 1, "OptOutKeyword", "e:1", STOP))
    assert state.channel(SMS).status is DndKind.PERMANENT
    state.apply(
        Entry(
            T0,
            T0,
            2,
            "StartReceived",
            "e:2",
            Effect(op=Op.OPT_IN, channels=(SMS,), origin="phone-1"),
        )
    )
    assert state.channel(SMS).status is DndKind.INACTIVE
    assert state == fold([])  # the memo is not part of the value
