"""One settings object: arguments, then the environment, then the service's file."""

from __future__ import annotations

from pathlib import Path

import pytest

from dnd_ledger.domain.errors import InvalidInput
from dnd_ledger.settings import ConfigError, Settings, load_config


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DND_LEDGER_DB", "from-env.db")
    monkeypatch.setenv("DND_LEDGER_SIGNING_KEY", "env.key")
    monkeypatch.setenv("DND_LEDGER_PUBLIC_URL", "https://env.example.com")


def test_settings_built_in_code_take_only_their_arguments() -> None:
    settings = Settings(db="given.db")
    assert (settings.db, settings.signing_key_file, settings.public_url) == ("given.db", None, None)


def test_from_env_puts_flags_over_the_environment() -> None:
    settings = Settings.from_env(db="flag.db", policy=None)
    assert settings.db == "flag.db"
    assert settings.signing_key_file == "env.key"
    assert settings.public_url == "https://env.example.com"


def test_an_empty_ledger_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DND_LEDGER_DB", "")
    assert Settings.from_env().db == "./dnd-ledger.db"


def test_a_bad_number_is_one_line_when_the_ledger_opens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DND_LEDGER_CHECKPOINT_EVERY", "0")
    settings = Settings.from_env(db="memory:")
    assert settings.checkpoint_every == 1000
    with pytest.raises(InvalidInput, match="DND_LEDGER_CHECKPOINT_EVERY must be a number"):
        settings.open()


def test_the_file_is_below_the_environment_and_holds_no_ledger_keys(tmp_path: Path) -> None:
    path = tmp_path / "ledger.toml"
    path.write_text('public_url = "https://file.example.com"\nmax_batch = 7\n')
    settings = load_config(path)
    assert (settings.public_url, settings.max_batch, settings.db) == (
        "https://env.example.com",
        7,
        "from-env.db",
    )
    path.write_text('db = "other.db"\n')
    with pytest.raises(ConfigError, match="db: Extra inputs are not permitted"):
        load_config(path)
