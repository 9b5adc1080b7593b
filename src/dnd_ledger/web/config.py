"""The HTTP service's configuration: one pydantic-settings object, read from TOML.

The file is given by ``dnd-ledger serve --config FILE`` or ``DND_LEDGER_CONFIG``;
environment variables ``DND_LEDGER_<FIELD>`` (e.g. ``DND_LEDGER_PUBLIC_URL``)
override the file's top-level keys. Example::

    public_url = "https://ledger.example.com"
    [locations.loc-1]
    twilio_auth_token = "..."
    mailgun_signing_key = "key-..."
    [[tokens]]
    name = "sender-service"
    sha256 = "<hex SHA-256 of the bearer token>"
    roles = ["read", "write"]

Optional keys: per token ``locations = ["loc-1", ...]`` (default: every
location); ``session_secret`` (signs the audit page's session cookie; derived
from the file's secrets when absent); ``session_hours`` (8);
``mailgun_max_age_seconds`` (900: how far a Mailgun signature's timestamp may be
from now); ``max_batch`` (1000: triples per ``can-send:batch`` call). Limits:
``max_body_bytes`` (1 MB), ``max_webhook_bytes`` (64 KB), ``keep_alive_seconds``
(5), ``max_concurrency`` (1000), ``max_header_bytes`` (16 KB) and
``forwarded_allow_ips`` (the proxies whose ``X-Forwarded-*`` are believed; none).

Secrets are checked before the service starts: an empty one, a placeholder
(``<...>``, ``changeme``, the documented example values, one repeated
character...) or one shorter than 16 characters is refused, unless the service
runs with ``--dev``, where it is only a warning.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from dnd_ledger.delivery.subscriber import Subscribers
from dnd_ledger.domain.text import NotText, decode_text

Role = Literal["read", "write", "support"]
ROLES: tuple[Role, ...] = ("read", "write", "support")
MIN_SECRET = 16
_HEX64 = re.compile(r"[0-9a-f]{64}")
#: SHA-256 of the empty string: a token entry that any empty bearer would match.
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: Values published in the documentation and the issue: examples, never secrets.
KNOWN_EXAMPLES = ("0123456789abcdef", "deadbeef", "abcdefabcdef", "1234567890")
_PLACEHOLDER_WORDS = (
    "changeme",
    "change-me",
    "change_me",
    "placeholder",
    "replace",
    "your-",
    "your_",
    "example",
    "todo",
    "fixme",
    "dummy",
    "xxxx",
    "secret",
    "password",
)


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file and the keys."""


class LocationSecrets(BaseModel):
    """A location's webhook secrets; a provider left out has no webhook there."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    twilio_auth_token: SecretStr | None = None
    mailgun_signing_key: SecretStr | None = None


class ApiToken(BaseModel):
    """A bearer token, stored as the hex SHA-256 of the token, with its roles."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64)
    sha256: str
    roles: tuple[Role, ...] = Field(min_length=1)
    locations: tuple[str, ...] | None = None

    @field_validator("sha256")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.strip().lower()

    @property
    def usable(self) -> bool:
        """A well-formed hash (a placeholder is allowed under --dev but never matches)."""
        return bool(_HEX64.fullmatch(self.sha256))

    def allows(self, location_id: str) -> bool:
        return self.locations is None or location_id in self.locations


class WebConfig(BaseSettings):
    """What the HTTP service needs beyond the ledger's own settings."""

    model_config = SettingsConfigDict(
        env_prefix="DND_LEDGER_", extra="forbid", frozen=True, toml_file=None
    )

    public_url: str | None = None
    locations: dict[str, LocationSecrets] = Field(default_factory=dict)
    tokens: tuple[ApiToken, ...] = ()
    session_secret: SecretStr | None = None
    session_hours: float = Field(default=8.0, gt=0, le=24 * 30)
    mailgun_max_age_seconds: int = Field(default=900, ge=30, le=24 * 3600)
    max_batch: int = Field(default=1000, ge=1, le=100_000)
    # -- limits (see web/limits.py and serve_options) -----------------------------------
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    max_webhook_bytes: int = Field(default=64 * 1024, ge=1024, le=64 * 1024)
    keep_alive_seconds: int = Field(default=5, ge=1, le=300)
    max_concurrency: int = Field(default=1000, ge=1, le=100_000)
    max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    forwarded_allow_ips: tuple[str, ...] = ()
    # -- operations (see web/request_log.py, web/metrics.py, web/docs.py) ----------------
    #: One line per request on stderr: "json" (one object a line) or "text" (key=value).
    log_format: Literal["json", "text"] = "json"
    request_log: bool = True
    #: GET /metrics (Prometheus); with a token's SHA-256 here, only that bearer may read it.
    metrics: bool = True
    metrics_token_sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    #: /docs, /redoc and /openapi.json (assets served by the service itself).
    docs: bool = True
    subscribers: Subscribers = ()  # change-feed webhooks: see delivery/subscriber.py

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Arguments, then the environment, then the TOML file (when one is set).
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @field_validator("public_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = value.strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL, e.g. https://ledger.example.com")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query string or fragment")
        return url

    @field_validator("tokens")
    @classmethod
    def _unique(cls, tokens: tuple[ApiToken, ...]) -> tuple[ApiToken, ...]:
        names = [t.name for t in tokens]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"token names must be unique: {', '.join(dupes)}")
        hashes = [t.sha256 for t in tokens if t.usable]
        if len(hashes) != len(set(hashes)):
            raise ValueError("two tokens have the same sha256")
        return tokens

    # -- derived --------------------------------------------------------------------
    def serve_options(self) -> dict[str, Any]:
        """uvicorn's options from the limits: slow or many clients cannot hold it forever.

        ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are trusted only from
        ``forwarded_allow_ips`` (default: from nobody).
        """
        from dnd_ledger.web.http_protocol import NAME

        proxies = list(self.forwarded_allow_ips)
        return {
            "http": NAME,  # httptools with max_header_bytes applied, else h11
            "timeout_keep_alive": self.keep_alive_seconds,
            "limit_concurrency": self.max_concurrency,
            "h11_max_incomplete_event_size": self.max_header_bytes,
            "proxy_headers": bool(proxies),
            "forwarded_allow_ips": proxies or None,
        }

    def session_key(self) -> bytes:
        """The key that signs session cookies: ``session_secret``, or derived from the file.

        Derived from every secret in the configuration, so every worker process
        reading the same file agrees, and changing any secret signs everyone out.
        """
        if self.session_secret is not None:
            material = self.session_secret.get_secret_value()
        else:
            parts = [self.public_url or ""]
            for name in sorted(self.locations):
                loc = self.locations[name]
                for s in (loc.twilio_auth_token, loc.mailgun_signing_key):
                    parts.append(s.get_secret_value() if s is not None else "")
            parts += sorted(f"{t.name}:{t.sha256}" for t in self.tokens)
            material = "\n".join(parts)
        return hmac.new(b"dnd-ledger session key", material.encode(), hashlib.sha256).digest()


