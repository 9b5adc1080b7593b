"""Policy files merge with the built-in policy key by key; keyword edges (issue 12). No I/O
beyond the policy files a test writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dnd_ledger.domain.keywords import normalise
from dnd_ledger.domain.policy import DEFAULT_POLICY, PolicyError, load_policy, merge_tables
from dnd_ledger.domain.values import Channel, EmailSignal, InboundClass


def test_tables_merge_at_every_depth_and_other_values_replace() -> None:
    base = {"a": {"x": {"p": 1, "q": 2}, "y": 3}, "list": [1, 2], "n": 1, "new_table": {"k": 1}}
    changes = {"a": {"x": {"q": 20}, "z": 4}, "list": [9], "new_table": {"j": 2}, "added": {"m": 1}}
    assert merge_tables(base, changes) == {
        "a": {"x": {"p": 1, "q": 20}, "y": 3, "z": 4},
        "list": [9],
        "n": 1,
        "new_table": {"k": 1, "j": 2},
        "added": {"m": 1},
    }
    assert base["a"] == {"x": {"p": 1, "q": 2}, "y": 3}  # the defaults are not touched


def test_a_json_policy_merges_the_same_way(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"email_failed_permanent": {"old": {"effect": "temporary"}}}))
    policy = load_policy(path)
    assert (
        policy.email_rule(EmailSignal.FAILED_PERMANENT, "suppress-complaint").effect == "permanent"
    )
    assert policy.email_rule(EmailSignal.FAILED_PERMANENT, "old").effect == "temporary"


def test_changing_one_field_of_a_built_in_code_keeps_its_other_fields(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[carrier_codes.63014]\neffect = "temporary"\n')
    rule = load_policy(path).carrier_codes["63014"]
    assert (rule.effect, rule.channel) == ("temporary", Channel.WHATSAPP)
    assert rule.description == DEFAULT_POLICY.carrier_codes["63014"].description


def test_a_policy_file_that_is_not_a_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text("[1, 2]")
    with pytest.raises(PolicyError, match="must be a table"):
        load_policy(path)


def test_the_review_list_defaults_to_every_opt_out_keyword_and_can_be_narrowed(
    tmp_path: Path,
) -> None:
    for word in DEFAULT_POLICY.opt_out_keywords:
        body = f"well {word.lower()} it please"
        assert DEFAULT_POLICY.classify_inbound(body) is InboundClass.SUSPECTED_REVOCATION, word
    path = tmp_path / "p.toml"
    path.write_text('[review]\nwords = ["stop"]\n')
    narrowed = load_policy(path)
    assert narrowed.classify_inbound("please quit texting") is InboundClass.MESSAGE
    assert narrowed.classify_inbound("please stop texting") is InboundClass.SUSPECTED_REVOCATION


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("STOP ❤️", "stop"),  # U+2764 U+FE0F: the variation selector goes with its heart
        ("STOP \u2764\ufe0f\u200d\U0001f525", "stop"),  # heart on fire: a ZWJ sequence
        ("\ufe0fSTOP", "stop"),  # a mark with nothing before it
        ("STOP 👋🏿", "stop"),  # skin-tone modifier
        ("STOP 1️⃣", "stop"),  # a keycap emoji is a symbol
        ("café", "café"),
        ("नमस्ते", "नमस्ते"),  # a word ending in a combining vowel sign keeps it
    ],
)
def test_marks_at_the_edges_go_with_the_character_they_attach_to(body: str, expected: str) -> None:
    assert normalise(body) == expected
