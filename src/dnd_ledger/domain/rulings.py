"""What a user's or support's action, or a legacy row, records: the event and its effect.

A ruling is the event's name, its effect and its detail; the service layer records it
on the contact. Pure functions: the rules of DESIGN §2 as code a test calls without I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dnd_ledger.domain.errors import AttestationRequired, PermanentDnd
from dnd_ledger.domain.inputs import drop_none
from dnd_ledger.domain.state import NO_EFFECT, DndState, Effect, Op, describe
from dnd_ledger.domain.values import ALL_CHANNELS, Channel, DndKind

#: A policy's effect level (temporary, permanent) as the DND kind it sets.
LEVEL = {"temporary": DndKind.ACTIVE, "permanent": DndKind.PERMANENT}


@dataclass(frozen=True)
class Ruling:
    """Record ``event`` with ``effect`` and ``detail``."""

    event: str
    effect: Effect
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Ignored:
    """Record nothing; ``detail`` says why."""

    detail: dict[str, Any]


def dnd_set_by_user(channels: tuple[Channel, ...], actor: str, reason: str | None) -> Ruling:
    effect = Effect(
        Op.BLOCK, channels, DndKind.ACTIVE, code="user",
        message=reason or f"set by {actor} from the contact record",
    )  # fmt: skip
    return Ruling("DndSetByUser", effect, drop_none(reason=reason))


def dnd_cleared_by_user(
    channels: tuple[Channel, ...], actor: str, reason: str | None, suppression_removed: bool
) -> Ruling:
    """Lifts temporary DND only (permanent DND and suppressions are guarded by the contact)."""
    effect = Effect(
        Op.CLEAR_TEMPORARY, channels, code="user",
        message=reason or f"cleared by {actor} from the contact record",
        attested=suppression_removed,
    )  # fmt: skip
    detail = drop_none(reason=reason, suppression_removed=suppression_removed or None)
    return Ruling("DndClearedByUser", effect, detail)


def check_can_clear(
    state: DndState, channels: tuple[Channel, ...], suppression_removed: bool
) -> None:
    """Refuse a user's clear of permanent DND, or of an unattested suppression, given the
    contact's state at the clear's time."""
    for ch in channels:
        permanent = state.permanent_blocks(ch)
        if permanent:
            raise PermanentDnd(
                f"{ch.value} has permanent DND ({describe(permanent[0])}); it cannot be "
                "cleared from the contact record: only an inbound START from that address "
                "on that channel, or a support-approved opt-in with the contact's "
                "opt-in evidence, lifts it"
            )
        suppressed = state.suppression_blocks(ch)
        if suppressed and not suppression_removed:
            raise AttestationRequired(
                f"{ch.value} DND was caused by {describe(suppressed[0])}: remove the address "
                "from the provider's suppression list and re-validate it, then clear "
                "with the suppression-removed attestation (--suppression-removed)"
            )


def support_opt_in(
    channels: tuple[Channel, ...], approver: str, ticket: str, evidence_ref: str
) -> Ruling:
    """A support-approved opt-in lifts every DND on its channels, permanent ones too."""
    effect = Effect(
        Op.CLEAR_ALL, channels, code="support-opt-in",
        message=f"support-approved opt-in, ticket {ticket}, approved by {approver}",
    )  # fmt: skip
    return Ruling("SupportOptInApproved", effect, {"ticket": ticket, "evidence_ref": evidence_ref})


def legacy_import(dnd: bool) -> Ruling:
    """The legacy single flag: on blocks every channel (active DND); off records no effect."""
    effect = (
        Effect(Op.BLOCK, ALL_CHANNELS, DndKind.ACTIVE, code="legacy",
               message="DND was on in the legacy single-flag system")
        if dnd else NO_EFFECT
    )  # fmt: skip
    return Ruling("LegacyDndImported", effect, {"legacy_dnd": dnd})
