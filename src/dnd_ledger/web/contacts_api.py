"""Contacts over HTTP: list, show, find (``read``), remove an address (``write``),
erase personal data and reveal a reference (``support``).

Addresses travel in request bodies, never in URLs: a phone number in a query
string would end up in access logs. Answers name addresses by reference; only
``support`` tokens turn a reference back into its value.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from dnd_ledger import commands as cmd
from dnd_ledger.cli.output import outcome_json
from dnd_ledger.projections import contact_views as views
from dnd_ledger.services import contact_admin
from dnd_ledger.settings import ApiToken
from dnd_ledger.web.api import error_responses
from dnd_ledger.web.params import QueryTime
from dnd_ledger.web.state import State, for_location

router = APIRouter(prefix="/v1/locations/{location_id}", tags=["contacts"])

Reader = Annotated[ApiToken, Depends(for_location("read"))]
Writer = Annotated[ApiToken, Depends(for_location("write"))]
Supporter = Annotated[ApiToken, Depends(for_location("support"))]
Word = Annotated[str, Field(min_length=1, max_length=256)]
Text = Annotated[str, Field(min_length=1, max_length=4096)]


class StrictIn(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FindIn(StrictIn):
    """Exactly one of ``phone`` or ``email``."""

    phone: Word | None = None
    email: Word | None = None


class RemoveAddressIn(StrictIn):
    """Addresses to remove; DND that came from them stays on the contact."""

    phones: list[Word] = Field(default_factory=list, max_length=50)
    emails: list[Word] = Field(default_factory=list, max_length=50)
    actor: Word
    reason: Text | None = None
    request_id: Word | None = None
    occurred_at: QueryTime | None = None


class ErasureIn(StrictIn):
    actor: Word
    reason: Text


def json_response(data: Any) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


@router.get(
    "/contacts",
    summary="List contacts, a page at a time (as `contacts list --json`)",
    responses=error_responses(401, 403, 422, 503),
)
def list_contacts(
    location_id: str,
    state: State,
    _: Reader,
    dnd: Annotated[str | None, Query(description="on, off or partial")] = None,
    channel: Annotated[str | None, Query(description="With channel_state: one channel")] = None,
    channel_state: Annotated[str | None, Query(description="inactive, active, permanent")] = None,
    limit: Annotated[int, Query(ge=1, le=views.MAX_LIMIT)] = views.DEFAULT_LIMIT,
    after: Annotated[str | None, Query(max_length=512, description="next_cursor")] = None,
) -> Response:
    page = views.list_contacts(
        state.ledger, location_id, dnd=dnd, channel=channel, state=channel_state,
        limit=limit, after=after,
    )  # fmt: skip
    return json_response(page.to_json())


@router.get(
    "/contacts/{contact_id}",
    summary="One contact (as `contacts show --json`)",
    responses=error_responses(401, 403, 404, 422, 503),
)
def show_contact(location_id: str, contact_id: str, state: State, _: Reader) -> Response:
    return json_response(views.show_contact(state.ledger, location_id, contact_id))


@router.post(
    "/contacts:find",
    summary="Who holds an address (as `contacts find --json`)",
    responses=error_responses(401, 403, 413, 422, 503),
)
def find_address(location_id: str, body: FindIn, state: State, _: Reader) -> Response:
    return json_response(views.find_address(state.ledger, location_id, body.phone, body.email))


@router.post(
    "/contacts/{contact_id}/address-removals",
    summary="Remove addresses (AddressRemoved)",
    responses=error_responses(401, 403, 404, 409, 413, 422, 503),
)
def remove_address(
    location_id: str, contact_id: str, body: RemoveAddressIn, state: State, _: Writer
) -> Response:
    command = cmd.RemoveAddress(
        location_id, contact_id, body.actor, tuple(body.phones), tuple(body.emails),
        body.reason, body.occurred_at, body.request_id,
    )  # fmt: skip
    return json_response(outcome_json(state.ledger.execute(command)))


@router.post(
    "/contacts/{contact_id}/erasure",
    tags=["pii"],
    summary="Erase personal data (support)",
    responses=error_responses(401, 403, 404, 409, 413, 422, 503),
)
def erase(
    location_id: str, contact_id: str, body: ErasureIn, state: State, _: Supporter
) -> Response:
    result = contact_admin.erase(state.ledger, location_id, contact_id, body.actor, body.reason)
    return json_response(result.to_json())


@router.get(
    "/pii/{ref}",
    tags=["pii"],
    summary="The value behind a reference (support)",
    responses=error_responses(401, 403, 404, 422, 503),
)
def reveal(location_id: str, ref: str, state: State, _: Supporter) -> Response:
    ledger = state.ledger
    value = contact_admin.reveal(ledger, ref)
    if value is None or not contact_admin.belongs_to(ledger, location_id, ref):
        raise HTTPException(404, f"no value for {ref} in this location: erased, or never recorded")
    return json_response({"ref": ref, "value": value})
