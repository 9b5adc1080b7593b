"""Provider webhooks: authenticated by the provider's signature, and by nothing else.

A refused signature is a 403 and appends nothing. Signatures are computed over
the URL the provider called: the configured ``public_url`` followed by the path
and query this process received (a proxy in front changes scheme, host and port,
never the path below the public URL).

Mailgun signs only a timestamp and a token, so the token is accepted once: it is
remembered in the ledger's replay cache when the signature and timestamp pass,
and forgotten again if storing the event fails, so Mailgun's retry is accepted.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool

from dnd_ledger import textcheck
from dnd_ledger.cli.output import outcome_json
from dnd_ledger.commands import Outcome
from dnd_ledger.domain.errors import Conflict, InvalidInput, LedgerError
from dnd_ledger.providers import mailgun, twilio
from dnd_ledger.providers.outcomes import Ignored
from dnd_ledger.providers.payload import MAX_PAYLOAD_BYTES, PayloadError, load_json_object
from dnd_ledger.providers.signatures import SignatureError, verify_mailgun_signature
from dnd_ledger.providers.signatures import verify_twilio_signature as twilio_signature_ok
from dnd_ledger.settings import LocationSecrets
from dnd_ledger.web.state import WebState, web_state

router = APIRouter(prefix="/v1/locations/{location_id}/webhooks", tags=["webhooks"])

EMPTY_TWIML = b"<Response/>"
RESULT_HEADER = "X-Ledger-Result"

_SIGNED: dict[int | str, dict[str, Any]] = {
    400: {"description": "Not a usable provider payload (not a form, repeated field, ...)"},
    403: {"description": "Missing or bad signature; nothing was appended."},
    404: {"description": "The location has no secret configured for this provider"},
    413: {"description": "The body is over max_webhook_bytes"},
    422: {"description": "The URL holds a control character"},
    503: {"description": "Not recorded (concurrent writers, database): retry"},
}


class _TooLarge(Exception):
    pass


async def _body(request: Request) -> bytes:
    """The raw body, refused (413) past the largest payload a provider sends."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_PAYLOAD_BYTES:
        raise HTTPException(413, f"payload is over the {MAX_PAYLOAD_BYTES}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_PAYLOAD_BYTES:
            raise HTTPException(413, f"payload is over the {MAX_PAYLOAD_BYTES}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def called_url(state: WebState, request: Request) -> str:
    """The URL the provider called: public URL + the raw path and query received."""
    raw_path = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else quote(request.url.path)
    query = request.scope.get("query_string", b"").decode("latin-1")
    return state.public_url + path + (f"?{query}" if query else "")


def _secrets(state: WebState, location_id: str, provider: str) -> LocationSecrets:
    secrets = state.config.locations.get(location_id)
    if secrets is None or getattr(secrets, provider) is None:
        raise HTTPException(404, f"location {location_id!r} has no {provider} configured")
    return secrets


def _json(outcome: Outcome, status: int = 200) -> Response:
    return Response(
        orjson.dumps(outcome_json(outcome)),
        status_code=status,
        media_type="application/json",
        headers={RESULT_HEADER: outcome.result},
    )


def _ignored(reason: str) -> Outcome:
    return Outcome("ignored", detail={"reason": reason})


# -- Twilio ---------------------------------------------------------------------------


def _twilio(
    state: WebState, location_id: str, url: str, raw: bytes, signature: str | None, kind: str
) -> Outcome:
    secrets = _secrets(state, location_id, "twilio_auth_token")
    assert secrets.twilio_auth_token is not None
    if not signature:
        raise HTTPException(403, "missing X-Twilio-Signature header")
    try:
        pairs = twilio.parse_form(raw)
    except PayloadError as e:  # cannot even be checked: say what is wrong with it
        raise HTTPException(400, f"the body is not a usable Twilio form: {e}") from None
    token = secrets.twilio_auth_token.get_secret_value()
    if not twilio_signature_ok(token, url, pairs, signature):
        raise HTTPException(403, "bad X-Twilio-Signature for this URL, body and location")
    try:
        form = twilio.single_valued(pairs)
        command: Any = (
            twilio.inbound_to_command(form, location_id)
            if kind == "inbound"
            else twilio.status_to_command(form, location_id)
        )
    except PayloadError as e:
        raise HTTPException(400, f"unusable Twilio payload: {e}") from None
    if isinstance(command, Ignored):
        return _ignored(command.reason)
    try:
        return state.ledger.execute(command)
    except InvalidInput as e:
        raise HTTPException(400, f"refused: {e}") from None


@router.post(
    "/twilio/inbound",
    summary="Twilio inbound message (SMS or WhatsApp)",
    response_class=Response,
    responses={
        200: {"content": {"text/xml": {"example": "<Response/>"}}, "description": "Recorded"},
        **_SIGNED,
    },
)
async def twilio_inbound(location_id: str, request: Request) -> Response:
    """Signed by Twilio (``X-Twilio-Signature``). Answers an empty TwiML ``<Response/>``;
    a repeated MessageSid appends nothing. ``X-Ledger-Result`` says what was done."""
    state = web_state(request)
    raw = await _body(request)
    signature = request.headers.get("x-twilio-signature")
    url = called_url(state, request)
    outcome = await run_in_threadpool(_twilio, state, location_id, url, raw, signature, "inbound")
    return Response(EMPTY_TWIML, media_type="text/xml", headers={RESULT_HEADER: outcome.result})


@router.post(
    "/twilio/status",
    summary="Twilio message status callback",
    responses={200: {"description": "Recorded, duplicate or ignored"}, **_SIGNED},
)
async def twilio_status(location_id: str, request: Request) -> Response:
    """Signed by Twilio. A callback with a contact-side error code is recorded."""
    state = web_state(request)
    raw = await _body(request)
    signature = request.headers.get("x-twilio-signature")
    url = called_url(state, request)
    outcome = await run_in_threadpool(_twilio, state, location_id, url, raw, signature, "status")
    return _json(outcome)


# -- Mailgun --------------------------------------------------------------------------


def _mailgun(state: WebState, location_id: str, raw: bytes) -> Outcome:
    secrets = _secrets(state, location_id, "mailgun_signing_key")
    assert secrets.mailgun_signing_key is not None
    # Nothing is trusted before the signature: a body without a readable
    # signature block is unauthenticated (403), whatever else is wrong with it.
    try:
        data = load_json_object(raw)
    except PayloadError as e:  # not JSON at all: nothing to check a signature on
        raise HTTPException(400, f"the body is not a usable Mailgun webhook: {e}") from None
    try:
        block = mailgun.MailgunSignature.model_validate(data.get("signature"))
    except ValueError:
        raise HTTPException(403, "missing Mailgun signature block") from None
    if textcheck.problem(block.token) is not None:  # it is stored in the replay cache
        raise HTTPException(403, "Mailgun signature refused: the token is not printable text")
    try:
        verify_mailgun_signature(
            secrets.mailgun_signing_key.get_secret_value(),
            block.timestamp,
            block.token,
            block.signature,
            now=state.clock(),
            replay_cache=state.ledger.replay_cache,
            window=_window(state),
        )
    except SignatureError as e:
        raise HTTPException(403, f"Mailgun signature refused: {e.reason}") from None
    # Authenticated from here on; the token is remembered.
    try:
        command = mailgun.webhook_to_command(mailgun.parse_webhook(data), location_id)
    except PayloadError as e:
        # 406 tells Mailgun to stop retrying: this payload will never be usable.
        raise HTTPException(406, f"unusable Mailgun payload: {e}") from None
    if isinstance(command, Ignored):
        return _ignored(command.reason)
    try:
        return state.ledger.execute(command)
    except Conflict as e:
        state.ledger.replay_cache.forget(block.token)
        raise HTTPException(503, f"not recorded, retry: {e}", {"Retry-After": "1"}) from None
    except LedgerError as e:
        # The ledger refuses this event as such (e.g. a time far in the future).
        raise HTTPException(406, f"refused: {e}") from None
    except BaseException:
        # Not stored (database down, ...): let Mailgun's retry of this token through.
        state.ledger.replay_cache.forget(block.token)
        raise


def _window(state: WebState) -> timedelta:
    return timedelta(seconds=state.config.mailgun_max_age_seconds)


@router.post(
    "/mailgun",
    summary="Mailgun webhook (failed, complained, unsubscribed, ...)",
    responses={
        **_SIGNED,
        200: {"description": "Recorded or ignored"},
        403: {"description": "Bad signature, stale timestamp or replayed token; nothing appended"},
        406: {"description": "Signed, but the payload can never be processed (no retry)"},
    },
)
async def mailgun_webhook(location_id: str, request: Request) -> Response:
    """Signed by Mailgun (``signature`` block: HMAC-SHA256 of timestamp + token)."""
    state = web_state(request)
    raw = await _body(request)
    outcome = await run_in_threadpool(_mailgun, state, location_id, raw)
    return _json(outcome)
