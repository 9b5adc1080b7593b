"""The change feed over HTTP: a page of changes after a cursor, long-polling when empty."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Response

from dnd_ledger.projections.changes import MAX_PAGE, MAX_WAIT, feed_of
from dnd_ledger.settings import ApiToken
from dnd_ledger.web.api import error_responses
from dnd_ledger.web.state import State, for_location

router = APIRouter(prefix="/v1")

Reader = Annotated[ApiToken, Depends(for_location("read"))]


@router.get(
    "/locations/{location_id}/changes",
    tags=["queries"],
    summary="Changes of contacts' per-channel DND state after a cursor (long-poll with wait)",
    responses=error_responses(401, 403, 422, 503),
)
def changes(
    location_id: str,
    state: State,
    _: Reader,
    after: Annotated[
        int, Query(ge=0, le=2**63 - 1, description="The last change id seen (0: from the start)")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="At most this many")] = 100,
    wait: Annotated[
        float, Query(ge=0, le=MAX_WAIT, description="Seconds to wait when there are none")
    ] = 0,
) -> Response:
    found = feed_of(state.ledger).wait_page(location_id, after, limit, wait)
    body: dict[str, Any] = {
        "changes": [ch.to_json() for ch in found],
        "next": found[-1].id if found else after,
    }
    return Response(orjson.dumps(body), media_type="application/json")
