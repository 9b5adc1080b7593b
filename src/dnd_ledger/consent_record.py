"""A contact's consent history as ISO/IEC TS 27560-style records in W3C DPV JSON-LD.

One record per event and channel it changes: an opt-out (any DND) is
``dpv:ConsentWithdrawn`` for messages on that channel, a clear or an opt-in is
``dpv:ConsentGiven``. Each record names the data subject by a URN of the
location and the contact id (never an address), when it happened and when the
ledger learned of it, how it was indicated (the event), by whom (the source and
actor), the evidence reference (idempotency key, evidence text reference) and
the policy version. The README lists the fields.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from dnd_ledger.textcheck import json_safe

if TYPE_CHECKING:
    from dnd_ledger.application import DndLedger
    from dnd_ledger.services.queries import HistoryItem

CONTEXT = {
    "dpv": "https://w3id.org/dpv#",
    "dct": "http://purl.org/dc/terms/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "dnd": "urn:dnd-ledger:vocab#",
    "dpv:isIndicatedAtTime": {"@type": "xsd:dateTime"},
    "dct:created": {"@type": "xsd:dateTime"},
}
WITHDRAWN, GIVEN = "dpv:ConsentWithdrawn", "dpv:ConsentGiven"
_STATUS = {"block": WITHDRAWN, "clear-temporary": GIVEN, "opt-in": GIVEN, "clear-all": GIVEN}


def _urn(*parts: str) -> str:
    return "urn:dnd-ledger:" + ":".join(quote(p, safe="") for p in parts)


def records(location_id: str, contact_id: str, items: list[HistoryItem]) -> list[dict[str, Any]]:
    """The consent records of one contact's history (pure: no I/O)."""
    subject = {"@id": _urn("contact", location_id, contact_id)}
    out = []
    for item in items:
        status = _STATUS.get(str(item.effect.get("op", "none")))
        if status is None:
            continue
        evidence = [r for r in (item.idempotency_key, item.detail.get("evidence_ref")) if r]
        for channel in item.effect.get("channels", []):
            out.append(
                {
                    "@id": _urn("record", location_id, contact_id, str(item.version), channel),
                    "@type": "dpv:ConsentRecord",
                    "dpv:hasDataSubject": subject,
                    "dpv:hasPurpose": {
                        "@id": _urn("purpose", "messages", channel),
                        "dct:description": f"messages to the contact over {channel}",
                    },
                    "dpv:hasConsentStatus": {"@id": status},
                    "dpv:isIndicatedAtTime": item.occurred_at.isoformat(),
                    "dct:created": item.recorded_at.isoformat(),
                    "dpv:hasIndicationMethod": item.event,
                    "dct:source": item.source,
                    "dpv:isIndicatedBy": item.actor,
                    "dnd:channel": channel,
                    "dnd:level": item.effect.get("level"),
                    "dnd:code": item.effect.get("code"),
                    "dnd:evidence": evidence,
                    "dnd:policyVersion": item.policy_version,
                    "dnd:event": item.version,
                }
            )
    return out


def export(ledger: DndLedger, location_id: str, contact_id: str) -> str:
    """The JSON-LD document (one graph) for the contact."""
    graph = records(location_id, contact_id, ledger.history(location_id, contact_id))
    document = {"@context": CONTEXT, "@graph": graph}
    return json_safe(json.dumps(document, ensure_ascii=False, indent=2))
