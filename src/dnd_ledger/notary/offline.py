"""Verify an auditor bundle offline, then replay its contacts' DND state.

Run as ``python -m dnd_ledger.notary.offline BUNDLE --public-key KEY`` (or
``dnd-ledger audit verify-bundle``). It needs the standard library, the
``cryptography`` package, and these pure modules of the package:
``notary.merkle``, ``notary.merkle_proofs``, ``notary.signed_note``, ``notary.leaf``,
``notary.keychain``, ``notary.locations``, ``notary.cosign``, ``notary.offline_parts``,
``notary.offline_result`` and the DND fold ``domain.state`` (with ``domain.values``). No database, no eventsourcing,
nothing from the server is trusted.

A bundle is one canonical JSON document (sorted keys, no spaces, ASCII, one
final newline), so every byte of it means something: a file that is not
exactly the canonical encoding of what it parses to is rejected. It holds:

``format``              ``"dnd-ledger-audit-bundle/2"`` (``/1`` is still read)
``key_fingerprint``     ``sha256:<hex>`` of the log's first signing key; must be the
                        auditor's key
``checkpoint``          the latest signed checkpoint note (C2SP signed note)
``earlier_checkpoints`` earlier signed notes in log order (size, then time), each with a
                        consistency proof to it; key hand-overs among them
``leaves``              every leaf of the checkpoint's tree, ``[position, originator,
                        version, topic, sha256 of stored state]``: PII-free
``contacts``            per exported contact, its location and id and *all* its events
                        up to the checkpoint: leaf index, stored bytes (base64), and
                        an inclusion proof
``location``            for a location export, the location; else null
``locations``           for a location export, the signed location index
                        (:mod:`dnd_ledger.notary.locations`): ``[leaf index, tag]`` per
                        aggregate; else empty

What is proven: the checkpoint is signed by the key, or by a key the given key
handed over to through a chain of hand-overs each signed by the old and the new
key (see :mod:`dnd_ledger.notary.keychain`), and no checkpoint after a hand-over
is signed only by the retired key; the leaves are exactly the
tree it signed (their root is its root); every version of every aggregate runs
1, 2, 3, ... so none was hidden; each exported contact's events are all of its
leaves, with the stored bytes those leaves commit to; each inclusion proof and
consistency proof holds; and each event's recording time agrees with the
checkpoints that do and do not contain it. A location export also proves that
it holds every contact of the location: the signed location index names each
aggregate's location, and every contact it gives the location must be in the
bundle.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dnd_ledger.notary.cosign import Cosignature, WitnessKey, cosignatures, parse_witness_vkey
from dnd_ledger.notary.keychain import KeyChain, handover_key, note_time, unverified_checkpoint
from dnd_ledger.notary.merkle import ProofError, root_from_leaf_hashes
from dnd_ledger.notary.merkle_proofs import verify_consistency
from dnd_ledger.notary.offline_parts import (
    _check_leaf_sequence,
    _contact,
    _fields,
    _hashes,
    _leaf,
    _list,
    check_location,
)
from dnd_ledger.notary.offline_result import (
    BUNDLE_FORMAT,
    BUNDLE_FORMATS,
    CLOCK_SKEW,
    CONTACT_TOPIC,
    BundleError,
    VerifiedBundle,
    VerifiedContact,
    VerifiedEvent,
    contact_originator,
    encode_bundle,
    load_public_key,
    parse_time,
    report,
    report_text,
)
from dnd_ledger.notary.signed_note import Checkpoint, NoteError, VerifierKey, fingerprint


def verify_bundle(
    data: bytes,
    key: VerifierKey,
    *,
    skew: timedelta = CLOCK_SKEW,
    witnesses: Sequence[WitnessKey] = (),
    require_witnesses: int = 0,
) -> VerifiedBundle:
    """Check everything in the bundle; raise BundleError naming the first thing that fails.

    With ``witnesses``, their cosignatures on the checkpoints must verify (a forged one
    fails the bundle); with ``require_witnesses``, the latest checkpoint needs that many.
    """
    doc = _parse(data)
    fp = fingerprint(key.public_key)
    if doc["key_fingerprint"] != fp:
        raise BundleError(
            f"bundle was signed by key {doc['key_fingerprint']}, not by the given key {fp}"
        )
    earlier = []
    for i, item in enumerate(_list(doc["earlier_checkpoints"], "earlier_checkpoints")):
        note, proof = _fields(item, f"earlier checkpoint {i}", {"note": str, "consistency": list})
        earlier.append((f"earlier checkpoint {i}", note, proof))
    # Signatures first, in log order: the key chain starts from the given key.
    chain = KeyChain(key)
    parsed = [(where, *_checkpoint(note, chain, where), proof) for where, note, proof in earlier]
    checkpoint, time = _checkpoint(doc["checkpoint"], chain, "checkpoint")

    leaves = [_leaf(v, i) for i, v in enumerate(_list(doc["leaves"], "leaves"))]
    if len(leaves) != checkpoint.size:
        raise BundleError(
            f"bundle has {len(leaves)} leaves, the checkpoint covers {checkpoint.size}"
        )
    hashes = [leaf.hash() for leaf in leaves]
    if root_from_leaf_hashes(hashes) != checkpoint.root_hash:
        raise BundleError("the leaves' root is not the checkpoint's root: a leaf was altered")
    _check_leaf_sequence(leaves)

    # Earlier checkpoints: when each event was first under a signature.
    signed_at: list[tuple[int, datetime]] = []
    for where, cp, t, proof in parsed:
        if cp.origin != checkpoint.origin:
            raise BundleError(f"{where} is from another log ({cp.origin!r})")
        if (signed_at and (cp.size, t) < signed_at[-1]) or cp.size > checkpoint.size:
            raise BundleError(f"{where} has size {cp.size}, out of order")
        if t > time:
            raise BundleError(f"{where} was made at {t.isoformat()}, out of order")
        try:
            verify_consistency(
                cp.size, checkpoint.size, _hashes(proof, where), cp.root_hash, checkpoint.root_hash
            )
        except ProofError as e:
            raise BundleError(f"{where} (size {cp.size}): consistency proof fails: {e}") from e
        if root_from_leaf_hashes(hashes[: cp.size]) != cp.root_hash:
            raise BundleError(f"{where} (size {cp.size}): root is not the root of its leaves")
        signed_at.append((cp.size, t))
    signed_at.append((checkpoint.size, time))

    contacts = []
    seen: set[str] = set()
    for item in _list(doc["contacts"], "contacts"):
        contact = _contact(item, leaves, hashes, checkpoint, signed_at, skew)
        if contact.originator_id in seen:
            raise BundleError(f"contact {contact.contact_id} is listed twice")
        seen.add(contact.originator_id)
        contacts.append(contact)
    if not contacts:
        raise BundleError("bundle exports no contact")
    location, counts = doc.get("location"), (0, 0)
    if location is not None:
        earlier_cps = [cp for _, cp, _, _ in parsed]
        counts = check_location(location, doc["locations"], leaves, checkpoint, earlier_cps,
                                contacts)  # fmt: skip
    elif doc.get("locations"):
        raise BundleError("bundle has a location index but names no location")
    cosigned = _cosignatures(doc, earlier, witnesses, require_witnesses)
    last = chain.current
    return VerifiedBundle(
        checkpoint, time, last.name, fingerprint(last.public_key), len(signed_at) - 1,
        tuple(contacts), first_key_fingerprint=fp, handovers=len(chain.handovers),
        location=location, location_contacts=counts[0], location_addresses=counts[1],
        witnesses=tuple(cosigned),
    )  # fmt: skip


def _cosignatures(
    doc: dict[str, Any],
    earlier: Sequence[tuple[str, str, Any]],
    witnesses: Sequence[WitnessKey],
    need: int,
) -> list[Cosignature]:
    """The witnesses' valid cosignatures on the latest checkpoint; none forged anywhere."""
    if need and not witnesses:
        raise BundleError("witness cosignatures are required, but no witness key was given")
    keys = list(witnesses)
    for where, note, _ in earlier:
        try:
            cosignatures(note, keys)
        except NoteError as e:
            raise BundleError(f"{where}: {e}") from e
    try:
        found = cosignatures(doc["checkpoint"], keys)
    except NoteError as e:
        raise BundleError(f"checkpoint: {e}") from e
    if len(found) < need:
        raise BundleError(
            f"checkpoint carries {len(found)} of the {need} witness cosignatures required: no "
            "witness vouches that the log did not show others another history"
        )
    return found


