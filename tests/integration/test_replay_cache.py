"""The Mailgun replay cache lives in the database: one use per token, across restarts."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from tests.conftest import T0

from dnd_ledger.application import DndLedger
from dnd_ledger.providers.signatures import ReplayCache


def test_a_token_is_accepted_once(ledger: DndLedger) -> None:
    cache: ReplayCache = ledger.replay_cache
    assert cache.remember("tok-1", T0)
    assert not cache.remember("tok-1", T0 + timedelta(seconds=5))
    assert cache.remember("tok-2", T0)


def test_a_forgotten_token_is_accepted_again(ledger: DndLedger) -> None:
    assert ledger.replay_cache.remember("tok-1", T0)
    ledger.replay_cache.forget("tok-1")
    assert ledger.replay_cache.remember("tok-1", T0)


def test_tokens_survive_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "ledger.db")
    first = DndLedger(db, pii_key=b"k" * 32)
    assert first.replay_cache.remember("tok-1", T0)
    first.close()
    second = DndLedger(db, pii_key=b"k" * 32)
    assert not second.replay_cache.remember("tok-1", T0 + timedelta(minutes=1))
    second.close()


def test_tokens_older_than_the_retention_are_dropped(ledger: DndLedger) -> None:
    assert ledger.replay_cache.remember("tok-1", T0)
    later = T0 + ledger.replay_cache.retention + timedelta(seconds=1)
    assert ledger.replay_cache.remember("tok-2", later)
    assert ledger.replay_cache.remember("tok-1", later)
