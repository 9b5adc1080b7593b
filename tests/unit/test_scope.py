"""The revocation-scope rules as pure functions (no I/O)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from dnd_ledger.domain.policy import DEFAULT_POLICY, Policy
from dnd_ledger.domain.scope import REVOKE_ALL, ScopeRule, rule_in_force, scoped, start_reach
from dnd_ledger.domain.state import Effect, Op
from dnd_ledger.domain.values import Channel, DndKind

SMS, CALL, EMAIL = Channel.SMS, Channel.CALL, Channel.EMAIL
STOP = Effect(Op.BLOCK, (SMS,), DndKind.PERMANENT, code="STOP", message="opt-out keyword on sms",
              origin="ref")  # fmt: skip


def test_the_default_is_revoke_all_from_2027_01_31() -> None:
    assert DEFAULT_POLICY.revocation_scope == (REVOKE_ALL,)
    assert REVOKE_ALL.effective_from == date(2027, 1, 31)
    assert "64.1200(a)(10)" in REVOKE_ALL.citation


def test_rule_in_force_by_the_time_the_opt_out_occurred() -> None:
    rules = DEFAULT_POLICY.revocation_scope
    assert rule_in_force(rules, SMS, datetime(2027, 1, 30, 23, 59, tzinfo=UTC)) is None
    assert rule_in_force(rules, SMS, datetime(2027, 1, 31, tzinfo=UTC)) is REVOKE_ALL
    assert rule_in_force(rules, CALL, datetime(2027, 6, 1, tzinfo=UTC)) is REVOKE_ALL
    assert rule_in_force(rules, EMAIL, datetime(2027, 6, 1, tzinfo=UTC)) is None


def test_the_newest_rule_in_force_wins() -> None:
    narrow = ScopeRule(name="narrow-again", effective_from=date(2028, 1, 1),
                       opt_out_on=(SMS,), blocks=(SMS,))  # fmt: skip
    rules = (REVOKE_ALL, narrow)
    assert rule_in_force(rules, SMS, datetime(2027, 6, 1, tzinfo=UTC)) is REVOKE_ALL
    assert rule_in_force(rules, SMS, datetime(2028, 6, 1, tzinfo=UTC)) is narrow
    effect, detail = scoped(rules, STOP, datetime(2028, 6, 1, tzinfo=UTC), {})
    assert effect.channels == (SMS,)
    assert detail == {"scope_rule": "narrow-again"}


def test_scoped_widens_and_names_the_rule() -> None:
    effect, detail = scoped((REVOKE_ALL,), STOP, datetime(2027, 2, 1, tzinfo=UTC), {"a": 1})
    assert effect.channels == (SMS, CALL)
    assert "call blocked too by scope rule revoke-all" in (effect.message or "")
    assert detail == {"a": 1, "scope_rule": "revoke-all", "widened_to": ["call"]}
    same, untouched = scoped((REVOKE_ALL,), STOP, datetime(2027, 1, 1, tzinfo=UTC), {"a": 1})
    assert (same, untouched) == (STOP, {"a": 1})


def test_start_reaches_where_an_opt_out_could_have() -> None:
    assert start_reach((REVOKE_ALL,), SMS) == (CALL,)
    assert start_reach((REVOKE_ALL,), Channel.WHATSAPP) == ()
    assert start_reach((), SMS) == ()


def test_the_effect_keeps_its_reach_through_a_round_trip() -> None:
    start = Effect(Op.OPT_IN, (SMS,), code="START", origin="ref", also=(CALL,))
    assert start.to_dict()["also"] == ["call"]
    assert Effect.from_dict(start.to_dict()) == start
    assert "also" not in STOP.to_dict()


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"name": "x", "effective_from": "2027-01-31", "opt_out_on": ["sms"], "blocks": ["call"]},
         "always blocks its own channel"),
        ({"name": "", "effective_from": "2027-01-31", "opt_out_on": ["sms"], "blocks": ["sms"]},
         "at least 1 character"),
        ({"name": "x", "effective_from": "soon", "opt_out_on": ["sms"], "blocks": ["sms"]},
         "valid date"),
        ({"name": "x", "effective_from": "2027-01-31", "opt_out_on": ["fax"], "blocks": ["sms"]},
         "Input should be"),
    ],
)  # fmt: skip
def test_a_bad_scope_rule_is_refused(bad: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Policy.model_validate({"revocation_scope": [bad]})


def test_scope_rule_names_are_unique() -> None:
    rule = {"name": "x", "effective_from": "2027-01-31", "opt_out_on": ["sms"], "blocks": ["sms"]}
    with pytest.raises(ValueError, match="unique"):
        Policy.model_validate({"revocation_scope": [rule, rule]})
