"""The service's configuration file, its secret checks, and the serve/web commands' refusals."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from dnd_ledger.cli.main import cli
from dnd_ledger.providers.signatures import (
    InMemoryReplayCache,
    verify_mailgun_signature,
    verify_twilio_signature,
)
from dnd_ledger.settings import ConfigError, Settings, load_config
from dnd_ledger.web.app import create_app
from dnd_ledger.web.config import config_warnings, secret_problem, secret_problems
from tests.web.support import (
    MAILGUN_KEY,
    PUBLIC_URL,
    TWILIO_TOKEN,
    L,
    config_toml,
    sha256,
    write_config,
)

ISSUE_EXAMPLE = """\
public_url = "https://ledger.example.com"
[locations.loc-1]
twilio_auth_token = "0123456789abcdef0123456789abcdef"
mailgun_signing_key = "key-0123456789abcdef0123456789abcdef"
[[tokens]]
name = "sender-service"
sha256 = "<hex SHA-256 of the bearer token>"
roles = ["read", "write"]
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DND_LEDGER_PUBLIC_URL", "DND_LEDGER_CONFIG", "DND_LEDGER_DB",
                 "DND_LEDGER_POLICY", "DND_LEDGER_PII_KEY", "DND_LEDGER_PII_KEY_FILE"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def test_the_issue_example_loads_as_written(tmp_path: Path) -> None:
    path = tmp_path / "ledger.toml"
    path.write_text(ISSUE_EXAMPLE)
    config = load_config(path)
    assert config.public_url == "https://ledger.example.com"
    loc = config.locations["loc-1"]
    assert loc.twilio_auth_token is not None
    assert loc.twilio_auth_token.get_secret_value() == "0123456789abcdef0123456789abcdef"
    assert config.tokens[0].name == "sender-service"
    assert config.tokens[0].roles == ("read", "write")
    assert not config.tokens[0].usable
    # Its secrets are the documented examples and a placeholder: refused outside --dev.
    problems = secret_problems(config)
    assert any("sha256" in p and "placeholder" in p for p in problems)
    assert any("twilio_auth_token" in p for p in problems)
    assert "0123456789abcdef" not in " ".join(problems)  # never print a secret


def test_the_issue_example_is_refused_by_serve_outside_dev(tmp_path: Path) -> None:
    path = tmp_path / "ledger.toml"
    path.write_text(ISSUE_EXAMPLE)
    result = run("--db", str(tmp_path / "l.db"), "serve", "--config", str(path))
    assert result.exit_code == 1
    assert "refusing to start with unusable secrets" in result.output
    assert "--dev" in result.output
    assert "0123456789abcdef" not in result.output


def test_create_app_refuses_unusable_secrets_outside_dev(tmp_path: Path) -> None:
    from dnd_ledger.application import DndLedger

    path = tmp_path / "ledger.toml"
    path.write_text(ISSUE_EXAMPLE)
    ledger = DndLedger("memory:")
    try:
        with pytest.raises(ConfigError, match="unusable secrets"):
            create_app(ledger, load_config(path))
        create_app(ledger, load_config(path), dev=True)
    finally:
        ledger.close()


