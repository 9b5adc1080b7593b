"""HTTP routes of the 2025-2027 consent rules: the opt-out confirmation text, reviews.

``POST /v1/locations/{location}/confirmations`` (``write`` role) is
``dnd-ledger confirmation record``; a second confirmation for the same opt-out
is refused with 409. ``can-send`` and ``can-send:batch`` take ``purpose``.
``GET .../reviews`` (``read``) lists open review items; ``POST
.../reviews/{item}/resolution`` (``support``) is ``dnd-ledger review resolve``.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from dnd_ledger import commands as cmd
from dnd_ledger.cli.output import outcome_json
from dnd_ledger.domain.values import Channel
from dnd_ledger.services.reviews import review_items
from dnd_ledger.web.api import (
    Id,
    OutcomeOut,
    Reader,
    StrictIn,
    Supporter,
    Text,
    Word,
    Writer,
    error_responses,
    json_response,
)  # fmt: skip
from dnd_ledger.web.params import QueryTime
from dnd_ledger.web.state import State

router = APIRouter(prefix="/v1")


class ConfirmationIn(StrictIn):
    """The one confirmation text after an opt-out went out to ``to``."""

    channel: Literal["sms", "whatsapp"]
    to: Word
    message_sid: Id
    occurred_at: QueryTime | None = None


@router.post(
    "/locations/{location_id}/confirmations",
    tags=["dnd"],
    summary="Record the one opt-out confirmation text (a second one is refused)",
    response_model=OutcomeOut,
    responses=error_responses(401, 403, 409, 413, 422, 503),
)
def record_confirmation(
    location_id: str, body: ConfirmationIn, state: State, _: Writer
) -> Response:
    command = cmd.RecordConfirmation(
        location_id, Channel(body.channel), body.to, body.message_sid, body.occurred_at
    )
    return json_response(outcome_json(state.ledger.execute(command)))


class ReviewOut(BaseModel):
    item: str
    location_id: str
    contacts: list[str]
    channel: str
    received_at: str
    deadline: str
    overdue: bool
    resolution: str | None


class ResolutionIn(StrictIn):
    """A reviewer's verdict on a suspected revocation."""

    resolution: Literal["revocation", "not-revocation"] = Field(alias="as")
    actor: Word
    note: Text
    occurred_at: QueryTime | None = None


@router.get(
    "/locations/{location_id}/reviews",
    tags=["reviews"],
    summary="Open review items, oldest first, with their deadlines (as `review list --format json`)",
    response_model=list[ReviewOut],
    responses=error_responses(401, 403, 422, 503),
)
def list_reviews(location_id: str, state: State, _: Reader, overdue: bool = False) -> Response:
    ledger = state.ledger
    now = ledger.clock()
    return json_response(
        [i.to_json(now) for i in review_items(ledger, location_id, overdue=overdue)]
    )


@router.post(
    "/locations/{location_id}/reviews/{item}/resolution",
    tags=["reviews"],
    summary="Resolve a review item: revocation (permanent DND) or not-revocation",
    response_model=OutcomeOut,
    responses=error_responses(401, 403, 404, 409, 413, 422, 503),
)
def resolve_review(
    location_id: str, item: str, body: ResolutionIn, state: State, _: Supporter
) -> Response:
    command = cmd.ResolveReview(
        location_id, item, body.resolution, body.actor, body.note, body.occurred_at
    )
    return json_response(outcome_json(state.ledger.execute(command)))
