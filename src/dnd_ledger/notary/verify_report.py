"""What ``verify`` reports: problems, the summary, and the small helpers it shares."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dnd_ledger.notary.leaf import LeafError, canonical_originator
from dnd_ledger.notary.offline import contact_originator
from dnd_ledger.notary.records import CheckpointRecord, StoredEvent
from dnd_ledger.notary.signed_note import Checkpoint

if TYPE_CHECKING:
    from dnd_ledger.application import DndLedger

CONTACT_TOPIC = "dnd_ledger.domain.contact:Contact."
ADDRESS_TOPIC = "dnd_ledger.domain.address:Address."


@dataclass(frozen=True)
class Problem:
    """One thing that does not hold, with where it is and what differs."""

    kind: str
    message: str
    position: int | None = None
    leaf_index: int | None = None
    originator_id: str | None = None
    version: int | None = None
    checkpoint_size: int | None = None
    expected: str | None = None
    found: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Report:
    events: int = 0
    tree_size: int = 0
    notary_position: int = 0
    pending: int = 0
    checkpoints: int = 0
    signed_checkpoints: int = 0
    verified_size: int = 0
    key: dict[str, str] | None = None
    #: The keys the chain followed from ``key``, first to last (one unless rotated).
    keys: list[dict[str, str]] = field(default_factory=list)
    #: Checkpoints carrying at least the required witness cosignatures.
    witnessed_size: int = 0
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.problem_count:
            return "problem"
        if self.tree_size and (self.key is None or not self.verified_size):
            return "unsigned"
        return "ok"

    @property
    def exit_code(self) -> int:
        return {"ok": 0, "problem": 1, "unsigned": 3}[self.status]

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "ok": self.status == "ok",
            "events": self.events,
            "tree_size": self.tree_size,
            "notary_position": self.notary_position,
            "pending": self.pending,
            "checkpoints": self.checkpoints,
            "signed_checkpoints": self.signed_checkpoints,
            "verified_size": self.verified_size,
            "key": self.key,
            "keys": self.keys,
            "witnessed_size": self.witnessed_size,
            "first_problem": self.problems[0].to_json() if self.problems else None,
            "problem_count": self.problem_count,
            "problems": [p.to_json() for p in self.problems],
            "notes": self.notes,
        }


@dataclass
class Cp:
    record: CheckpointRecord
    body: Checkpoint | None
    time: datetime | None
    bad: bool = False


class Naming:
    """How ``verify`` names an aggregate in its messages."""

    app: DndLedger
    _names: dict[str, str]
    _locations: dict[str, str]

    def _name(self, originator_id: str, topic: str) -> str:
        found = self._names.get(originator_id) or self._view_name(originator_id)
        if found:
            return found
        kind = "contact" if topic.startswith(CONTACT_TOPIC) else "aggregate"
        if topic.startswith(ADDRESS_TOPIC):
            kind = "address"
        return f"{kind} {originator_id}"

    def _learn_name(self, oid: str, topic: str, state: dict[str, Any]) -> None:
        """Names whose ids check out: a contact's id is derived from its location and id."""
        loc, cid = state.get("location_id"), state.get("contact_id")
        if topic == ADDRESS_TOPIC + "Seen" and isinstance(loc, str):
            self._locations[oid] = loc
            self._names[oid] = f"address {state.get('ref')} in {loc}"
            return
        if topic == ADDRESS_TOPIC + "Claimed":
            loc = self._locations.get(oid)
        if isinstance(loc, str) and isinstance(cid, str):
            contact = contact_originator(loc, cid)
            if topic == ADDRESS_TOPIC + "Claimed" or contact == oid:
                self._names.setdefault(contact, f"contact {loc}/{cid}")

    def _view_name(self, originator_id: str) -> str | None:
        """A name from the views, for an aggregate whose own first event cannot be trusted."""
        row = self.app.sql.fetchone(
            "SELECT location_id, contact_id FROM dnd_status_contacts WHERE aggregate_id = ?",
            (originator_id,),
        )
        if row is None:
            return None
        self._names[originator_id] = f"contact {row[0]}/{row[1]}"
        return self._names[originator_id]

    def _where(self, event: StoredEvent, index: int | None = None) -> str:
        oid = oid_of(event)
        leaf = f"; leaf {index}" if index is not None else ""
        return (
            f"event at position {event.id} ({self._name(oid, event.topic)} version "
            f"{event.originator_version}, {event_name(event.topic)}{leaf})"
        )


def oid_of(event: StoredEvent) -> str:
    try:
        return canonical_originator(event.originator_id)
    except LeafError:
        return str(event.originator_id)


def event_name(topic: str) -> str:
    return topic.rpartition(".")[2] or topic


def tagged_time(value: Any) -> datetime:
    if not isinstance(value, dict) or value.get("_type_") != "datetime_iso":
        raise ValueError("not a tagged datetime")
    t = datetime.fromisoformat(value["_data_"])
    if t.tzinfo is None:
        raise ValueError("datetime without a zone")
    return t


__all__ = ["Cp", "Naming", "Problem", "Report", "event_name", "oid_of", "tagged_time"]