def test_a_good_file_has_no_problems(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    assert secret_problems(config) == []
    assert config_warnings(config) == []
    assert config.public_url == PUBLIC_URL


def test_the_environment_overrides_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DND_LEDGER_PUBLIC_URL", "https://proxy.example.test/ledger/")
    monkeypatch.setenv("DND_LEDGER_DB", "ignored.db")  # other settings' variables are no keys
    config = load_config(write_config(tmp_path))
    assert config.public_url == "https://proxy.example.test/ledger"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('public_url = "ftp://x"', "public_url: Value error, must be an http:// or https:// URL"),
        ('public_url = "https://x/?a=1"', "query string"),
        ("public_url = ", "not valid TOML"),
        ('publik_url = "https://x"', "publik_url: Extra inputs are not permitted"),
        ('[locations.l]\ntwilio_token = "x"', "locations.l.twilio_token: Extra inputs"),
        ('[[tokens]]\nname = "a"\nsha256 = "x"\nroles = ["admin"]', "tokens.0.roles.0"),
        ('[[tokens]]\nname = "a"\nsha256 = "x"\nroles = []', "tokens.0.roles"),
        (
            f'[[tokens]]\nname = "a"\nsha256 = "{sha256("x")}"\nroles = ["read"]\n'
            f'[[tokens]]\nname = "a"\nsha256 = "{sha256("y")}"\nroles = ["read"]',
            "token names must be unique: a",
        ),
        ("session_hours = 0", "session_hours"),
    ],
)
def test_bad_files_are_refused_with_the_key_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(path) in str(e.value)
    assert message in str(e.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("<your twilio auth token>", "placeholder"),
        ("changeme-changeme-changeme", "placeholder"),
        ("0123456789abcdef0123456789abcdef", "placeholder"),
        ("key-0123456789abcdef0123456789abcdef", "placeholder"),
        ("x" * 32, "placeholder"),
        ("key-" + "0" * 32, "placeholder"),
        ("4f1c2a", "shorter than 16"),
        ("your-mailgun-signing-key", "placeholder"),
    ],
)
def test_placeholder_and_weak_secrets(secret: str, problem: str) -> None:
    why = secret_problem(secret)
    assert why is not None
    assert problem in why


def test_real_looking_secrets_pass() -> None:
    assert secret_problem(TWILIO_TOKEN) is None
    assert secret_problem(MAILGUN_KEY) is None


def test_an_empty_secret_in_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.toml"
    path.write_text(config_toml().replace(f'"{TWILIO_TOKEN}"', '""'))
    problems = secret_problems(load_config(path))
    assert problems == [f"locations.{L}.twilio_auth_token is empty"]


def test_the_hash_of_an_empty_token_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.toml"
    path.write_text(
        f'public_url = "{PUBLIC_URL}"\n[[tokens]]\nname = "e"\nsha256 = "{sha256("")}"\n'
        'roles = ["read"]\n'
    )
    config = load_config(path)
    assert any("empty token" in p for p in secret_problems(config))
    assert any("no [locations" in w for w in config_warnings(config))


# -- serve: refusals before listening ---------------------------------------------------------


def test_serve_without_a_config_is_refused(tmp_path: Path) -> None:
    result = run("--db", str(tmp_path / "l.db"), "serve")
    assert result.exit_code == 1
    assert "pass --config FILE or set DND_LEDGER_CONFIG" in result.output


def test_serve_reads_the_config_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "ledger.toml"
    path.write_text(ISSUE_EXAMPLE)
    result = run("--db", str(tmp_path / "l.db"), "serve", env={"DND_LEDGER_CONFIG": str(path)})
    assert result.exit_code == 1
    assert "unusable secrets" in result.output


