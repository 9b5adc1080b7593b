"""The leaf encoding that bundles and the notary share: one canonical spelling, strictly read."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dnd_ledger.notary.leaf import (
    LEAF_FORMAT,
    Leaf,
    LeafError,
    canonical_originator,
    encode_leaf,
    stored_leaf,
)
from dnd_ledger.notary.merkle import leaf_hash

TOPICS = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=80)
IDS = st.integers(1, 2**63 - 1)


@given(nid=IDS, oid=st.uuids(), version=IDS, topic=TOPICS, state=st.binary(max_size=64))
def test_the_fast_encoding_is_exactly_the_canonical_json(
    nid: int, oid: uuid.UUID, version: int, topic: str, state: bytes
) -> None:
    digest = hashlib.sha256(state).hexdigest()
    canonical = json.dumps(
        [LEAF_FORMAT, nid, str(oid), version, topic, digest], separators=(",", ":"),
        ensure_ascii=True,
    ).encode()  # fmt: skip
    assert encode_leaf(nid, str(oid), version, topic, digest) == canonical
    for given_id in (oid, oid.hex, str(oid).upper()):
        assert stored_leaf(nid, given_id, version, topic, state) == (str(oid), digest, canonical)
    leaf = Leaf.of(nid, oid, version, topic, state)
    assert leaf.encode() == canonical
    assert leaf.hash() == leaf_hash(canonical)
    assert Leaf.from_json(json.loads(json.dumps(leaf.to_json()))) == leaf


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ([1, "0" * 32, 1, "t", "00" * 32], "not a canonical UUID"),
        ([1, "4CD80F50-B080-51E3-BA37-E3DF23CC1E70", 1, "t", "00" * 32], "not a canonical UUID"),
        ([0, str(uuid.UUID(int=1)), 1, "t", "00" * 32], "positive 64-bit integer"),
        ([1, str(uuid.UUID(int=1)), True, "t", "00" * 32], "positive 64-bit integer"),
        ([1, str(uuid.UUID(int=1)), 1, "t\n", "00" * 32], "printable ASCII"),
        ([1, str(uuid.UUID(int=1)), 1, "", "00" * 32], "printable ASCII"),
        ([1, str(uuid.UUID(int=1)), 1, "t", "AA" * 32], "lower-case hex"),
        ([1, str(uuid.UUID(int=1)), 1, "t", "00" * 31], "32 bytes"),
        ([1, str(uuid.UUID(int=1)), 1, "t"], "list of 5"),
    ],
)
def test_a_leaf_not_in_canonical_form_is_refused(value: list[object], error: str) -> None:
    with pytest.raises(LeafError, match=error):
        Leaf.from_json(value)


def test_originator_ids_are_spelled_one_way() -> None:
    u = uuid.UUID("4cd80f50-b080-51e3-ba37-e3df23cc1e70")
    assert canonical_originator(u) == canonical_originator(u.hex) == str(u)
    with pytest.raises(LeafError):
        canonical_originator("not-a-uuid")
    with pytest.raises(LeafError):
        stored_leaf(1, u, 1, "bad\ttopic", b"")
