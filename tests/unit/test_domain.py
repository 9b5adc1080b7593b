"""The pure domain: keyword normalisation, the policy as data, the fold, decisions. No I/O."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dnd_ledger.domain.decide import decide
from dnd_ledger.domain.keywords import normalise
from dnd_ledger.domain.policy import DEFAULT_POLICY, Policy, PolicyError, load_policy
from dnd_ledger.domain.state import CONTACT_ORIGIN, Effect, Entry, Op, fold, overall
from dnd_ledger.domain.values import (
    ALL_CHANNELS,
    Channel,
    Direction,
    DndKind,
    EmailSignal,
    InboundClass,
    Mode,
    Overall,
)

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class TestKeywords:
    @pytest.mark.parametrize(
        "body",
        ["  stop. ", "Stop!", "\uff33\uff34\uff2f\uff30", "STOP", "stop\n", "¡STOP!", "🛑 stop 🛑"],
    )
    def test_opt_out_keyword_matches_after_normalisation(self, body: str) -> None:
        assert DEFAULT_POLICY.classify_inbound(body) is InboundClass.OPT_OUT

    @pytest.mark.parametrize(
        "word", ["STOP", "UNSTOP", "UNSUBSCRIBE", "CANCEL", "STOPALL", "STOP ALL", "END", "QUIT",
                 "REVOKE", "OPTOUT", "OPT OUT", "OPT-OUT"],
    )  # fmt: skip
    def test_every_default_opt_out_word_is_an_opt_out(self, word: str) -> None:
        assert DEFAULT_POLICY.classify_inbound(word.lower()) is InboundClass.OPT_OUT

    def test_inner_whitespace_is_collapsed(self) -> None:
        assert normalise("  Opt \t  OUT  ") == "opt out"
        assert DEFAULT_POLICY.classify_inbound("opt   out") is InboundClass.OPT_OUT

    @pytest.mark.parametrize("body", ["start", "Start.", "\uff33\uff34\uff21\uff32\uff34"])
    def test_start_is_the_opt_in_keyword(self, body: str) -> None:
        assert DEFAULT_POLICY.classify_inbound(body) is InboundClass.OPT_IN

    @pytest.mark.parametrize(
        "body",
        ["stop please", "please stop texting me", "Can you STOP?? thanks", "I want to opt out now",
         "please QUIT texting me", "I'll cancel my appointment", "the end of texts"],
    )  # fmt: skip
    def test_longer_message_with_an_opt_out_word_is_a_suspected_revocation(self, body: str) -> None:
        assert DEFAULT_POLICY.classify_inbound(body) is InboundClass.SUSPECTED_REVOCATION

    @pytest.mark.parametrize(
        "body", ["see you at 5", "unstoppable", "the bus stops here", "it's the ending", "quitting"]
    )
    def test_ordinary_messages_are_just_messages(self, body: str) -> None:
        assert DEFAULT_POLICY.classify_inbound(body) is InboundClass.MESSAGE

    def test_unstop_stays_an_opt_out_by_default_the_safe_side(self) -> None:
        assert DEFAULT_POLICY.classify_inbound("UNSTOP") is InboundClass.OPT_OUT

    @given(st.text(max_size=200))
    def test_classification_never_fails_on_any_text(self, body: str) -> None:
        assert DEFAULT_POLICY.classify_inbound(body) in InboundClass


class TestPolicy:
    def test_defaults_map_every_carrier_code_of_the_design(self) -> None:
        expected = {"30003": "temporary", "30005": "temporary", "30006": "temporary",
                    "30004": "permanent", "21610": "permanent", "63014": "permanent"}  # fmt: skip
        assert {k: v.effect for k, v in DEFAULT_POLICY.carrier_codes.items()} == expected
        assert DEFAULT_POLICY.carrier_codes["63014"].channel is Channel.WHATSAPP

    @pytest.mark.parametrize("code", [30007, 30032, 30034, 30035, 30450, 12345])
    def test_sender_side_codes_have_no_rule(self, code: int) -> None:
        assert DEFAULT_POLICY.carrier_rule(code) is None

    def test_email_rules_follow_the_design_table(self) -> None:
        rule = DEFAULT_POLICY.email_rule
        assert rule(EmailSignal.FAILED_PERMANENT, "bounce").effect == "temporary"
        assert rule(EmailSignal.FAILED_PERMANENT, "bounce").requires_suppression_removal
        assert rule(EmailSignal.FAILED_PERMANENT, "suppress-complaint").effect == "permanent"
        assert rule(EmailSignal.FAILED_TEMPORARY, "bounce").effect == "none"
        assert rule(EmailSignal.COMPLAINED, None).effect == "permanent"
        assert rule(EmailSignal.UNSUBSCRIBED, None).effect == "permanent"

    def test_a_policy_file_changes_only_what_it_names(self, tmp_path: Path) -> None:
        path = tmp_path / "p.toml"
        path.write_text('version = "ops-1"\nopt_in_keywords = ["START", "UNSTOP"]\n'
                        'opt_out_keywords = ["STOP"]\n[carrier_codes.30008]\neffect = "temporary"\n')  # fmt: skip
        policy = load_policy(path)
        assert policy.classify_inbound("unstop") is InboundClass.OPT_IN
        assert policy.carrier_rule(30008) is not None
        assert policy.carrier_rule(30004) is not None  # tables merge with the defaults
        assert policy.stamp.startswith("ops-1+")

    def test_a_json_policy_file_works_too(self, tmp_path: Path) -> None:
        path = tmp_path / "p.json"
        path.write_text('{"version": "j-1", "review": {"enabled": false}}')
        policy = load_policy(path)
        assert policy.classify_inbound("please stop") is InboundClass.MESSAGE

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ('opt_in_keywords = ["STOP"]', "both opt-out and opt-in"),
            ("surprise = 1", "surprise"),
            ('[carrier_codes.abc]\neffect = "temporary"', "not a number"),
            ('[carrier_codes.30008]\neffect = "maybe"', "carrier_codes"),
            ("version = ", "not valid"),
        ],
    )
    def test_an_invalid_policy_file_is_refused_with_a_clear_error(
        self, tmp_path: Path, text: str, message: str
    ) -> None:
        path = tmp_path / "p.toml"
        path.write_text(text)
        with pytest.raises(PolicyError, match=message):
            load_policy(path)

    def test_the_stamp_changes_when_the_content_does(self) -> None:
        assert Policy().stamp == DEFAULT_POLICY.stamp
        assert Policy(opt_in_keywords=("START", "YES")).stamp != DEFAULT_POLICY.stamp


def entry(minutes: int, seq: int, effect: Effect, recorded: int | None = None) -> Entry:
    return Entry(
        occurred_at=T0 + timedelta(minutes=minutes),
        recorded_at=T0 + timedelta(minutes=recorded if recorded is not None else seq),
        seq=seq, event="E", event_id=f"x:{seq}", effect=effect,
    )  # fmt: skip


SMS = (Channel.SMS,)
STOP = Effect(Op.BLOCK, SMS, DndKind.PERMANENT, "STOP", origin="ph_a")
TEMP = Effect(Op.BLOCK, SMS, DndKind.ACTIVE, "30003", origin="ph_a")
CLEAR = Effect(Op.CLEAR_TEMPORARY, SMS)
START_A = Effect(Op.OPT_IN, SMS, origin="ph_a")
START_B = Effect(Op.OPT_IN, SMS, origin="ph_b")
SUPPORT = Effect(Op.CLEAR_ALL, SMS)
USER_SET = Effect(Op.BLOCK, SMS, DndKind.ACTIVE, "user", origin=CONTACT_ORIGIN)
BOUNCE = Effect(
    Op.BLOCK, (Channel.EMAIL,), DndKind.ACTIVE, "bounce", origin="em_a", suppression=True
)
EFFECTS = [STOP, TEMP, CLEAR, START_A, START_B, SUPPORT, USER_SET, BOUNCE]


class TestFold:
    def test_a_users_clear_removes_temporary_dnd_only(self) -> None:
        state = fold([entry(0, 1, STOP), entry(1, 2, USER_SET), entry(2, 3, CLEAR)])
        assert state.channel(Channel.SMS).status is DndKind.PERMANENT
        assert not [b for b in state.blocks[Channel.SMS] if b.level is DndKind.ACTIVE]

    def test_start_lifts_only_its_own_addresses_permanent_dnd(self) -> None:
        assert (
            fold([entry(0, 1, STOP), entry(1, 2, START_B)]).channel(Channel.SMS).status
            is DndKind.PERMANENT
        )
        assert (
            fold([entry(0, 1, STOP), entry(1, 2, START_A)]).channel(Channel.SMS).status
            is DndKind.INACTIVE
        )

    def test_support_opt_in_lifts_everything(self) -> None:
        state = fold(
            [entry(0, 1, STOP), entry(1, 2, TEMP), entry(2, 3, USER_SET), entry(3, 4, SUPPORT)]
        )
        assert state.channel(Channel.SMS).status is DndKind.INACTIVE

    def test_unattested_clear_leaves_a_suppression(self) -> None:
        email_clear = Effect(Op.CLEAR_TEMPORARY, (Channel.EMAIL,))
        attested = Effect(Op.CLEAR_TEMPORARY, (Channel.EMAIL,), attested=True)
        assert (
            fold([entry(0, 1, BOUNCE), entry(1, 2, email_clear)]).channel(Channel.EMAIL).status
            is DndKind.ACTIVE
        )
        assert (
            fold([entry(0, 1, BOUNCE), entry(1, 2, attested)]).channel(Channel.EMAIL).status
            is DndKind.INACTIVE
        )

    def test_since_is_when_the_channel_first_became_dnd(self) -> None:
        state = fold([entry(5, 1, TEMP), entry(9, 2, TEMP)])
        assert state.channel(Channel.SMS).since == T0 + timedelta(minutes=5)

    def test_as_of_and_known_at_filter_the_two_timelines(self) -> None:
        late_stop = entry(10, 2, STOP, recorded=60)
        entries = [entry(0, 1, TEMP), late_stop]
        assert (
            fold(entries, as_of=T0 + timedelta(minutes=5)).channel(Channel.SMS).status
            is DndKind.ACTIVE
        )
        assert (
            fold(entries, as_of=T0 + timedelta(minutes=30)).channel(Channel.SMS).status
            is DndKind.PERMANENT
        )
        then = T0 + timedelta(minutes=30)
        assert (
            fold(entries, as_of=then, known_at=then).channel(Channel.SMS).status is DndKind.ACTIVE
        )

    @settings(max_examples=200)
    @given(
        st.lists(st.tuples(st.integers(0, 20), st.sampled_from(EFFECTS)), max_size=25), st.randoms()
    )
    def test_the_fold_does_not_depend_on_arrival_order(
        self, items: list[tuple[int, Effect]], rnd: random.Random
    ) -> None:
        entries = [entry(m, i + 1, eff) for i, (m, eff) in enumerate(items)]
        shuffled = entries[:]
        rnd.shuffle(shuffled)
        assert fold(shuffled).channels() == fold(entries).channels()


class TestDecide:
    def test_outbound_is_blocked_on_a_dnd_channel_in_both_modes(self) -> None:
        channels = fold([entry(0, 1, STOP)]).channels()
        for mode in Mode:
            d = decide(channels, Channel.SMS, Direction.OUTBOUND, mode)
            assert not d.allowed
            assert d.rule == "outbound.dnd-blocks-all"
        assert decide(channels, Channel.EMAIL).allowed

    def test_inbound_is_gated_only_when_all_channels_are_dnd(self) -> None:
        all_on = Effect(Op.BLOCK, ALL_CHANNELS, DndKind.ACTIVE, "user")
        channels = fold([entry(0, 1, all_on)]).channels()
        assert overall(channels) is Overall.ON
        assert decide(channels, Channel.CALL, Direction.INBOUND).rule == "inbound.call-rejected"
        assert (
            decide(channels, Channel.SMS, Direction.INBOUND).rule
            == "inbound.blocked-at-system-level"
        )
        partial = fold([entry(0, 1, STOP)]).channels()
        assert decide(partial, Channel.CALL, Direction.INBOUND).allowed
