"""The JSON API: register contacts, set and clear DND, ask whether a message may go out.

Every route needs a bearer token with a role: ``read`` for queries, ``write``
for contacts and DND, ``support`` for approved opt-ins. Bodies are pydantic
models (unknown fields are refused, so a typo is a 422 and not a silent
default). ``GET .../dnd`` and ``GET .../can-send`` return exactly the objects of
``dnd-ledger status --json`` and ``dnd-ledger can-send --json``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from dnd_ledger import commands as cmd
from dnd_ledger.audit_format import audit_csv, render_audit
from dnd_ledger.cli.output import outcome_json
from dnd_ledger.domain.values import ALL_CHANNELS, Channel, Direction, Mode, Purpose
from dnd_ledger.settings import ApiToken
from dnd_ledger.web import metrics
from dnd_ledger.web.fastpath import batch_results
from dnd_ledger.web.limits import batch_within_limit
from dnd_ledger.web.params import QueryTime
from dnd_ledger.web.state import State, any_location, for_location

router = APIRouter(prefix="/v1")

Reader = Annotated[ApiToken, Depends(for_location("read"))]
Writer = Annotated[ApiToken, Depends(for_location("write"))]
Supporter = Annotated[ApiToken, Depends(for_location("support"))]
AnyReader = Annotated[ApiToken, Depends(any_location("read"))]
#: The audit export is also the audit page's download link: a session cookie will do.
AuditReader = Annotated[ApiToken, Depends(for_location("read", session=True))]

Id = Annotated[str, Field(min_length=1, max_length=128)]
Text = Annotated[str, Field(min_length=1, max_length=4096)]
Word = Annotated[str, Field(min_length=1, max_length=256)]


class StrictIn(BaseModel):
    """A request body: an unknown field is refused (422), never silently dropped."""

    model_config = ConfigDict(extra="forbid")


class RegisterIn(StrictIn):
    """A contact and its addresses (phones in E.164, emails). Repeating it is harmless."""

    contact_id: Id
    phones: list[Word] = Field(default_factory=list, max_length=50)
    emails: list[Word] = Field(default_factory=list, max_length=50)
    occurred_at: QueryTime | None = None
    actor: Word | None = None
    request_id: Word | None = None

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "contact_id": "c-42",
                "phones": ["+14155550100"],
                "emails": ["ada@example.com"],
            }
        },
    )


class DndIn(StrictIn):
    """Set or clear DND from the contact record (clearing never lifts permanent DND)."""

    action: Literal["set", "clear"]
    channels: list[Channel] | Literal["all"]
    actor: Word
    reason: Text | None = None
    suppression_removed: bool = False
    request_id: Word | None = None
    occurred_at: QueryTime | None = None

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "action": "set",
                "channels": ["email", "call"],
                "actor": "alice",
                "reason": "asked by phone",
                "request_id": "req-7",
            }
        },
    )


class OptInIn(StrictIn):
    """A support-approved opt-in: lifts DND, permanent too, with the contact's evidence."""

    channels: list[Channel] | Literal["all"]
    approver: Word
    ticket: Word
    evidence: Text
    request_id: Word | None = None
    occurred_at: QueryTime | None = None


class CanSendItem(StrictIn):
    location_id: Id
    contact_id: Id
    channel: Channel
    mode: Mode = Mode.AUTOMATED
    direction: Direction = Direction.OUTBOUND
    purpose: Purpose | None = None
    at: QueryTime | None = None


class CanSendBatchIn(StrictIn):
    """Up to 1,000 (location, contact, channel) checks; answers come in the same order."""

    items: list[CanSendItem] = Field(min_length=1)


class OutcomeOut(BaseModel):
    result: Literal["appended", "duplicate", "ignored"]
    events: list[str]
    contacts: list[str]


class ChannelOut(BaseModel):
    status: Literal["inactive", "active", "permanent"]
    since: str | None
    code: str | None
    message: str | None


class StatusOut(BaseModel):
    """The object of ``dnd-ledger status --json``."""

    location_id: str
    contact_id: str
    dnd: Literal["on", "off", "partial"]
    channels: dict[Channel, ChannelOut]
    as_of: str
    known_at: str


class DecisionOut(BaseModel):
    """The object of ``dnd-ledger can-send --json``."""

    allowed: bool
    channel: Channel
    direction: Direction
    mode: Mode
    status: Literal["inactive", "active", "permanent"]
    reason: str
    code: str | None
    rule: str
    event: str | None


