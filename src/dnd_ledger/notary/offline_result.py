"""What the offline verifier returns and prints, and the pieces a bundle is made of.

Standard library (and the pure DND fold) only: see :mod:`dnd_ledger.notary.offline`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dnd_ledger.domain.state import Effect, Entry, fold, overall
from dnd_ledger.domain.values import ALL_CHANNELS
from dnd_ledger.notary.cosign import Cosignature
from dnd_ledger.notary.signed_note import Checkpoint, NoteError, VerifierKey, parse_vkey

BUNDLE_FORMAT = "dnd-ledger-audit-bundle/2"
#: Bundles this verifier reads: /1 (before key rotation and location indexes) and /2.
BUNDLE_FORMATS = ("dnd-ledger-audit-bundle/1", BUNDLE_FORMAT)
CONTACT_TOPIC = "dnd_ledger.domain.contact:Contact."
ADDRESS_TOPIC = "dnd_ledger.domain.address:Address."
#: How far a recording clock may be from the checkpointing clock (see verify.CLOCK_SKEW).
CLOCK_SKEW = timedelta(minutes=5)
# dnd_ledger.domain.contact: contact ids are uuid5(this namespace, "contact\x1f<loc>\x1f<id>").
_NS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:dnd-ledger")


class BundleError(ValueError):
    """The bundle is rejected; the message says what does not hold."""


def contact_originator(location_id: str, contact_id: str) -> str:
    return str(uuid.uuid5(_NS, f"contact\x1f{location_id}\x1f{contact_id}"))


def encode_bundle(bundle: dict[str, Any]) -> bytes:
    """The one canonical encoding of a bundle."""
    text = json.dumps(bundle, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return (text + "\n").encode("ascii")


# -- the verified result -------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedEvent:
    leaf_index: int
    position: int
    version: int
    event: str
    recorded_at: datetime
    occurred_at: datetime | None
    effect: dict[str, Any] | None
    first_checkpoint: datetime  # the earliest signed checkpoint that contains it

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "event": self.event,
            "position": self.position,
            "leaf_index": self.leaf_index,
            "occurred_at": self.occurred_at.isoformat() if self.occurred_at else None,
            "recorded_at": self.recorded_at.isoformat(),
            "signed_by": self.first_checkpoint.isoformat(),
            "effect": self.effect,
        }


@dataclass(frozen=True)
class VerifiedContact:
    location_id: str
    contact_id: str
    originator_id: str
    events: tuple[VerifiedEvent, ...]

    def status(self, as_of: datetime, known_at: datetime) -> dict[str, Any]:
        """The contact's DND state at ``as_of`` as known at ``known_at``, from the bundle alone."""
        entries = [
            Entry(
                occurred_at=e.occurred_at,
                recorded_at=e.recorded_at,
                seq=e.version,
                event=e.event,
                event_id=f"{self.originator_id}:{e.version}",
                effect=Effect.from_dict(e.effect),
            )
            for e in self.events
            if e.effect is not None and e.occurred_at is not None
        ]
        channels = fold(entries, as_of, known_at).channels()
        return {
            "location_id": self.location_id,
            "contact_id": self.contact_id,
            "dnd": overall(channels).value,
            "channels": {c.value: channels[c].to_json() for c in ALL_CHANNELS},
            "as_of": as_of.isoformat(),
            "known_at": known_at.isoformat(),
        }


@dataclass(frozen=True)
class VerifiedBundle:
    checkpoint: Checkpoint
    checkpoint_time: datetime
    key_name: str
    key_fingerprint: str
    earlier_checkpoints: int
    contacts: tuple[VerifiedContact, ...]
    first_key_fingerprint: str = ""
    handovers: int = 0
    #: A location bundle proven complete: the location, and its contacts and addresses.
    location: str | None = None
    location_contacts: int = 0
    location_addresses: int = 0
    #: Valid cosignatures of the given witnesses on the checkpoint.
    witnesses: tuple[Cosignature, ...] = ()

    def summary(self) -> dict[str, Any]:
        return {
            "origin": self.checkpoint.origin,
            "size": self.checkpoint.size,
            "root": self.checkpoint.root_hash.hex(),
            "time": self.checkpoint_time.isoformat(),
            "key_name": self.key_name,
            "key_fingerprint": self.key_fingerprint,
            "earlier_checkpoints": self.earlier_checkpoints,
            "first_key_fingerprint": self.first_key_fingerprint or self.key_fingerprint,
            "key_handovers": self.handovers,
            "location": self.location,
            "location_contacts": self.location_contacts,
            "location_addresses": self.location_addresses,
            "witnesses": [
                {"name": w.witness, "time": datetime.fromtimestamp(w.timestamp, UTC).isoformat()}
                for w in self.witnesses
            ],
        }


