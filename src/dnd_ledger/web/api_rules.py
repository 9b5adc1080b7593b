"""HTTP routes of the 2025-2027 consent rules: the opt-out confirmation text.

``POST /v1/locations/{location}/confirmations`` (``write`` role) is
``dnd-ledger confirmation record``; a second confirmation for the same opt-out
is refused with 409. ``can-send`` and ``can-send:batch`` take ``purpose``.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response

from dnd_ledger import commands as cmd
from dnd_ledger.cli_output import outcome_json
from dnd_ledger.domain.values import Channel
from dnd_ledger.web.api import Id, OutcomeOut, Word, Writer, _errors, _In, _json
from dnd_ledger.web.params import QueryTime
from dnd_ledger.web.state import State

router = APIRouter(prefix="/v1")


class ConfirmationIn(_In):
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
    responses=_errors(401, 403, 409, 413, 422, 503),
)
def record_confirmation(
    location_id: str, body: ConfirmationIn, state: State, _: Writer
) -> Response:
    command = cmd.RecordConfirmation(
        location_id, Channel(body.channel), body.to, body.message_sid, body.occurred_at
    )
    return _json(outcome_json(state.ledger.execute(command)))
