"""``dnd-ledger serve`` (the HTTP service) and ``dnd-ledger web ...`` helpers.

The helpers produce what a provider or a client would send, from the same
configuration the service reads: a token's SHA-256, a Twilio signature, a
signed Mailgun webhook body. They are for trying the service out and for
operators' checks; providers compute their own signatures.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import click

from dnd_ledger.cli.common import Ctx, ledger_errors, pass_ctx

CONFIG_HELP = "Service configuration (TOML). [env: DND_LEDGER_CONFIG]"

#: How long the supervisor waits for a worker's answer to its health check before it
#: restarts it (uvicorn's default is 5 s). A worker opens its ledger and brings the
#: views up to date before it answers; on a loaded machine that can take longer, and a
#: worker killed each time it starts never serves.
WORKER_HEALTHCHECK_SECONDS = 60


def _config(path: str | None, *, public_url: str | None = None) -> Any:
    from dnd_ledger.settings import ConfigError, load_config

    overrides = {"public_url": public_url} if public_url else {}
    try:
        return load_config(path, **overrides)
    except ConfigError as e:
        raise click.ClickException(str(e)) from e


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--config",
    "config_path",
    envvar="DND_LEDGER_CONFIG",
    type=click.Path(dir_okay=False),
    help=CONFIG_HELP,
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes (PostgreSQL only; SQLite is embedded: one process).",
)
@click.option(
    "--dev",
    is_flag=True,
    help="Development: allow placeholder secrets and a missing config (public URL = listen address).",
)
@click.option(
    "--access-log/--no-access-log",
    default=None,
    help="One log line per request on stderr (default: on; config key request_log).",
)
@click.option(
    "--log-format",
    type=click.Choice(["json", "text"]),
    default=None,
    help="The request log's format (default: json; config key log_format).",
)
@pass_ctx
@ledger_errors
def serve(
    c: Ctx, host: str, port: int, config_path: str | None, workers: int, dev: bool,
    access_log: bool | None, log_format: str | None,
) -> None:  # fmt: skip
    """Run the HTTP service: webhooks, the JSON API, the audit page (docs at /docs).

    \b
    Example:
      dnd-ledger --db ./ledger.db serve --config ledger.toml --port 8000
      dnd-ledger --db postgresql://ledger@db/ledger serve --config ledger.toml --workers 4
    """
    import uvicorn

    from dnd_ledger.settings import ConfigError
    from dnd_ledger.web.app import CONFIG_ENV, DEV_ENV, create_app
    from dnd_ledger.web.config import config_warnings, secret_problems, serve_options

    if config_path is None and not dev:
        raise click.ClickException(
            "no configuration: pass --config FILE or set DND_LEDGER_CONFIG "
            "(or --dev to try the service without one)"
        )
    listen_url = f"http://{host}:{port}"
    # Flags win over the file; worker processes read them from the environment.
    for key, value in (("REQUEST_LOG", access_log), ("LOG_FORMAT", log_format)):
        if value is not None:
            os.environ[f"DND_LEDGER_{key}"] = str(value).lower()
    config = _config(config_path)
    public_url = config.public_url or (listen_url if dev else None)
    if public_url is None:
        raise click.ClickException(
            f"{config_path}: public_url is not set: it is the base URL providers call"
        )
    problems = secret_problems(config)
    if problems and not dev:
        raise click.ClickException(
            f"{config_path}: refusing to start with unusable secrets "
            "(--dev runs anyway): " + "; ".join(problems)
        )
    for line in problems if dev else []:
        click.echo(f"Warning (--dev): {line}", err=True)
    for line in config_warnings(config):
        click.echo(f"Warning: {line}", err=True)
    database = c.settings.database
    if workers > 1 and database.engine != "postgres":
        raise click.ClickException(
            f"--workers {workers} needs PostgreSQL: SQLite is embedded, run one worker"
        )
    ledger = c.ledger  # opens (and creates) the store now: errors before listening
    click.echo(
        f"dnd-ledger serving {ledger.db.display} on {listen_url} "
        f"(public URL {public_url}, {workers} worker{'s' if workers > 1 else ''})",
        err=True,
    )
    # The service's own request log replaces uvicorn's access lines.
    log = {"access_log": False, "log_level": "info", **serve_options(config)}
    if workers == 1:
        try:
            app = create_app(ledger, config, dev=dev, public_url=public_url)
        except ConfigError as e:
            raise click.ClickException(str(e)) from e
        uvicorn.run(app, host=host, port=port, **log)
        return
    # Several processes: each worker builds its own app (and ledger) from the environment.
    c.close()
    os.environ.update(
        {
            "DND_LEDGER_DB": c.settings.db,
            CONFIG_ENV: str(Path(config_path).resolve()) if config_path else "",
            DEV_ENV: "1" if dev else "",
            "DND_LEDGER_PUBLIC_URL": public_url,
        }
    )
    if c.settings.policy:
        os.environ["DND_LEDGER_POLICY"] = str(Path(c.settings.policy).resolve())
    # Metrics from every worker, summed when scraped (prometheus-client's multi-process mode).
    metrics_dir = tempfile.mkdtemp(prefix="dnd-ledger-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    atexit.register(shutil.rmtree, metrics_dir, ignore_errors=True)
    run_workers(
        uvicorn.Config(
            "dnd_ledger.web.app:create_app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
            **log,
        )
    )


def run_workers(config: Any) -> None:
    """``uvicorn.run(..., workers=N)``, with TCP_NODELAY on every accepted connection.

    uvicorn's supervisor binds the listening socket itself with ``proto`` 0;
    accepted sockets inherit it, and asyncio sets TCP_NODELAY only on sockets
    whose ``proto`` is TCP. Without it, Nagle's algorithm and the client's
    delayed ACK add ~40 ms to every keep-alive request (uvicorn issue #3149).
    The one-process path is not affected. Here the socket is re-wrapped as TCP.
    """
    from uvicorn.supervisors import Multiprocess

    sock = as_tcp(config.bind_socket())
    with contextlib.suppress(KeyboardInterrupt):
        Multiprocess(config, sockets=[sock]).run()


def as_tcp(sock: socket.socket) -> socket.socket:
    """The same listening socket, marked IPPROTO_TCP so asyncio sets TCP_NODELAY."""
    if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto == 0:
        sock = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
        sock.set_inheritable(True)
    return sock


@click.group()
def web() -> None:
    """Helpers for the HTTP service: token hashes, signed test webhooks."""


@web.command("hash-token")
@click.argument("token")
def hash_token(token: str) -> None:
    """Print the hex SHA-256 of a bearer token (the sha256 of a [[tokens]] entry).

    Example: dnd-ledger web hash-token "$TOKEN"
    """
    from dnd_ledger.web.auth import hash_token as digest

    click.echo(digest(token))


def _location_secret(config: Any, location: str, key: str) -> str:
    loc = config.locations.get(location)
    secret = getattr(loc, key, None) if loc is not None else None
    if secret is None:
        raise click.ClickException(f"the configuration has no {key} for location {location!r}")
    value: str = secret.get_secret_value()
    return value


@web.command("sign-twilio")
@click.option("--config", "config_path", envvar="DND_LEDGER_CONFIG", help=CONFIG_HELP)
@click.option("--public-url", help="Base URL Twilio calls [default: the config's public_url].")
@click.argument("location")
@click.argument("path")
@click.argument("form")
def sign_twilio(
    config_path: str | None, public_url: str | None, location: str, path: str, form: str
) -> None:
    """Print the X-Twilio-Signature of a form body posted to public_url + PATH.

    FORM is the url-encoded body exactly as sent (a '+' in a phone number is %2B).

    \b
    Example:
      FORM='MessageSid=SM001&AccountSid=AC01&From=%2B14155550100&To=%2B14155550199&Body=STOP'
      dnd-ledger web sign-twilio loc-1 /v1/locations/loc-1/webhooks/twilio/inbound "$FORM"
    """
    from dnd_ledger.providers.signatures import compute_twilio_signature

    config = _config(config_path, public_url=public_url)
    if not config.public_url:
        raise click.ClickException("no public_url: set it in the config or pass --public-url")
    if not path.startswith("/"):
        raise click.UsageError("PATH must start with /, e.g. /v1/locations/loc-1/webhooks/...")
    token = _location_secret(config, location, "twilio_auth_token")
    pairs = parse_qsl(form, keep_blank_values=True)
    click.echo(compute_twilio_signature(token, config.public_url + path, pairs))


@web.command("sign-mailgun")
@click.option("--config", "config_path", envvar="DND_LEDGER_CONFIG", help=CONFIG_HELP)
@click.option("--token", "token", help="Signature token [default: a fresh random one].")
@click.option("--timestamp", type=int, help="Signed Unix time [default: now].")
@click.argument("location")
@click.argument("event_data", default="-")
def sign_mailgun(
    config_path: str | None, token: str | None, timestamp: int | None, location: str,
    event_data: str,
) -> None:  # fmt: skip
    """Print a signed Mailgun webhook body for EVENT_DATA (JSON text, or - for stdin).

    \b
    Example:
      dnd-ledger web sign-mailgun loc-1 '{"event": "failed", "severity": "permanent",
        "reason": "bounce", "recipient": "ada@example.com", "id": "ev-1",
        "timestamp": 1700000000}' > webhook.json
    """
    from dnd_ledger.providers.signatures import compute_mailgun_signature

    config = _config(config_path)
    key = _location_secret(config, location, "mailgun_signing_key")
    text = sys.stdin.read() if event_data == "-" else event_data
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise click.ClickException(f"EVENT_DATA is not JSON: {e}") from e
    if not isinstance(data, dict):
        raise click.ClickException("EVENT_DATA must be a JSON object")
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    tok = token or secrets.token_hex(25)
    signature = {
        "timestamp": stamp,
        "token": tok,
        "signature": compute_mailgun_signature(key, stamp, tok),
    }
    click.echo(json.dumps({"signature": signature, "event-data": data}))
