"""The auditor bundle of one contact over HTTP: the audit page's download link.

The same file as ``dnd-ledger audit export LOCATION CONTACT_ID --bundle FILE``: it
checkpoints (and signs) first, so it covers every event recorded before it.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Response

from dnd_ledger.notary.bundle import export_bundle
from dnd_ledger.settings import ApiToken
from dnd_ledger.web.api import error_responses
from dnd_ledger.web.state import State, for_location

router = APIRouter(prefix="/v1/locations/{location_id}", tags=["audit"])

#: Linked from the audit page: a signed-in session will do, like the CSV download.
BundleReader = Annotated[ApiToken, Depends(for_location("read", session=True))]


@router.get(
    "/contacts/{contact_id}/bundle",
    summary="The contact's auditor bundle (as `audit export --bundle`)",
    responses=error_responses(401, 403, 404, 422, 503),
)
def bundle(location_id: str, contact_id: str, state: State, _: BundleReader) -> Response:
    data = export_bundle(state.ledger, location_id, contact_id)
    name = quote(f"{contact_id}.bundle.json", safe="")
    return Response(
        data,
        media_type="application/json",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{name}"},
    )