def load_public_key(value: str) -> VerifierKey:
    """A verifier key string (``name+id+base64``), or a file holding one."""
    text = value.strip()
    path = Path(text)
    raw = b""
    try:
        if path.is_file():
            raw = path.read_bytes()
            text = raw.decode("utf-8").strip()
    except OSError as e:
        raise BundleError(f"cannot read public key file {value}: {e}") from e
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise BundleError(
            f"public key file {value} is not UTF-8 text: line {line}: byte 0x{raw[e.start]:02x}"
        ) from None
    try:
        return parse_vkey(text)
    except NoteError as e:
        raise BundleError(f"public key is not a verifier key (name+id+key): {e}") from e


def report(
    bundle: VerifiedBundle, as_of: datetime | None, known_at: datetime | None
) -> dict[str, Any]:
    """What ``verify-bundle --json`` prints."""
    as_of_t = as_of or bundle.checkpoint_time
    known_t = known_at or bundle.checkpoint_time
    return {
        "ok": True,
        "checkpoint": bundle.summary(),
        "contacts": [
            {
                "location_id": c.location_id,
                "contact_id": c.contact_id,
                "events": [e.to_json() for e in c.events],
                "status": c.status(as_of_t, known_t),
            }
            for c in bundle.contacts
        ],
        "not_proven": [
            *(
                []
                if bundle.location is not None
                else [
                    "that the bundle lists every contact of a location (it is not a location "
                    "export proven complete)"
                ]
            ),
            *(
                []
                if bundle.witnesses
                else [
                    "that the log showed no one else another history (no witness "
                    "cosignature was checked)"
                ]
            ),
            "anything after the checkpoint's time",
        ],
    }


def report_text(result: dict[str, Any]) -> str:
    cp = result["checkpoint"]
    handed = ""
    if cp["key_handovers"]:
        n = cp["key_handovers"]
        handed = (
            f" after {n} key hand-over{'s' if n > 1 else ''} from {cp['first_key_fingerprint']},"
        )
    lines = [
        f"bundle OK: checkpoint {cp['origin']} at size {cp['size']}, made {cp['time']},",
        f"  signed by {cp['key_name']} ({cp['key_fingerprint']}),{handed}"
        f" with {cp['earlier_checkpoints']} earlier signed checkpoints consistent with it;",
        f"  all {cp['size']} events are accounted for (versions contiguous from 1).",
    ]
    for w in cp["witnesses"]:
        lines.append(f"  cosigned by witness {w['name']} at {w['time']}")
    if cp["location"] is not None:
        lines.append(
            f"location {cp['location']}: complete; the signed location index lists "
            f"{cp['location_contacts']} contacts (all in this bundle) and "
            f"{cp['location_addresses']} addresses"
        )
    for c in result["contacts"]:
        s = c["status"]
        n = len(c["events"])
        lines.append("")
        lines.append(
            f"{c['location_id']}/{c['contact_id']}: {n} events (versions 1-{n}), all present and "
            "proven included"
        )
        lines.append(f"  DND {s['dnd'].upper()} as of {s['as_of']}, as known at {s['known_at']}")
        for name, ch in s["channels"].items():
            why = f"  {ch['code']}: {ch['message']}" if ch["code"] or ch["message"] else ""
            since = f" since {ch['since']}" if ch["since"] else ""
            lines.append(f"  {name:<9}{ch['status']}{since}{why}")
    return "\n".join(lines)


def parse_time(value: str) -> datetime:
    t = datetime.fromisoformat(value.strip())
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{value!r} has no time zone: add Z or an offset such as +01:00")
    return t
