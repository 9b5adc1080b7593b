"""is_held with the keys of stored events in a lookup (a compacted aggregate's case):
memory and the table together answer as memory alone did when it held every key."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dnd_ledger.domain.errors import IdempotencyKeyReused
from dnd_ledger.domain.keys import (
    NO_KEYS,
    NO_REQUESTS,
    StoredKeys,
    added,
    content_key,
    filter_with,
    is_held,
    may_hold,
    request_id,
    with_request,
)

OWNER = uuid4()
K1 = content_key("request:r1", "aaa")
K2 = content_key("request:r1", "bbb")
K3 = content_key("request:r1", "ccc")


class Table:
    """A keys table of one owner's stored keys (last key of each request id wins)."""

    def __init__(self, *keys: str) -> None:
        self.keys = set(keys)
        self.requests = {r: k for k in keys if (r := request_id(k)) is not None}
        self.asked: list[str] = []
        #: The owner's key filter: every key it recorded (memory's too, as an aggregate's).
        self.key_filter = 0
        for k in keys:
            self.key_filter = filter_with(self.key_filter, k)

    def holds(self, owner: UUID, key: str) -> bool:
        assert owner == OWNER
        self.asked.append(key)
        return key in self.keys

    def request_key(self, owner: UUID, request: str) -> str | None:
        assert owner == OWNER
        self.asked.append(request)
        return self.requests.get(request)


def _held(key: str, table: Table, *memory: str) -> bool:
    keys: set[str] = set()
    requests: dict[str, str] = {}
    for k in memory:
        keys.add(k)
        if (r := request_id(k)) is not None:
            requests[r] = k
    key_filter = table.key_filter
    for k in memory:
        key_filter = filter_with(key_filter, k)
    return is_held(key, keys, requests, "ada", StoredKeys(table, OWNER, key_filter))


def _all_in_memory(key: str, *keys: str) -> bool:
    requests = {r: k for k in keys if (r := request_id(k)) is not None}
    return is_held(key, set(keys), requests, "ada")


def test_a_key_only_in_the_table_is_held() -> None:
    assert _held("inbound:SM1", Table("inbound:SM1"))
    assert not _held("inbound:SM2", Table("inbound:SM1"))
    assert _held(K1, Table(K1))


def test_a_request_id_in_the_table_with_other_content_is_refused() -> None:
    with pytest.raises(IdempotencyKeyReused, match="'r1' was already used"):
        _held(K2, Table(K1))
    with pytest.raises(IdempotencyKeyReused):
        _all_in_memory(K2, K1)


def test_an_id_recorded_before_keys_covered_content_decides_alone() -> None:
    assert _held(K2, Table("request:r1"))
    assert _all_in_memory(K2, "request:r1")


def test_memory_is_newer_than_the_table() -> None:
    # The table has K1 (stored); memory has K2 (applied since), under the same id.
    table = Table(K1)
    assert _held(K2, table, K2)
    assert _held(K1, table, K2)  # still held: the key itself is stored
    with pytest.raises(IdempotencyKeyReused):
        _held(K3, table, K2)
    # The same answers as one aggregate holding every key in memory.
    assert _all_in_memory(K1, K1, K2)
    with pytest.raises(IdempotencyKeyReused):
        _all_in_memory(K3, K1, K2)


def test_a_new_key_asks_the_table_nothing_and_a_key_in_memory_neither() -> None:
    table = Table("inbound:SM9", content_key("request:r9", "zzz"))
    assert not _held(K1, table)
    assert not _held("inbound:SM1", table)
    assert table.asked == []  # the filter says neither was ever recorded
    table = Table()
    assert _held("inbound:SM1", table, "inbound:SM1")
    assert table.asked == []


def test_a_key_the_filter_may_hold_is_decided_by_the_table() -> None:
    table = Table()
    table.key_filter = (1 << 256) - 1  # every position set: "may hold" for every key
    assert not _held("inbound:SM1", table)
    assert not _held(K1, table)
    assert table.asked == ["inbound:SM1", "request:r1"]


@given(st.lists(st.text(min_size=1, max_size=40), max_size=60), st.text(max_size=12))
def test_the_filter_holds_every_key_and_request_id_recorded(keys: list[str], fp: str) -> None:
    recorded = [*keys, *(content_key(f"request:{k}", fp) for k in keys)]
    bits = 0
    for k in recorded:
        bits = filter_with(bits, k)
    assert bits < 1 << 256
    for k in recorded:
        assert may_hold(bits, k)
        # Another content under a recorded request id is never skipped: it must be
        # refused (or found) by the table.
        if (r := request_id(k)) is not None and r != k:
            assert may_hold(bits, content_key(r, fp + "other"))


def test_an_empty_filter_holds_nothing() -> None:
    assert not may_hold(0, "inbound:SM1")
    assert not may_hold(0, K1)


def test_a_failing_lookup_raises_and_never_reads_as_not_held() -> None:
    class Broken(Table):
        def holds(self, owner: UUID, key: str) -> bool:
            raise OSError("database gone")

        def request_key(self, owner: UUID, request: str) -> str | None:
            raise OSError("database gone")

    with pytest.raises(OSError, match="database gone"):
        _held("inbound:SM1", Broken("inbound:SM1"))
    with pytest.raises(OSError, match="database gone"):
        _held(K1, Broken(K1))


def test_the_shared_empty_keys_are_never_mutated() -> None:
    keys = added(NO_KEYS, "inbound:SM1")
    requests = with_request(NO_REQUESTS, K1)
    assert (keys, dict(requests)) == ({"inbound:SM1"}, {"request:r1": K1})
    assert (NO_KEYS, dict(NO_REQUESTS)) == (frozenset(), {})
    assert added(keys, "x") is keys  # a set of its own grows in place
    assert with_request(requests, K2) is requests
    assert requests["request:r1"] == K2
    with pytest.raises(TypeError):
        NO_REQUESTS["request:r1"] = K1  # type: ignore[index]
