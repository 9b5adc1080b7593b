"""is_held with the keys of stored events in a lookup (a compacted aggregate's case):
memory and the table together answer as memory alone did when it held every key."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from dnd_ledger.domain.errors import IdempotencyKeyReused
from dnd_ledger.domain.keys import (
    NO_KEYS,
    NO_REQUESTS,
    StoredKeys,
    added,
    content_key,
    is_held,
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
    return is_held(key, keys, requests, "ada", StoredKeys(table, OWNER))


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


def test_one_lookup_answers_a_new_request_and_none_a_key_in_memory() -> None:
    table = Table()
    assert not _held(K1, table)
    assert table.asked == ["request:r1"]
    table = Table()
    assert _held("inbound:SM1", table, "inbound:SM1")
    assert table.asked == []


def test_a_failing_lookup_raises_and_never_reads_as_not_held() -> None:
    class Broken(Table):
        def holds(self, owner: UUID, key: str) -> bool:
            raise OSError("database gone")

        def request_key(self, owner: UUID, request: str) -> str | None:
            raise OSError("database gone")

    with pytest.raises(OSError, match="database gone"):
        _held("inbound:SM1", Broken())
    with pytest.raises(OSError, match="database gone"):
        _held(K1, Broken())


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
