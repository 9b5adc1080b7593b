"""What a user's or support's action, or a legacy row, records (pure, no I/O)."""

from __future__ import annotations

import pytest

from dnd_ledger.domain import inputs, rulings
from dnd_ledger.domain.errors import InvalidInput
from dnd_ledger.domain.state import NO_EFFECT, Op
from dnd_ledger.domain.values import ALL_CHANNELS, Channel, DndKind

SMS, EMAIL = Channel.SMS, Channel.EMAIL


def test_a_user_sets_temporary_dnd_with_their_reason_as_the_message() -> None:
    ruling = rulings.dnd_set_by_user((SMS,), "ana", "asked on the phone")
    assert ruling.event == "DndSetByUser"
    assert (ruling.effect.op, ruling.effect.level) == (Op.BLOCK, DndKind.ACTIVE)
    assert ruling.effect.message == "asked on the phone"
    assert ruling.detail == {"reason": "asked on the phone"}
    assert rulings.dnd_set_by_user((SMS,), "ana", None).effect.message == (
        "set by ana from the contact record"
    )


def test_a_user_clear_lifts_temporary_dnd_and_records_the_attestation() -> None:
    ruling = rulings.dnd_cleared_by_user((EMAIL,), "ana", None, True)
    assert (ruling.event, ruling.effect.op) == ("DndClearedByUser", Op.CLEAR_TEMPORARY)
    assert ruling.effect.attested
    assert ruling.detail == {"suppression_removed": True}
    assert rulings.dnd_cleared_by_user((EMAIL,), "ana", None, False).detail == {}


def test_a_support_opt_in_clears_everything_and_names_the_ticket() -> None:
    ruling = rulings.support_opt_in((SMS,), "bo", "T-7", "tx_evidence")
    assert (ruling.event, ruling.effect.op) == ("SupportOptInApproved", Op.CLEAR_ALL)
    assert ruling.effect.message == "support-approved opt-in, ticket T-7, approved by bo"
    assert ruling.detail == {"ticket": "T-7", "evidence_ref": "tx_evidence"}


def test_a_legacy_flag_on_blocks_every_channel_and_off_records_no_effect() -> None:
    on = rulings.legacy_import(True)
    assert on.effect.channels == ALL_CHANNELS
    assert on.effect.level is DndKind.ACTIVE
    assert rulings.legacy_import(False).effect == NO_EFFECT
    assert rulings.legacy_import(False).detail == {"legacy_dnd": False}


def test_identifiers_must_be_short_printable_and_not_blank() -> None:
    inputs.check_id("contact_id", "c-42")
    for bad in ("", "  ", "a\x00b", "x" * (inputs.MAX_ID + 1)):
        with pytest.raises(InvalidInput):
            inputs.check_id("contact_id", bad)


def test_required_and_optional_texts_are_stripped_and_bounded() -> None:
    assert inputs.required("actor", "  ana ") == "ana"
    with pytest.raises(InvalidInput, match="actor is required"):
        inputs.required("actor", " ")
    assert inputs.optional_text("reason", "  ") is None
    with pytest.raises(InvalidInput, match="longer than"):
        inputs.optional_text("reason", "x" * (inputs.MAX_TEXT + 1))


def test_channels_are_named_once_each_and_known() -> None:
    assert inputs.channels([SMS, SMS, EMAIL]) == (SMS, EMAIL)
    with pytest.raises(InvalidInput, match="no channel"):
        inputs.channels([])
    with pytest.raises(InvalidInput, match="unknown channel"):
        inputs.channels(["fax"])  # type: ignore[list-item]
