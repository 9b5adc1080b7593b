"""One settings object for the CLI, the library and the service, and the one place that
wires the ledger.

Sources, first wins: keyword arguments (the CLI's flags), the ``DND_LEDGER_<NAME>``
environment variables, the service's TOML file, the defaults. ``Settings(...)`` takes
only its arguments; ``Settings.from_env(...)`` adds the environment;
``load_config(FILE, ...)`` adds the environment and the file.

The ledger: ``db`` (``DND_LEDGER_DB``: a path, ``sqlite:///path`` or
``postgresql://...``), ``policy`` (``DND_LEDGER_POLICY``, TOML or JSON; default: the
built-in policy), ``pii_key`` / ``pii_key_file`` (``DND_LEDGER_PII_KEY``, hex /
``DND_LEDGER_PII_KEY_FILE``; for SQLite the default is a key file beside the database,
``<db>.pii-key``, created on first use), ``signing_key_file`` (``DND_LEDGER_SIGNING_KEY``,
the notary's Ed25519 key file; without it checkpoints are unsigned), ``checkpoint_every``
/ ``checkpoint_interval`` (events, default 1000 / seconds, default 60), ``cache_entries``
(how many contacts and addresses the aggregate cache holds, default 25,000),
``sqlite_cache_mib`` (database pages each SQLite connection keeps in memory, default 32).
These come from flags and the environment only, never from the service's file; an empty
variable counts as unset, and a bad number is reported, as one line, by :meth:`open`.

The service: the TOML file given by ``dnd-ledger serve --config FILE`` or
``DND_LEDGER_CONFIG``, whose top-level keys the environment overrides (e.g.
``DND_LEDGER_PUBLIC_URL``). Example::

    public_url = "https://ledger.example.com"
    [locations.loc-1]
    twilio_auth_token = "..."
    mailgun_signing_key = "key-..."
    [[tokens]]
    name = "sender-service"
    sha256 = "<hex SHA-256 of the bearer token>"
    roles = ["read", "write"]

Optional keys: per token ``locations = ["loc-1", ...]`` (default: every location);
``session_secret`` (signs the audit page's session cookie; derived from the file's
secrets when absent); ``session_hours`` (8); ``mailgun_max_age_seconds`` (900: how far a
Mailgun signature's timestamp may be from now); ``max_batch`` (1000: triples per
``can-send:batch`` call). Limits: ``max_body_bytes`` (1 MB), ``max_webhook_bytes``
(64 KB), ``keep_alive_seconds`` (5), ``max_concurrency`` (1000), ``max_header_bytes``
(16 KB) and ``forwarded_allow_ips`` (the proxies whose ``X-Forwarded-*`` are believed;
none). Secrets are checked before the service starts (``web/config.py``).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from dnd_ledger.application import DndLedger
from dnd_ledger.delivery.subscriber import Subscribers
from dnd_ledger.domain.errors import InvalidInput
from dnd_ledger.domain.policy import Policy, load_policy
from dnd_ledger.domain.text import NotText, decode_text
from dnd_ledger.notary.notary import DEFAULT_EVERY, DEFAULT_INTERVAL
from dnd_ledger.notary.signed_note import NoteError, SigningKey, load_private_key
from dnd_ledger.storage.cache import DEFAULT_ENTRIES
from dnd_ledger.storage.persistence import Database, parse_db_url
from dnd_ledger.storage.pii import load_or_create_key
from dnd_ledger.storage.sqlite_store import DEFAULT_CACHE_MIB, MAX_CACHE_MIB

DEFAULT_DB = "./dnd-ledger.db"
Role = Literal["read", "write", "support"]
ROLES: tuple[Role, ...] = ("read", "write", "support")
_HEX64 = re.compile(r"[0-9a-f]{64}")
#: The ledger's fields, by their input names (flags and the environment only, not the file).
LEDGER_KEYS = frozenset(
    {"db", "policy", "pii_key", "pii_key_file", "DND_LEDGER_SIGNING_KEY"}
    | {"checkpoint_every", "checkpoint_interval", "cache_entries", "sqlite_cache_mib"}
)
_NUMBERS = {
    "checkpoint_every": 1, "checkpoint_interval": 0, "cache_entries": 0, "sqlite_cache_mib": 0,
}  # fmt: skip
#: The most of a number field, where there is one.
_MOST = {"sqlite_cache_mib": MAX_CACHE_MIB}


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


class _Environment(EnvSettingsSource):
    """``DND_LEDGER_<NAME>``; an empty ledger variable counts as unset, like a flag left out."""

    def __call__(self) -> dict[str, Any]:
        found = super().__call__()
        return {k: v for k, v in found.items() if not (k in LEDGER_KEYS and v == "")}


class Settings(BaseSettings):
    """Where the ledger lives, what it runs with, and what the HTTP service needs."""

    model_config = SettingsConfigDict(
        env_prefix="DND_LEDGER_", extra="forbid", frozen=True, toml_file=None
    )
    reads_environment: ClassVar[bool] = False

    # -- the ledger (flags and the environment) ------------------------------------------
    db: str = DEFAULT_DB
    policy: str | None = None
    pii_key: str | None = None
    pii_key_file: str | None = None
    signing_key_file: str | None = Field(None, validation_alias="DND_LEDGER_SIGNING_KEY")
    checkpoint_every: int = Field(DEFAULT_EVERY, ge=1)
    checkpoint_interval: float = Field(DEFAULT_INTERVAL, ge=0, allow_inf_nan=False)
    cache_entries: int = Field(DEFAULT_ENTRIES, ge=0)
    sqlite_cache_mib: int = Field(DEFAULT_CACHE_MIB, ge=0, le=MAX_CACHE_MIB)
    _env_problem: str | None = PrivateAttr(default=None)  # reported by open(), as one line
    # -- the service (its TOML file and the environment) ---------------------------------
    public_url: str | None = None
    locations: dict[str, LocationSecrets] = Field(default_factory=dict)
    tokens: tuple[ApiToken, ...] = ()
    session_secret: SecretStr | None = None
    session_hours: float = Field(default=8.0, gt=0, le=24 * 30)
    mailgun_max_age_seconds: int = Field(default=900, ge=30, le=24 * 3600)
    max_batch: int = Field(default=1000, ge=1, le=100_000)
    # limits (see web/limits.py and web/config.py's serve_options)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    max_webhook_bytes: int = Field(default=64 * 1024, ge=1024, le=64 * 1024)
    keep_alive_seconds: int = Field(default=5, ge=1, le=300)
    max_concurrency: int = Field(default=1000, ge=1, le=100_000)
    max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    forwarded_allow_ips: tuple[str, ...] = ()
    # operations (see web/request_log.py, web/metrics.py, web/docs.py)
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
        # Arguments, then the environment, then the TOML file (when they are read).
        sources: list[PydanticBaseSettingsSource] = [init_settings]
        if getattr(settings_cls, "reads_environment", False):
            sources.append(_Environment(settings_cls))
        if settings_cls.model_config.get("toml_file"):
            sources.append(TomlConfigSettingsSource(settings_cls))
        return tuple(sources)

    @field_validator(
        "checkpoint_every",
        "checkpoint_interval",
        "cache_entries",
        "sqlite_cache_mib",
        mode="before",
    )
    @classmethod
    def _number(cls, value: object, info: ValidationInfo) -> object:
        """A variable's text as Python reads a number (``1_000`` too); below the field's
        least, or infinite, is refused."""
        if not isinstance(value, str):
            return value
        number = float(value) if info.field_name == "checkpoint_interval" else int(value)
        most = _MOST.get(str(info.field_name), float("inf"))
        if not (_NUMBERS[str(info.field_name)] <= number < float("inf") and number <= most):
            raise ValueError("out of range")
        return number

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

    @classmethod
    def from_env(cls, **flags: str | None) -> Settings:
        """The flags given (None: not given) over the environment; the service's keys
        from the environment only (``load_config`` reads its file and its errors)."""
        return _build(_FromEnvironment, flags, where=None)

    # -- the ledger --------------------------------------------------------------------
    @property
    def database(self) -> Database:
        return parse_db_url(self.db)

    def load_policy(self) -> Policy:
        return load_policy(self.policy)

    def key(self, db: Database, *, create: bool = True) -> bytes:
        """The PII key; a missing key file is created only when ``create``."""
        if self.pii_key:
            try:
                return bytes.fromhex(self.pii_key)
            except ValueError:
                raise InvalidInput("DND_LEDGER_PII_KEY must be hex") from None
        if self.pii_key_file:
            return _key_file(Path(self.pii_key_file), create)
        if db.engine == "sqlite":
            return _key_file(Path(db.path + ".pii-key"), create)
        if db.engine == "memory":
            return b"dnd-ledger in-memory key (tests)"
        raise InvalidInput(
            "PostgreSQL needs the installation's PII key: set DND_LEDGER_PII_KEY_FILE "
            "(a file holding a hex key; created if missing) or DND_LEDGER_PII_KEY"
        )

    def open(self, *, create: bool = True, policy: Policy | None = None) -> DndLedger:
        """The ledger; without ``create``, a missing PII key file is refused, not made.
        ``policy`` replaces the configured one (the demo's moved revoke-all date)."""
        if self._env_problem:
            raise InvalidInput(self._env_problem)
        db = self.database
        return DndLedger(
            db,
            policy=policy or self.load_policy(),
            pii_key=self.key(db, create=create),
            signing_key=self.signing_key(),
            checkpoint_every=self.checkpoint_every,
            checkpoint_interval=self.checkpoint_interval,
            cache_entries=self.cache_entries,
            sqlite_cache_mib=self.sqlite_cache_mib,
        )

    def signing_key(self) -> SigningKey | None:
        """The notary's key, from its file; the key never goes into the database."""
        if not self.signing_key_file:
            return None
        path = Path(self.signing_key_file)
        try:
            return load_private_key(path.read_bytes())
        except FileNotFoundError:
            raise InvalidInput(
                f"DND_LEDGER_SIGNING_KEY names {path}, which does not exist; "
                f"create it with: dnd-ledger keys generate --out {path}"
            ) from None
        except (OSError, NoteError) as e:
            raise InvalidInput(f"cannot use the signing key file {path}: {e}") from e


class _FromEnvironment(Settings):
    reads_environment: ClassVar[bool] = True


def load_config(path: str | Path | None, **overrides: Any) -> Settings:
    """The settings with the service's TOML file at ``path`` (None: the environment and
    ``overrides`` only). Raises :class:`ConfigError` with one line per problem of the
    service's keys; the ledger's are reported by :meth:`Settings.open`, as without a file.
    """
    if path is None:
        return _build(_FromEnvironment, overrides, where="configuration")
    p = Path(path)
    try:
        data = tomllib.loads(decode_text(p.read_bytes(), f"config file {p}"))
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist") from None
    except NotText as e:
        raise ConfigError(str(e)) from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {p}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p} is not valid TOML: {e}") from None

    class FromFile(_FromEnvironment):
        model_config = SettingsConfigDict(toml_file=p)

    # The ledger's keys are not the file's: serve opened the ledger before reading it.
    foreign = tuple(f"{key}: Extra inputs are not permitted" for key in data if key in LEDGER_KEYS)
    return _build(FromFile, overrides, where=str(p), foreign=foreign)


