"""``DND_LEDGER_PG_POOL``: the number of reading connections a process may hold."""

from __future__ import annotations

import pytest

from dnd_ledger.domain.errors import InvalidInput
from dnd_ledger.pg_reads import DEFAULT_POOL, POOL_ENV, pool_size


def test_unset_or_blank_is_the_default() -> None:
    assert pool_size({}) == DEFAULT_POOL == 8
    assert pool_size({POOL_ENV: " "}) == DEFAULT_POOL


def test_a_whole_number_is_taken() -> None:
    assert pool_size({POOL_ENV: "3"}) == 3
    assert pool_size({POOL_ENV: " 20 "}) == 20


@pytest.mark.parametrize("raw", ["0", "-1", "2.5", "many", "1001"])
def test_anything_else_is_refused_naming_the_setting(raw: str) -> None:
    with pytest.raises(InvalidInput, match=POOL_ENV):
        pool_size({POOL_ENV: raw})