def test_serve_refuses_several_workers_on_sqlite(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = run("--db", str(tmp_path / "l.db"), "serve", "--config", str(config), "--workers", "2")
    assert result.exit_code == 1
    assert "--workers 2 needs PostgreSQL" in result.output


@pytest.mark.postgres
def test_serve_gives_slow_starting_workers_time_to_answer_the_health_check(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn restarts a worker that does not answer its supervisor within
    ``timeout_worker_healthcheck`` (5 s by default); a worker on a loaded machine that is
    still opening its ledger then never serves. ``serve --workers`` allows a minute."""
    from dnd_ledger.cli import web

    seen: list[Any] = []
    monkeypatch.setattr(web, "run_workers", seen.append)
    config = write_config(tmp_path)
    key_file = {"DND_LEDGER_PII_KEY_FILE": str(tmp_path / "pii.key")}
    assert run("--db", pg_url, "init", env=key_file).exit_code == 0
    # serve hands the workers its settings (and the metrics directory) in the
    # environment: put it back as it was, or later tests count metrics in that mode.
    saved = dict(os.environ)
    try:
        result = run("--db", pg_url, "serve", "--config", str(config), "--workers", "2",
                     env=key_file)  # fmt: skip
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert result.exit_code == 0, result.output
    (uvicorn_config,) = seen
    assert uvicorn_config.workers == 2
    assert uvicorn_config.timeout_worker_healthcheck == web.WORKER_HEALTHCHECK_SECONDS >= 30


def test_serve_names_a_bad_config_file(tmp_path: Path) -> None:
    path = tmp_path / "ledger.toml"
    path.write_text('public_url = "nope"\n')
    result = run("--db", str(tmp_path / "l.db"), "serve", "--config", str(path))
    assert result.exit_code == 1
    assert "public_url" in result.output


def test_serve_help_names_its_options() -> None:
    result = run("serve", "--help")
    assert result.exit_code == 0
    for option in ("--host", "--port", "--config", "--workers", "--dev"):
        assert option in result.output


# -- web helpers -------------------------------------------------------------------------------


def test_hash_token_prints_the_sha256() -> None:
    result = run("web", "hash-token", "s3cret-token")
    assert result.output.strip() == sha256("s3cret-token")


def test_sign_twilio_signs_over_the_public_url(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    form = "MessageSid=SM1&From=%2B14155550100&Body=STOP"
    path = f"/v1/locations/{L}/webhooks/twilio/inbound"
    result = run("web", "sign-twilio", "--config", str(config), L, path, form)
    assert result.exit_code == 0, result.output
    params = [("MessageSid", "SM1"), ("From", "+14155550100"), ("Body", "STOP")]
    assert verify_twilio_signature(TWILIO_TOKEN, PUBLIC_URL + path, params, result.output.strip())


def test_sign_twilio_needs_the_location_in_the_config(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = run("web", "sign-twilio", "--config", str(config), "nowhere", "/x", "a=b")
    assert result.exit_code == 1
    assert "no twilio_auth_token for location 'nowhere'" in result.output


def test_sign_mailgun_prints_a_signed_webhook(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    config = write_config(tmp_path)
    event = {"event": "failed", "severity": "permanent", "recipient": "a@b.c", "id": "e",
             "timestamp": 1}  # fmt: skip
    result = run(
        "web", "sign-mailgun", "--config", str(config), "--timestamp", "1700000000", L,
        json.dumps(event),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["event-data"] == event
    sig = body["signature"]
    verify_mailgun_signature(
        MAILGUN_KEY, sig["timestamp"], sig["token"], sig["signature"],
        now=datetime.fromtimestamp(1700000000, UTC), replay_cache=InMemoryReplayCache(),
    )  # fmt: skip


def test_sign_mailgun_refuses_what_is_not_an_object(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = run("web", "sign-mailgun", "--config", str(config), L, "[1]")
    assert result.exit_code == 1
    assert "JSON object" in result.output


def test_web_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    assert isinstance(config, Settings)
    with pytest.raises(ValueError, match="frozen"):
        config.public_url = "https://elsewhere"  # type: ignore[misc]


def test_the_worker_socket_is_marked_tcp_so_connections_get_nodelay() -> None:
    import socket

    from dnd_ledger.cli.web import as_tcp

    # Some uvicorn releases bind their listening socket with proto 0; asyncio then
    # skips TCP_NODELAY on accepted connections. as_tcp marks such a socket as TCP.
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0)
    raw.bind(("127.0.0.1", 0))
    raw.listen()
    assert raw.proto == 0
    sock = as_tcp(raw)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.get_inheritable()
        assert sock.getsockname()[0] == "127.0.0.1"
        assert as_tcp(sock) is sock  # already TCP: left as it is
    finally:
        sock.close()


def test_a_placeholder_subscriber_secret_keeps_the_service_from_starting(tmp_path: Path) -> None:
    from dnd_ledger.application import DndLedger

    path = write_config(tmp_path)
    path.write_text(
        path.read_text()
        + '[[subscribers]]\nname = "crm"\nurl = "http://127.0.0.1:9/"\nsecret = "changeme-changeme-1234"\n'
    )
    config = load_config(path)
    assert secret_problems(config) == [
        "subscribers 'crm': secret is a placeholder or a documented example value"
    ]
    ledger = DndLedger("memory:")
    try:
        with pytest.raises(ConfigError, match="subscribers 'crm'"):
            create_app(ledger, config)
    finally:
        ledger.close()