def _build(
    cls: type[Settings],
    given: dict[str, Any],
    *,
    where: str | None,
    foreign: tuple[str, ...] = (),
) -> Settings:
    """``cls`` from ``given`` (None values dropped). A bad ledger number falls back to its
    default and is reported by ``open()``; the service's problems raise ConfigError when
    ``where`` names the configuration, and otherwise wait for it to be loaded."""
    values = {k: v for k, v in given.items() if v is not None}
    problem = None
    for _ in range(len(Settings.model_fields) + 1):
        try:
            settings = cls(**values)
            break
        except ValidationError as e:
            errors = e.errors(include_url=False)
        lines = []
        for err in errors:
            name = str(err["loc"][0]) if err["loc"] else ""
            if name in _NUMBERS:
                raw = err.get("input")
                most = f", at most {_MOST[name]}" if name in _MOST else ""
                problem = (
                    f"DND_LEDGER_{name.upper()} must be a number, at least {_NUMBERS[name]}"
                    f"{most}: {raw!r}"
                )
            elif where is not None:
                loc = ".".join(str(part) for part in err["loc"]) or "(top level)"
                lines.append(f"{loc}: {err['msg']}")
            field = Settings.model_fields.get(name)
            if field is not None and field.validation_alias is None:
                values[name] = field.get_default(call_default_factory=True)
        if lines or (foreign and where is not None):
            raise ConfigError(f"{where}: " + "; ".join([*lines, *foreign])) from None
    else:  # pragma: no cover - every field has a valid default
        raise AssertionError("settings did not validate with their defaults")
    if foreign:
        raise ConfigError(f"{where}: " + "; ".join(foreign))
    settings._env_problem = problem
    return settings


def _key_file(path: Path, create: bool) -> bytes:
    if not create and not path.exists():
        raise InvalidInput(
            f"the PII key file {path} does not exist: point DND_LEDGER_PII_KEY_FILE at the "
            "ledger's key (dnd-ledger init creates one for a new ledger)"
        )
    return load_or_create_key(path)