def _parse(data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as e:
        raise BundleError(f"bundle is not ASCII JSON: {e}") from e
    if not isinstance(doc, dict):
        raise BundleError("bundle is not a JSON object")
    if encode_bundle(doc) != data:
        raise BundleError("bundle is not in canonical form (it was edited after export)")
    if doc.get("format") not in BUNDLE_FORMATS:
        raise BundleError(f"bundle format {doc.get('format')!r} is not {BUNDLE_FORMAT!r}")
    fields: dict[str, type] = {
        "format": str,
        "key_fingerprint": str,
        "checkpoint": str,
        "earlier_checkpoints": list,
        "leaves": list,
        "contacts": list,
    }
    if doc["format"] == BUNDLE_FORMAT:
        fields |= {"location": object, "locations": list}
    _fields(doc, "bundle", fields)
    if doc.get("location") is not None and not isinstance(doc["location"], str):
        raise BundleError("bundle: location must be a string or null")
    return doc


def _checkpoint(note: str, chain: KeyChain, where: str) -> tuple[Checkpoint, datetime]:
    """The next checkpoint in log order, verified with the key in force."""
    what = "key hand-over" if _is_handover(note) else "signature or format"
    try:
        cp = chain.accept(note)
    except NoteError as e:
        raise BundleError(f"{where}: {what} does not hold: {e}") from e
    t = note_time(cp)
    if t is None:
        raise BundleError(f"{where} has no single time line in the checkpoint format")
    return cp, t


def load_witness_key(value: str) -> WitnessKey:
    """A witness verifier key (``name+id+base64``, type 0x04), or a file holding one."""
    text = value.strip()
    path = Path(text)
    try:
        if path.is_file():
            text = path.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise BundleError(f"cannot read witness key file {value}: {e}") from e
    try:
        return parse_witness_vkey(text)
    except NoteError as e:
        raise BundleError(f"witness key is not a witness verifier key: {e}") from e


def _is_handover(note: str) -> bool:
    try:
        return handover_key(unverified_checkpoint(note)) is not None
    except NoteError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dnd_ledger.notary.offline",
        description="Verify a dnd-ledger auditor bundle offline and replay its contacts.",
    )
    parser.add_argument("bundle", help="the bundle file (from dnd-ledger audit export)")
    parser.add_argument("--public-key", required=True, help="verifier key, or a file holding it")
    parser.add_argument("--as-of", type=parse_time, help="effective time (default: checkpoint)")
    parser.add_argument("--known-at", type=parse_time, help="knowledge time (default: checkpoint)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--witness-key",
        action="append",
        default=[],
        help="a witness's verifier key, or a file holding it (repeatable)",
    )
    parser.add_argument(
        "--require-witnesses",
        type=int,
        default=0,
        metavar="N",
        help="fail unless the checkpoint carries N witness cosignatures",
    )
    args = parser.parse_args(argv)
    try:
        key = load_public_key(args.public_key)
        witnesses = [load_witness_key(w) for w in args.witness_key]
        data = Path(args.bundle).read_bytes()
        verified = verify_bundle(
            data, key, witnesses=witnesses, require_witnesses=args.require_witnesses
        )
        result = report(verified, args.as_of, args.known_at)
    except (BundleError, OSError) as e:
        print(f"Error: bundle rejected: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result) if args.json else report_text(result))
    return 0


__all__ = [
    "BUNDLE_FORMAT",
    "CONTACT_TOPIC",
    "BundleError",
    "VerifiedBundle",
    "VerifiedContact",
    "VerifiedEvent",
    "contact_originator",
    "encode_bundle",
    "load_public_key",
    "load_witness_key",
    "main",
    "parse_time",
    "report",
    "report_text",
    "verify_bundle",
]


if __name__ == "__main__":
    sys.exit(main())
