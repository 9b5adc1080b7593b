"""File modes and opening a ledger from the command line (issue 13, items 8, 9 and 11).

The SQLite database holds the personal-data table, so it and its -wal/-shm are
0600; key files are 0600 even when replacing a looser file; directories made
for a key are 0700; loose files are warned about. A mistyped --db never creates
a ledger; on PostgreSQL a missing database or role fails at once with the
server's cause, and no message shows a URL's password.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from tests.conftest import PG_ADMIN_URL, require_postgres

from dnd_ledger.cli.main import cli as dnd_ledger_cli
from dnd_ledger.storage.persistence import parse_db_url

KEY = {"DND_LEDGER_PII_KEY": "00112233445566778899aabbccddeeff"}
SECRET = "hunter2-not-for-logs"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DND_LEDGER_DB", "DND_LEDGER_PII_KEY", "DND_LEDGER_PII_KEY_FILE",
                 "DND_LEDGER_SIGNING_KEY", "DND_LEDGER_POLICY"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(dnd_ledger_cli, list(args), env=env, catch_exceptions=False)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- item 8: file modes -------------------------------------------------------------------


def test_a_new_sqlite_ledger_and_its_wal_and_key_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask, which made them 0644
    try:
        db = tmp_path / "ledger.db"
        assert run("--db", str(db), "init").exit_code == 0
        assert (
            run("--db", str(db), "contacts", "add", "l", "c", "--phone", "+14155550100").exit_code
            == 0
        )
        assert mode(db) == 0o600
        assert mode(Path(f"{db}.pii-key")) == 0o600
        sidecars = [p for p in (Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]
        for p in sidecars:
            assert mode(p) == 0o600, p
    finally:
        os.umask(old)


def test_directories_made_for_the_pii_key_are_0700(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        key = tmp_path / "etc" / "dnd" / "pii.key"
        env = {"DND_LEDGER_PII_KEY_FILE": str(key)}
        assert run("--db", str(tmp_path / "l.db"), "init", env=env).exit_code == 0
        assert mode(key) == 0o600
        assert mode(key.parent) == 0o700
        assert mode(key.parent.parent) == 0o700
    finally:
        os.umask(old)


def test_keys_generate_force_writes_0600_over_a_loose_file(tmp_path: Path) -> None:
    key = tmp_path / "ledger.key"
    key.write_text("old")
    key.chmod(0o644)
    result = run("keys", "generate", "--out", str(key), "--force")
    assert result.exit_code == 0, result.output
    assert mode(key) == 0o600
    assert key.read_bytes() != b"old"


def test_loose_database_and_key_files_are_warned_about(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    assert run("--db", str(db), "init").exit_code == 0
    db.chmod(0o644)
    Path(f"{db}.pii-key").chmod(0o640)
    result = run("--db", str(db), "stats")
    assert result.exit_code == 0
    assert f"Warning: {db} is readable by others (mode 0644): chmod 600 {db}" in result.stderr
    assert f"Warning: {db}.pii-key is readable by others (mode 0640)" in result.stderr


# -- item 9: only init creates a ledger ------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [("status", "l", "c"), ("stats",), ("audit",), ("projections", "status"), ("verify",),
     ("contacts", "add", "l", "c")],
)  # fmt: skip
def test_a_mistyped_db_creates_nothing(tmp_path: Path, args: tuple[str, ...]) -> None:
    db = tmp_path / "nonexistent" / "dir" / "x.db"
    result = run("--db", str(db), *args)
    assert result.exit_code == 1
    assert result.stderr == f"Error: no ledger at sqlite:///{db}; create it with dnd-ledger init\n"
    assert not (tmp_path / "nonexistent").exists()


def test_demo_makes_its_own_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run("demo", "--db", "d.db").exit_code == 0
    assert (tmp_path / "d.db").is_file()


@pytest.mark.postgres
def test_postgres_missing_database_or_role_fails_fast_with_the_cause() -> None:
    require_postgres()
    base = PG_ADMIN_URL.rsplit("/", 1)[0].split("://", 1)[1].split("@", 1)[1]
    cases = {
        f"postgresql://postgres:{SECRET}@{base}/dnd_no_such_db_13": 'database "dnd_no_such_db_13" does not exist',
        f"postgresql://dnd_no_role_13:{SECRET}@{base}/postgres": 'role "dnd_no_role_13" does not exist',
    }  # fmt: skip
    for url, cause in cases.items():
        for command in (("init",), ("status", "l", "c")):
            result = run("--db", url, *command, env=KEY)
            assert result.exit_code == 1
            # The server's own words (before: "couldn't get a connection after 10.00 sec").
            assert cause in result.stderr, result.stderr
            assert SECRET not in result.stderr
            assert result.stderr.startswith("Error: cannot connect to postgresql://")


@pytest.mark.postgres
def test_postgres_database_without_a_ledger_is_refused(pg_url: str) -> None:
    result = run("--db", pg_url, "status", "l", "c", env=KEY)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: no ledger at {parse_db_url(pg_url).display}; create it with dnd-ledger init\n"
    )
    assert run("--db", pg_url, "init", env=KEY).exit_code == 0
    assert "is not registered" in run("--db", pg_url, "status", "l", "c", env=KEY).stderr


@pytest.mark.parametrize(
    "url",
    [f"postgresql://u:{SECRET}@h:99999/x", f"postgres://u:{SECRET}@h/", f"mysql://u:{SECRET}@h/x"],
)
def test_no_error_shows_a_urls_password(url: str) -> None:
    result = run("--db", url, "status", "l", "c", env=KEY)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert SECRET not in result.stderr
    assert "u:***@h" in result.stderr


# -- item 11: no personal data in errors -----------------------------------------------------


def test_refusals_name_the_field_not_the_address(tmp_path: Path) -> None:
    db = str(tmp_path / "l.db")
    run("--db", db, "init")
    phone = run("--db", db, "contacts", "add", "l", "c", "--phone", "+1415555XYZ")
    email = run("--db", db, "contacts", "add", "l", "c", "--email", "ada-at-example")
    assert phone.stderr.startswith("Error: phone number is not")
    assert "1415555" not in phone.stderr
    assert email.stderr == "Error: email address is not valid\n"
