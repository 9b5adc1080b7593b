"""What an inbound message, a carrier status or an email event records (DESIGN §2).

Each function takes what the provider said (already checked and turned into keyed
references) and the policy, and returns the :class:`Ruling` (event, effect, detail)
the service layer records on the address and its contacts, or :class:`Ignored`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dnd_ledger.domain.inputs import drop_none
from dnd_ledger.domain.keywords import normalise
from dnd_ledger.domain.policy import Policy
from dnd_ledger.domain.reviews import opening
from dnd_ledger.domain.rulings import LEVEL, Ignored, Ruling
from dnd_ledger.domain.scope import scoped, start_reach
from dnd_ledger.domain.state import NO_EFFECT, Effect, Op
from dnd_ledger.domain.values import Channel, DndKind, EmailSignal, InboundClass

#: The channels inbound messages arrive on.
MESSAGE_CHANNELS = (Channel.SMS, Channel.WHATSAPP)
CARRIER_EVENTS = {
    30004: "CarrierError30004",
    21610: "CarrierError21610",
    63014: "WhatsAppBlocked63014",
}
#: Twilio codes of a handset or number unreachable for now.
TEMPORARY_CODES = (30003, 30005, 30006)
EMAIL_EVENTS = {
    EmailSignal.FAILED_PERMANENT: "MailgunPermanentFailure",
    EmailSignal.FAILED_TEMPORARY: "MailgunTemporaryFailure",
    EmailSignal.COMPLAINED: "MailgunComplaint",
    EmailSignal.UNSUBSCRIBED: "MailgunUnsubscribed",
}
_PROVIDER_CLASS = {"STOP": InboundClass.OPT_OUT, "START": InboundClass.OPT_IN}


def inbound(
    policy: Policy, channel: Channel, body: str, theirs: str | None, at: datetime, *,
    ref: str, body_ref: str, received_ref: str | None, message_id: str,
) -> Ruling | Ignored:  # fmt: skip
    """An inbound message ``body`` (cleaned) on ``channel`` from the address ``ref``.

    ``theirs`` is the provider's own opt-out type (STOP, START), if it gave one: a STOP
    the policy does not see as an opt-out still counts as one (the provider already
    blocks: the safe side), and any disagreement is recorded.
    """
    ours = policy.classify_inbound(body)
    effective = ours
    if theirs == "STOP" and ours is not InboundClass.OPT_OUT:
        effective = InboundClass.OPT_OUT
    detail: dict[str, Any] = {
        "address_ref": ref,
        "body_ref": body_ref,
        "classification": ours.value,
        "message_id": message_id,
    }
    if received_ref is not None:  # the reference of the text exactly as received
        detail["received_ref"] = received_ref
    if theirs:
        detail["provider_opt_out_type"] = theirs
        detail["disagreement"] = theirs in _PROVIDER_CLASS and _PROVIDER_CLASS[theirs] is not ours
    ch = channel
    if effective is InboundClass.OPT_OUT:
        word = normalise(body).upper()[:32]
        effect, detail = scoped(policy.revocation_scope, Effect(
            Op.BLOCK, (ch,), DndKind.PERMANENT, code=word or theirs,
            message=f"opt-out keyword on {ch.value}", origin=ref), at, detail)  # fmt: skip
        return Ruling("OptOutKeyword", effect, detail)
    if effective is InboundClass.OPT_IN:
        effect = Effect(Op.OPT_IN, (ch,), code="START", message=f"opt-in keyword on {ch.value}",
                        origin=ref, also=start_reach(policy.revocation_scope, ch))  # fmt: skip
        return Ruling("StartReceived", effect, detail)
    if effective is InboundClass.SUSPECTED_REVOCATION:
        detail.update(opening(policy.review.deadline, at, ch.value))
        level = policy.review.effect
        effect = (
            NO_EFFECT if level == "none" else
            Effect(Op.BLOCK, (ch,), LEVEL[level], code="review",
                   message="message contains an opt-out word: flagged for human review",
                   origin=ref)
        )  # fmt: skip
        return Ruling("RevocationSuspected", effect, detail)
    return Ignored({"classification": ours.value})


def carrier_ignored(policy: Policy, error_code: int | None) -> Ignored | None:
    """Why a carrier status records nothing, or None when it records an event."""
    if error_code is None or error_code == 0:
        return Ignored({"reason": "no error code"})
    if policy.carrier_rule(error_code) is None:
        return Ignored({"reason": f"error {error_code} is not the contact's doing (sender side)"})
    return None


def carrier(
    policy: Policy, error_code: int, status: str, channel: Channel, at: datetime, *,
    ref: str, message_id: str,
) -> Ruling:  # fmt: skip
    """A carrier error the policy maps to an effect (see :func:`carrier_ignored` first)."""
    rule = policy.carrier_rule(error_code)
    if rule is None:
        raise ValueError(f"error {error_code} has no carrier rule")
    event = CARRIER_EVENTS.get(error_code)
    if event is None:
        event = "CarrierErrorTemporary" if error_code in TEMPORARY_CODES else "CarrierErrorReported"
    effect = Effect(Op.BLOCK, (rule.channel or channel,), LEVEL[rule.effect],
                    code=str(error_code), origin=ref,
                    message=rule.description or f"carrier error {error_code}")  # fmt: skip
    detail = {"address_ref": ref, "message_id": message_id, "status": status,
              "error_code": error_code}  # fmt: skip
    if event == "CarrierError21610":  # an opt-out the carrier saw: same scope as STOP
        effect, detail = scoped(policy.revocation_scope, effect, at, detail)
    return Ruling(event, effect, detail)


def email_ignored(policy: Policy, signal: EmailSignal, reason: str | None) -> Ignored | None:
    """Why an email event records nothing, or None when it records an event."""
    if policy.email_rule(signal, reason).effect == "none":
        return Ignored({"reason": f"{signal.value} ({reason or 'no reason'}) has no DND effect"})
    return None


def email(
    policy: Policy, signal: EmailSignal, reason: str | None, *, ref: str, event_id: str | None
) -> Ruling:
    """An email event the policy maps to an effect (see :func:`email_ignored` first)."""
    rule = policy.email_rule(signal, reason)
    if rule.effect == "none":
        raise ValueError(f"{signal.value} has no DND effect")
    said = (reason or "").strip().lower() or None
    effect = Effect(
        Op.BLOCK, (Channel.EMAIL,), LEVEL[rule.effect], code=said or signal.value,
        message=f"email {signal.value}" + (f": {said}" if said else ""),
        origin=ref, suppression=rule.requires_suppression_removal,
    )  # fmt: skip
    detail = drop_none(address_ref=ref, reason=said, provider_event_id=event_id)
    return Ruling(EMAIL_EVENTS[signal], effect, detail)
