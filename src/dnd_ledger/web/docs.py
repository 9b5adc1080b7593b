"""The API's documentation pages, served with their own assets (no CDN).

``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) load their JavaScript and CSS from
``/docs-assets/``, files that ship in the ``fastapi-offline`` package, so the
pages work on a network without internet access. Both pages carry a Content
Security Policy that allows scripts, styles and fetches from this service only
(plus the inline bootstrap script FastAPI writes into each page). ``docs = false``
in the service's configuration turns the pages and ``/openapi.json`` off.
"""

from __future__ import annotations

import hashlib
import re
from base64 import b64encode
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"
_STATIC = Path(fastapi_offline.__file__).parent / "static"
_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.S)


def _csp(page: bytes) -> str:
    """This page's policy: its own inline scripts by hash, everything else same-origin."""
    hashes = [
        f"'sha256-{b64encode(hashlib.sha256(s).digest()).decode()}'" for s in _SCRIPT.findall(page)
    ]
    scripts = " ".join(["'self'", *hashes])
    return (
        "default-src 'self'; "
        f"script-src {scripts}; "
        "style-src 'self' 'unsafe-inline'; "  # both UIs set inline styles from script
        "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
        "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )


def _with_csp(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = _csp(bytes(page.body))
    return page


def install(app: FastAPI) -> None:
    """Serve ``/docs``, ``/redoc`` and their assets (the app was made with docs off)."""
    app.mount(ASSETS, StaticFiles(directory=_STATIC), name="docs-assets")
    openapi = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _with_csp(
            get_swagger_ui_html(
                openapi_url=f"{root}{openapi}",
                title=f"{app.title} - API",
                swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
                swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            )
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _with_csp(
            get_redoc_html(
                openapi_url=f"{root}{openapi}",
                title=f"{app.title} - API",
                redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
                with_google_fonts=False,
            )
        )
