"""The FastAPI application: webhooks, the JSON API, the audit page, ``/healthz``.

``create_app(ledger, config)`` builds it around a ledger the caller owns (tests,
``dnd-ledger serve`` with one process). ``create_app_from_env()`` is the factory
uvicorn imports in each worker process (``serve --workers N``): it reads the
same settings as the CLI from the environment (``DND_LEDGER_DB``,
``DND_LEDGER_POLICY``, ``DND_LEDGER_PII_KEY[_FILE]``, ``DND_LEDGER_CONFIG``)
and opens one ledger for the process.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from dnd_ledger import __version__
from dnd_ledger.application import DndLedger
from dnd_ledger.delivery import backlog
from dnd_ledger.domain.errors import (
    AlreadyConfirmed,
    AlreadyResolved,
    AttestationRequired,
    Conflict,
    InvalidInput,
    LedgerError,
    LedgerUnavailable,
    PermanentDnd,
    UnknownContact,
    UnknownReviewItem,
)
from dnd_ledger.runtime import tune_gc
from dnd_ledger.settings import ConfigError, Settings, load_config
from dnd_ledger.web import (
    api,
    api_rules,
    bundle_api,
    contacts_api,
    docs,
    fastpath,
    metrics,
    pages,
    request_log,
    webhooks,
)
from dnd_ledger.web.auth import AuthError, TokenBook
from dnd_ledger.web.changes_api import router as changes_router
from dnd_ledger.web.config import secret_problems
from dnd_ledger.web.limits import RequestGuard
from dnd_ledger.web.sessions import SessionStore
from dnd_ledger.web.state import WebState

#: Set by ``dnd-ledger serve --dev`` for worker processes.
DEV_ENV = "DND_LEDGER_SERVE_DEV"
CONFIG_ENV = "DND_LEDGER_CONFIG"

_LEDGER_STATUS: list[tuple[type[LedgerError], int]] = [
    (LedgerUnavailable, 503),
    (UnknownContact, 404),
    (PermanentDnd, 409),
    (AttestationRequired, 409),
    (AlreadyConfirmed, 409),
    (AlreadyResolved, 409),
    (UnknownReviewItem, 404),
    (Conflict, 503),
    (InvalidInput, 422),
]


def ledger_status(error: LedgerError) -> int:
    for kind, status in _LEDGER_STATUS:
        if isinstance(error, kind):
            return status
    return 422


def unavailable_json(exc: LedgerUnavailable) -> dict[str, Any]:
    return {"detail": str(exc), "lag": exc.lag}


def _problem(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


#: FastAPI's 400 for a body it cannot decode; the API promises 422 for invalid input.
_FASTAPI_PARSE_ERROR = "There was an error parsing the body"


def _where(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc) or "request"


def _allowed(app: FastAPI, request: Request) -> str:
    """Every method some route of this path answers (the ``Allow`` of a 405)."""
    methods = []
    for method in ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in app.router.routes):
            methods.append(method)
    return ", ".join(methods)


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(LedgerError)
    def on_ledger_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, LedgerError)
        status = ledger_status(exc)
        headers = {"Retry-After": "1"} if status == 503 else None
        return _problem(status, str(exc), headers)

    @app.exception_handler(LedgerUnavailable)
    def on_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # Fail closed: no decision, and a write that was not stored is never a 2xx.
        assert isinstance(exc, LedgerUnavailable)
        if getattr(request.scope.get("route"), "path", None) == fastpath.CAN_SEND:
            metrics.decision(request.query_params.get("channel", "?"), None)
        return JSONResponse(unavailable_json(exc), status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(AuthError)
    def on_auth_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AuthError)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return _problem(exc.status, exc.detail, headers)

    @app.exception_handler(RequestValidationError)
    def on_invalid(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        # Never echo the input back: it may hold a phone number or an address.
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in exc.errors()
        ]
        first = "; ".join(f"{_where(e['loc'])}: {e['msg']}" for e in errors[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        return JSONResponse({"detail": first + more, "errors": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400 and exc.detail == _FASTAPI_PARSE_ERROR:
            return _problem(422, "body: is not valid JSON (or not UTF-8)")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Starlette names only the first route of the path
            headers["Allow"] = _allowed(app, request)
        return _problem(exc.status_code, str(exc.detail), headers or None)


def create_app(
    ledger: DndLedger,
    config: Settings,
    *,
    dev: bool = False,
    clock: Callable[[], datetime] | None = None,
    public_url: str | None = None,
    close_ledger: bool = False,
) -> FastAPI:
    """The service around ``ledger``. Outside ``dev``, unusable secrets are refused.

    ``public_url`` (else ``config.public_url``) is the base URL providers call;
    ``clock`` (default: the ledger's) judges Mailgun timestamps.
    """
    problems = secret_problems(config)
    if problems and not dev:
        raise ConfigError(
            "refusing to start with unusable secrets (use --dev to run anyway): "
            + "; ".join(problems)
        )
    base = public_url or config.public_url
    if not base:
        raise ConfigError("public_url is not set: it is the base URL providers call")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if close_ledger:
            ledger.close()

    app = FastAPI(
        title="dnd-ledger",
        version=__version__,
        summary="The consent (Do-Not-Disturb) ledger: provider webhooks, decisions, audit.",
        description=(
            "Webhooks are authenticated by the provider's signature; everything else by "
            "a bearer token with the `read`, `write` or `support` role. Errors are JSON "
            'objects with a `detail`, e.g. `{"detail": "sms has permanent DND (...)"}`.'
        ),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if config.docs else None,
    )
    sessions = SessionStore(ledger.sql)
    sessions.create_table()
    app.state.web = WebState(
        ledger=ledger,
        config=config,
        tokens=TokenBook(config, sessions),
        clock=clock or ledger.clock,
        public_url=base.rstrip("/"),
        dev=dev,
    )
    _install_handlers(app)
    app.add_middleware(RequestGuard)
    _install_operations(app, app.state.web)
    app.include_router(webhooks.router)
    app.include_router(api.router)
    app.include_router(contacts_api.router)
    app.include_router(bundle_api.router)
    app.include_router(api_rules.router)
    app.include_router(changes_router)
    fastpath.install(app)  # can-send and can-send:batch without FastAPI's per-request work
    app.include_router(pages.router)

    @app.get(
        "/readyz",
        tags=["service"],
        summary="Readiness: the database answers and the views are at the log's head",
        responses={503: {"description": "Not ready: the lag and the cause"}},
    )
    def readyz() -> Response:
        return JSONResponse(*readiness(ledger))

    @app.get("/healthz", tags=["service"], summary="Liveness: the service and its database")
    def healthz() -> Response:
        try:
            ledger.projector.head()
        except Exception as e:  # the database is unreachable: say so, do not crash
            raise HTTPException(503, f"database unavailable: {type(e).__name__}") from None
        return JSONResponse({"status": "ok", "database": ledger.db.engine})

    return app


def _install_operations(app: FastAPI, state: WebState) -> None:
    """The request log (outermost, so it sees every answer), /metrics and the docs."""
    config = state.config

    def token_name(authorization: str | None) -> str | None:
        if authorization is None:
            return None
        try:
            return state.tokens.from_header(authorization).name
        except AuthError:
            return None

    if config.request_log:
        request_log.configure(config.log_format)
    app.add_middleware(
        request_log.RequestLog,
        token_name=token_name,
        fmt=config.log_format,
        enabled=config.request_log,
    )
    if config.docs:
        docs.install(app)
    if config.metrics:
        metrics.BACKLOGS.update(backlog.READERS)

        @app.get("/metrics", include_in_schema=False)
        def metrics_text(request: Request) -> Response:
            if not metrics.token_ok(
                config.metrics_token_sha256, request.headers.get("authorization")
            ):
                raise AuthError(
                    401, "GET /metrics needs the bearer token named in metrics_token_sha256"
                )
            body, content_type = metrics.render(state.ledger)
            return Response(body, media_type=content_type)


def readiness(ledger: DndLedger) -> tuple[dict[str, Any], int]:
    """``/readyz``'s body and status: 200 only when decisions can be made."""
    try:
        ledger.ensure_current()  # the views hold every event stored before this call
    except LedgerUnavailable as e:
        return {"status": "unavailable", "lag": e.lag, "error": str(e), **_stuck(ledger)}, 503
    return {"status": "ready", "lag": 0, "error": None}, 200


def _stuck(ledger: DndLedger) -> dict[str, Any]:
    try:
        found = ledger.projector.error()
    except Exception:
        return {}
    if found is None:
        return {}
    position, error, at = found
    return {"stuck_at": {"position": position, "error": error, "since": at}}


def create_app_from_env() -> FastAPI:
    """The uvicorn factory for worker processes: everything comes from the environment."""
    tune_gc()
    dev = os.environ.get(DEV_ENV, "") == "1"
    config = load_config(os.environ.get(CONFIG_ENV) or None)
    ledger = config.open(create=False)  # serve checked it exists
    try:
        return create_app(ledger, config, dev=dev, close_ledger=True)
    except BaseException:
        ledger.close()
        raise
