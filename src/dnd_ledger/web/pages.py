"""The audit page a compliance officer reads, and the sign-in that opens it in a browser.

Server-rendered (Jinja2, autoescaped), no JavaScript. A program sends its read
token as ``Authorization: Bearer``; a person signs in once with the token in a
form and gets a session cookie (HttpOnly, SameSite=Strict). Tokens never travel
in a URL.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from dnd_ledger.domain.errors import LedgerError, LedgerUnavailable, UnknownContact
from dnd_ledger.domain.values import ALL_CHANNELS, Channel
from dnd_ledger.settings import ApiToken
from dnd_ledger.web.audit_view import STATUS_WORDS, addresses, notary_status, timeline
from dnd_ledger.web.auth import SESSION_COOKIE, AuthError, TokenBook
from dnd_ledger.web.origin import CROSS_SITE, same_origin
from dnd_ledger.web.params import parse_time
from dnd_ledger.web.state import WebState, web_state

router = APIRouter(include_in_schema=False)

templates = Environment(
    loader=PackageLoader("dnd_ledger.web", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

HTML_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: under it a browser sends ``Origin: null`` with a same-origin form
    # post, and the sign-in's Origin check refuses it. same-origin sends nothing elsewhere.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
LABELS = {
    Channel.EMAIL: "Email",
    Channel.SMS: "SMS",
    Channel.CALL: "Calls and voicemail",
    Channel.FB: "Facebook Messenger",
    Channel.GMB: "Google Business messages",
    Channel.WHATSAPP: "WhatsApp",
}
OVERALL_WORDS = {"on": "on (every channel)", "off": "off", "partial": "partial"}
_PAGE = re.compile(r"/v1/locations/[^/?#\\]+/contacts/[^/?#\\]+/audit\.html")


def render(
    name: str, status: int = 200, signed_in: str | None = None, **context: Any
) -> HTMLResponse:
    html = templates.get_template(name).render(signed_in=signed_in, **context)
    return HTMLResponse(html, status_code=status, headers=HTML_HEADERS)


def page_url(location_id: str, contact_id: str) -> str:
    loc, cid = quote(location_id, safe=""), quote(contact_id, safe="")
    return f"/v1/locations/{loc}/contacts/{cid}/audit.html"


def _safe_next(next_url: str | None) -> str:
    """Only our own audit pages are places to return to after signing in."""
    return next_url if next_url and _PAGE.fullmatch(next_url) else "/"


def _when(t: str | datetime | None) -> str:
    if t is None:
        return ""
    moment = datetime.fromisoformat(t) if isinstance(t, str) else t
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _caller(request: Request, state: WebState) -> ApiToken | None:
    """A bearer header (checked strictly), else a session cookie, else None."""
    if request.headers.get("authorization"):
        return state.tokens.from_header(request.headers.get("authorization"))
    return state.tokens.from_session(request.cookies.get(SESSION_COOKIE))


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> HTMLResponse:
    state = web_state(request)
    token = state.tokens.from_session(request.cookies.get(SESSION_COOKIE))
    return render("index.html", signed_in=token.name if token else None)


@router.get("/v1/audit-page")
def audit_lookup(location_id: str, contact_id: str) -> RedirectResponse:
    """The index page's form: from a location and a contact to their audit page."""
    return RedirectResponse(page_url(location_id.strip(), contact_id.strip()), status_code=303)


@router.get("/v1/locations/{location_id}/contacts/{contact_id}/audit.html")
def audit_page(
    location_id: str,
    contact_id: str,
    request: Request,
    as_of: str | None = None,
    known_at: str | None = None,
) -> Response:
    state = web_state(request)
    here = page_url(location_id, contact_id)
    try:
        token = _caller(request, state)
        if token is None:
            return render("sign_in.html", 401, next=here, error=None)
        TokenBook.check(token, "read", location_id)
    except AuthError as e:
        if e.status == 401:
            return render("sign_in.html", 401, next=here, error=e.detail)
        return render("error.html", e.status, title="Not allowed", detail=e.detail)
    ledger = state.ledger
    try:
        times = {
            k: parse_time(v) if v else None for k, v in (("as_of", as_of), ("known_at", known_at))
        }
    except ValueError as e:
        return render(
            "error.html", 422, token.name, title="Invalid time", detail=f"as_of/known_at {e}"
        )
    try:
        view = ledger.status(location_id, contact_id, **times)
    except UnknownContact as e:
        return render("error.html", 404, token.name, title="Unknown contact", detail=str(e))
    except LedgerUnavailable as e:
        return render(
            "error.html", 503, token.name, title="The ledger is unavailable",
            detail=f"No state is shown, since it may be out of date: {e}",
        )  # fmt: skip
    except LedgerError as e:
        return render("error.html", 422, token.name, title="Invalid request", detail=str(e))
    rows = ledger.views.audit(location_id, contact_id)  # as current as the status above
    channels = [
        {
            "label": LABELS[ch],
            "status": view.channels[ch].status.value,
            "words": STATUS_WORDS[view.channels[ch].status.value],
            "since": _when(view.channels[ch].since),
            "code": view.channels[ch].code,
            "message": view.channels[ch].message,
            "event": view.channels[ch].event,
        }
        for ch in ALL_CHANNELS
    ]
    events = timeline(ledger, location_id, contact_id, rows, times["as_of"], times["known_at"])
    csv_url = (
        f"/v1/locations/{quote(location_id, safe='')}/audit"
        f"?contact_id={quote(contact_id, safe='')}&format=csv"
    )
    return render(
        "audit.html",
        signed_in=token.name,
        location_id=location_id,
        contact_id=contact_id,
        dnd=view.dnd.value,
        dnd_words=OVERALL_WORDS[view.dnd.value],
        as_of=_when(view.as_of),
        known_at=_when(view.known_at),
        as_of_value=as_of or "",
        known_at_value=known_at or "",
        channels=channels,
        events=events,
        csv_url=csv_url,
        bundle_url=f"{page_url(location_id, contact_id).removesuffix('/audit.html')}/bundle",
        addresses=addresses(ledger, location_id, contact_id, reveal="support" in token.roles),
        notary=notary_status(ledger, rows[-1]["position"] if rows else None),
    )


@router.get("/v1/sign-in", response_class=HTMLResponse)
def sign_in_form(next: str | None = None) -> HTMLResponse:
    return render("sign_in.html", next=_safe_next(next), error=None)


@router.post("/v1/sign-in")
def sign_in(
    request: Request,
    token: Annotated[str, Form(max_length=512)],
    next: Annotated[str | None, Form(max_length=2048)] = None,
) -> Response:
    """Exchange a read token for a session cookie, then go back to the page asked for."""
    state = web_state(request)
    target = _safe_next(next)
    if not same_origin(request, state.public_url):
        return render("error.html", 403, title="Not allowed", detail=CROSS_SITE)
    try:
        found = state.tokens.from_token(token.strip())
        TokenBook.check(found, "read")
    except AuthError as e:
        return render("sign_in.html", e.status, next=target, error=e.detail)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        state.tokens.new_session(found),
        max_age=state.tokens.session_seconds,
        path="/",
        secure=state.secure_cookies,
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/v1/sign-out")
def sign_out(request: Request) -> Response:
    """End the session for every worker (the cookie no longer opens anything)."""
    state = web_state(request)
    if not same_origin(request, state.public_url):
        return render("error.html", 403, title="Not allowed", detail=CROSS_SITE)
    state.tokens.end_session(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/v1/sign-in", status_code=303)
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=state.secure_cookies, httponly=True, samesite="strict"
    )
    return response