class ErrorOut(BaseModel):
    detail: str
    lag: int | None = Field(
        default=None, description="With 503: how many events the views are behind, if known"
    )


class BatchResultOut(BaseModel):
    location_id: str
    contact_id: str
    channel: Channel
    decision: DecisionOut | None = None
    error: ErrorOut | None = None


class BatchOut(BaseModel):
    results: list[BatchResultOut]


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    words = {
        401: "Missing or unknown bearer token",
        403: "The token lacks the role (or the location)",
        404: "Unknown contact",
        409: "Refused by the ledger's rules (e.g. permanent DND); the detail names the cause",
        413: "The body is over max_body_bytes",
        422: "Invalid input (including a body that is not JSON)",
        503: "Not answered, retry: the views cannot be shown current (the detail names the"
        " cause and `lag` the events they are behind), or concurrent writers kept colliding",
    }
    return {c: {"model": ErrorOut, "description": words[c]} for c in codes}


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _channels(value: list[Channel] | Literal["all"]) -> tuple[Channel, ...]:
    return ALL_CHANNELS if value == "all" else tuple(value)


# -- writes ---------------------------------------------------------------------------


@router.post(
    "/locations/{location_id}/contacts",
    tags=["contacts"],
    summary="Register a contact (or add addresses to it)",
    response_model=OutcomeOut,
    responses=error_responses(401, 403, 413, 422, 503),
)
def register_contact(location_id: str, body: RegisterIn, state: State, _: Writer) -> Response:
    command = cmd.RegisterContact(
        location_id, body.contact_id, tuple(body.phones), tuple(body.emails),
        body.occurred_at, body.actor, body.request_id,
    )  # fmt: skip
    return json_response(outcome_json(state.ledger.execute(command)))


@router.post(
    "/locations/{location_id}/contacts/{contact_id}/dnd",
    tags=["dnd"],
    summary="Set or clear DND from the contact record",
    response_model=OutcomeOut,
    responses=error_responses(401, 403, 404, 409, 413, 422, 503),
)
def change_dnd(location_id: str, contact_id: str, body: DndIn, state: State, _: Writer) -> Response:
    """``set`` records temporary DND. ``clear`` lifts temporary DND only; permanent DND
    is refused with 409 naming its cause, and a bounce or suppression DND needs
    ``suppression_removed: true``. A repeated ``request_id`` appends nothing."""
    channels = _channels(body.channels)
    command: cmd.SetDnd | cmd.ClearDnd
    if body.action == "set":
        if body.suppression_removed:
            raise HTTPException(422, "suppression_removed is an attestation for clear, not set")
        command = cmd.SetDnd(
            location_id, contact_id, channels, body.actor, body.reason,
            body.occurred_at, body.request_id,
        )  # fmt: skip
    else:
        command = cmd.ClearDnd(
            location_id, contact_id, channels, body.actor, body.reason,
            body.suppression_removed, body.occurred_at, body.request_id,
        )  # fmt: skip
    return json_response(outcome_json(state.ledger.execute(command)))


@router.post(
    "/locations/{location_id}/contacts/{contact_id}/opt-in-approvals",
    tags=["dnd"],
    summary="Support-approved opt-in (lifts permanent DND too)",
    response_model=OutcomeOut,
    responses=error_responses(401, 403, 404, 413, 422, 503),
)
def approve_opt_in(
    location_id: str, contact_id: str, body: OptInIn, state: State, _: Supporter
) -> Response:
    command = cmd.ApproveOptIn(
        location_id, contact_id, _channels(body.channels), body.approver, body.ticket,
        body.evidence, body.occurred_at, body.request_id,
    )  # fmt: skip
    return json_response(outcome_json(state.ledger.execute(command)))


# -- queries --------------------------------------------------------------------------


@router.get(
    "/locations/{location_id}/contacts/{contact_id}/dnd",
    tags=["queries"],
    summary="Per-channel DND state (as `dnd-ledger status --json`)",
    response_model=StatusOut,
    responses=error_responses(401, 403, 404, 422, 503),
)
def dnd_status(
    location_id: str,
    contact_id: str,
    state: State,
    _: Reader,
    as_of: Annotated[QueryTime | None, Query(description="Effective time")] = None,
    known_at: Annotated[QueryTime | None, Query(description="Knowledge time")] = None,
) -> Response:
    view = state.ledger.status(location_id, contact_id, as_of=as_of, known_at=known_at)
    return json_response(view.to_json())