def secret_problem(value: str) -> str | None:
    """Why ``value`` is not a usable secret, or None when it is."""
    text = value.strip()
    if not text:
        return "is empty"
    low = text.lower()
    if "<" in text or ">" in text or "..." in text:
        return "is a placeholder"
    if any(w in low for w in _PLACEHOLDER_WORDS) or any(e in low for e in KNOWN_EXAMPLES):
        return "is a placeholder or a documented example value"
    if len(set(low.removeprefix("key-"))) <= 2:
        return "is a placeholder (one or two repeated characters)"
    if len(text) < MIN_SECRET:
        return f"is shorter than {MIN_SECRET} characters"
    return None


def secret_problems(config: WebConfig) -> list[str]:
    """Every empty, placeholder or weak secret in ``config``, one line each."""
    problems: list[str] = []
    for name, loc in sorted(config.locations.items()):
        for key in ("twilio_auth_token", "mailgun_signing_key"):
            secret: SecretStr | None = getattr(loc, key)
            if secret is None:
                continue
            why = secret_problem(secret.get_secret_value())
            if why:
                problems.append(f"locations.{name}.{key} {why}")
    for t in config.tokens:
        if not t.usable:
            problems.append(
                f"tokens '{t.name}': sha256 is not a hex SHA-256 (a placeholder?);"
                " compute it with: dnd-ledger web hash-token TOKEN"
            )
        elif t.sha256 == EMPTY_SHA256:
            problems.append(f"tokens '{t.name}': sha256 is the hash of an empty token")
    if config.session_secret is not None:
        why = secret_problem(config.session_secret.get_secret_value())
        if why:
            problems.append(f"session_secret {why}")
    return problems + subscriber_secret_problems(config)


def subscriber_secret_problems(config: WebConfig) -> list[str]:
    """Every placeholder or weak ``[[subscribers]]`` secret: a subscriber verifies its
    webhooks with it, so a documented example value would let anyone forge them."""
    found = []
    for sub in config.subscribers:
        why = secret_problem(sub.secret.get_secret_value())
        if why:
            found.append(f"subscribers '{sub.name}': secret {why}")
    return found


def config_warnings(config: WebConfig) -> list[str]:
    """What is allowed but probably not meant (the service still starts)."""
    warnings: list[str] = []
    if not config.tokens:
        warnings.append("no [[tokens]]: the API and the audit page refuse everyone")
    if not config.locations:
        warnings.append("no [locations.<id>]: every webhook is refused")
    if config.public_url and config.public_url.startswith("http://"):
        warnings.append(
            f"public_url {config.public_url} is not https: webhooks and tokens travel in clear"
        )
    return warnings


def load_config(path: str | Path | None, **overrides: Any) -> WebConfig:
    """Read the TOML file at ``path`` (None: environment and ``overrides`` only).

    Raises :class:`ConfigError` with one line per problem.
    """
    where = "configuration"
    cls: type[WebConfig] = WebConfig
    if path is not None:
        p = Path(path)
        where = str(p)
        try:
            tomllib.loads(decode_text(p.read_bytes(), f"config file {p}"))
        except FileNotFoundError:
            raise ConfigError(f"config file {p} does not exist") from None
        except NotText as e:
            raise ConfigError(str(e)) from None
        except OSError as e:
            raise ConfigError(f"cannot read config file {p}: {e}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{p} is not valid TOML: {e}") from None

        class FromFile(WebConfig):
            model_config = SettingsConfigDict(toml_file=p)

        cls = FromFile
    try:
        return cls(**overrides)
    except ValidationError as e:
        lines = [
            f"{'.'.join(str(part) for part in err['loc']) or '(top level)'}: {err['msg']}"
            for err in e.errors(include_url=False, include_input=False)
        ]
        raise ConfigError(f"{where}: " + "; ".join(lines)) from None
