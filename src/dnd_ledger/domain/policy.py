"""The DND policy as data: keyword sets, carrier-code map, email-reason map.

The built-in defaults are DESIGN §2's table. An operator may supply a TOML or
JSON file holding only what it changes: its tables merge with the defaults key
by key (see :func:`merge_tables`), so a file that adds or changes one carrier
code keeps every other one. Removing a built-in entry is explicit: set its
``effect = "none"``. The merged policy is validated here and its version (plus
a digest of its content) is recorded on every event it produces.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dnd_ledger.domain.confirmation import ConfirmationRule
from dnd_ledger.domain.keywords import classify, normalise, phrase_pattern
from dnd_ledger.domain.quiet_hours import DEFAULT_QUIET, QuietRule
from dnd_ledger.domain.reviews import DeadlineRule
from dnd_ledger.domain.scope import DEFAULT_SCOPE, ScopeRule, check_rules
from dnd_ledger.domain.text import bad_byte_at
from dnd_ledger.domain.values import Channel, EmailSignal, InboundClass

EffectName = Literal["none", "temporary", "permanent"]


class PolicyError(ValueError):
    """The policy file cannot be read or is not valid."""


class CarrierRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    effect: EffectName
    channel: Channel | None = Field(
        default=None,
        description="Channel the effect applies to; None means the message's own channel.",
    )
    description: str = ""


class EmailRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    effect: EffectName
    #: Clearing a temporary DND from this rule needs the user's attestation that
    #: the address left the provider's suppression list and was re-validated.
    requires_suppression_removal: bool = False


class ReviewRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    #: Words or phrases that, inside a longer message, suggest a revocation.
    #: None (the default): every opt-out keyword of the policy, the safe side.
    words: tuple[str, ...] | None = None
    effect: EffectName = "temporary"
    #: When each review item is due (see :mod:`dnd_ledger.domain.reviews`).
    deadline: DeadlineRule = DeadlineRule()


_DEFAULT_CARRIER: dict[str, CarrierRule] = {
    # No channel: the effect lands on the channel the message went out on (sms, or
    # whatsapp for whatsapp: addresses). 63014 exists only on WhatsApp.
    "30003": CarrierRule(effect="temporary", description="Unreachable handset"),
    "30005": CarrierRule(effect="temporary", description="Unknown destination"),
    "30006": CarrierRule(effect="temporary", description="Landline or unreachable carrier"),
    "30004": CarrierRule(effect="permanent", description="Message blocked by the recipient"),
    "21610": CarrierRule(effect="permanent", description="Recipient unsubscribed (replied STOP)"),
    "63014": CarrierRule(effect="permanent", channel=Channel.WHATSAPP, description="Blocked by the user on WhatsApp"),
}  # fmt: skip

_DEFAULT_EMAIL_FAILED_PERMANENT: dict[str, EmailRule] = {
    "bounce": EmailRule(effect="temporary", requires_suppression_removal=True),
    "generic": EmailRule(effect="temporary", requires_suppression_removal=True),
    "suppress-bounce": EmailRule(effect="temporary", requires_suppression_removal=True),
    "suppress-complaint": EmailRule(effect="permanent"),
    "suppress-unsubscribe": EmailRule(effect="permanent"),
}


class Policy(BaseModel):
    """A complete, validated policy. Every field has the built-in default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(default="builtin-2", min_length=1, max_length=64)
    opt_out_keywords: tuple[str, ...] = (
        "STOP",
        "UNSTOP",
        "UNSUBSCRIBE",
        "CANCEL",
        "STOPALL",
        "STOP ALL",
        "END",
        "QUIT",
        "REVOKE",
        "OPTOUT",
        "OPT OUT",
        "OPT-OUT",
    )
    opt_in_keywords: tuple[str, ...] = ("START",)
    review: ReviewRule = ReviewRule()
    carrier_codes: dict[str, CarrierRule] = Field(default_factory=lambda: dict(_DEFAULT_CARRIER))
    email_failed_permanent: dict[str, EmailRule] = Field(
        default_factory=lambda: dict(_DEFAULT_EMAIL_FAILED_PERMANENT)
    )
    #: Effect of a permanent failure whose reason is not in the map above.
    email_failed_permanent_other: EmailRule = EmailRule(effect="none")
    email_failed_temporary: EffectName = "none"
    email_complained: EffectName = "permanent"
    email_unsubscribed: EffectName = "permanent"
    #: Dated revocation-scope rules (see :mod:`dnd_ledger.domain.scope`).
    revocation_scope: tuple[ScopeRule, ...] = DEFAULT_SCOPE
    #: The one confirmation text after an opt-out (see :mod:`dnd_ledger.domain.confirmation`).
    confirmation: ConfirmationRule = ConfirmationRule()
    #: Quiet hours by region (see :mod:`dnd_ledger.domain.quiet_hours`).
    quiet_hours: tuple[QuietRule, ...] = DEFAULT_QUIET

    @field_validator("opt_out_keywords", "opt_in_keywords")
    @classmethod
    def _keywords_not_blank(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for word in value:
            if not normalise(word):
                raise ValueError(f"keyword {word!r} is empty after normalisation")
        return value

    @field_validator("carrier_codes")
    @classmethod
    def _codes_are_numbers(cls, value: dict[str, CarrierRule]) -> dict[str, CarrierRule]:
        for code in value:
            if not code.isdigit():
                raise ValueError(f"carrier code {code!r} is not a number")
        return value

    @field_validator("revocation_scope")
    @classmethod
    def _scope_names_unique(cls, value: tuple[ScopeRule, ...]) -> tuple[ScopeRule, ...]:
        check_rules(value)
        return value

    @model_validator(mode="after")
    def _keyword_sets_disjoint(self) -> Policy:
        overlap = self._opt_out & self._opt_in
        if overlap:
            raise ValueError(f"keywords both opt-out and opt-in: {sorted(overlap)}")
        return self

    # -- derived, computed once -------------------------------------------------
    @cached_property
    def _opt_out(self) -> frozenset[str]:
        return frozenset(normalise(w) for w in self.opt_out_keywords)

    @cached_property
    def _opt_in(self) -> frozenset[str]:
        return frozenset(normalise(w) for w in self.opt_in_keywords)

    @cached_property
    def _review(self) -> re.Pattern[str] | None:
        if not self.review.enabled:
            return None
        words = self.opt_out_keywords if self.review.words is None else self.review.words
        return phrase_pattern(words)

    @cached_property
    def digest(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @cached_property
    def stamp(self) -> str:
        """What each event records: the declared version and a content digest."""
        return f"{self.version}+{self.digest[:12]}"

    # -- pure classifiers -------------------------------------------------------
    def classify_inbound(self, body: str) -> InboundClass:
        return classify(body, self._opt_out, self._opt_in, self._review)

    def carrier_rule(self, code: int) -> CarrierRule | None:
        """The rule for a carrier error code; None means it is not the contact's doing."""
        rule = self.carrier_codes.get(str(code))
        if rule is None or rule.effect == "none":
            return None
        return rule

    def email_rule(self, signal: EmailSignal, reason: str | None) -> EmailRule:
        if signal is EmailSignal.FAILED_PERMANENT:
            key = (reason or "").strip().lower()
            return self.email_failed_permanent.get(key, self.email_failed_permanent_other)
        if signal is EmailSignal.FAILED_TEMPORARY:
            return EmailRule(effect=self.email_failed_temporary)
        if signal is EmailSignal.COMPLAINED:
            return EmailRule(effect=self.email_complained)
        return EmailRule(effect=self.email_unsubscribed)


DEFAULT_POLICY = Policy()


def merge_tables(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` applied: tables (dicts) merge key by key, at every
    depth; any other value (a string, a list, a number) replaces the one it names."""
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_tables(merged[key], value)
        else:
            merged[key] = value
    return merged


def policy_from(changes: dict[str, Any]) -> Policy:
    """The built-in policy with a policy file's content merged in."""
    return Policy.model_validate(merge_tables(DEFAULT_POLICY.model_dump(mode="json"), changes))


def load_policy(path: str | Path | None) -> Policy:
    """Load a policy file (``.toml`` or ``.json``); None gives the built-in default."""
    if path is None:
        return DEFAULT_POLICY
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise PolicyError(f"cannot read policy file {p}: {e.strerror}") from e
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise PolicyError(f"policy file {p} is not UTF-8 text: {bad_byte_at(raw, e)}") from None
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else tomllib.loads(text)
    except ValueError as e:
        raise PolicyError(f"policy file {p} is not valid {p.suffix or 'TOML'}: {e}") from e
    if not isinstance(data, dict):
        raise PolicyError(f"policy file {p}: (top level): must be a table of settings")
    try:
        return policy_from(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "(top level)"
        raise PolicyError(f"policy file {p}: {where}: {first['msg']}") from e