_CAN_SEND_PARAMS = frozenset({"channel", "mode", "direction", "as_of", "known_at", "purpose", "at"})


@router.get(
    "/locations/{location_id}/contacts/{contact_id}/can-send",
    tags=["queries"],
    summary="May we message this contact on this channel? (as `can-send --json`)",
    response_model=DecisionOut,
    responses=error_responses(401, 403, 404, 422, 503),
)
def can_send(
    location_id: str,
    contact_id: str,
    channel: Channel,
    state: State,
    _: Reader,
    request: Request,
    mode: Mode = Mode.AUTOMATED,
    direction: Direction = Direction.OUTBOUND,
    as_of: Annotated[QueryTime | None, Query(description="Effective time")] = None,
    known_at: Annotated[QueryTime | None, Query(description="Knowledge time")] = None,
    purpose: Annotated[Purpose | None, Query(description="Why it goes out")] = None,
    at: Annotated[QueryTime | None, Query(description="When it would go out")] = None,
) -> Response:
    unknown = sorted(set(request.query_params) - _CAN_SEND_PARAMS)
    if unknown:  # a misspelt purpose must not silently skip its rules
        raise RequestValidationError(
            [{"loc": ("query", k), "msg": "is not a parameter of can-send", "type": "extra_forbidden"}
             for k in unknown]
        )  # fmt: skip
    decision = state.ledger.rules.can_send(
        location_id, contact_id, channel, direction=direction, mode=mode,
        as_of=as_of, known_at=known_at, purpose=purpose, at=at,
    )  # fmt: skip
    metrics.decision(channel.value, decision.allowed)
    return json_response(decision.to_json())


@router.post(
    "/can-send:batch",
    tags=["queries"],
    summary="Many can-send decisions in one call (up to 1,000)",
    response_model=BatchOut,
    responses=error_responses(401, 403, 413, 422, 503),
)
def can_send_batch(
    token: AnyReader,
    _: Annotated[None, Depends(batch_within_limit)],
    body: CanSendBatchIn,
    state: State,
) -> Response:
    """Each item is answered in order with its ``decision`` (the ``can-send`` object) or
    an ``error`` (e.g. an unknown contact) that does not fail the other items."""
    if len(body.items) > state.config.max_batch:
        raise HTTPException(
            422, f"items: {len(body.items)} checks, over the limit of {state.config.max_batch}"
        )
    checks = [
        (i.location_id, i.contact_id, i.channel, i.mode, i.direction, i.purpose, i.at)
        for i in body.items
    ]
    return json_response(batch_results(state, token, checks))


AUDIT_TYPES = {
    "json": "application/json",
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
}
_FILENAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def render_rows(rows: list[dict[str, Any]], fmt: str) -> str:
    """The CLI's audit formats (``dnd-ledger audit --format``), byte for byte."""
    if fmt == "csv":
        return audit_csv(rows)
    text = render_audit(rows, fmt)
    return text + "\n" if fmt == "jsonl" and text else text


@router.get(
    "/locations/{location_id}/audit",
    tags=["audit"],
    summary="The compliance audit trail (json, jsonl or csv)",
    responses={
        200: {"content": {t: {} for t in AUDIT_TYPES.values()}},
        **error_responses(401, 403, 404, 422, 503),
    },
)
def audit_export(
    location_id: str,
    state: State,
    _: AuditReader,
    contact_id: str | None = None,
    since: Annotated[QueryTime | None, Query(description="Occurred at or after")] = None,
    until: Annotated[QueryTime | None, Query(description="Occurred at or before")] = None,
    format: Literal["json", "jsonl", "csv"] = "json",
) -> Response:
    """One row per event, in log order, as ``dnd-ledger audit --format``."""
    ledger = state.ledger
    if contact_id is not None:
        ledger.status(location_id, contact_id)  # an unknown contact is a 404, not "no events"
    else:
        ledger.ensure_current()
    rows = ledger.views.audit(location_id, contact_id, since, until)
    headers = {}
    if format == "csv":
        name = _FILENAME_UNSAFE.sub("_", f"audit-{location_id}-{contact_id or 'all'}")
        headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return Response(render_rows(rows, format), media_type=AUDIT_TYPES[format], headers=headers)
