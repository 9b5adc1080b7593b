"""Witness cosignatures on checkpoints (https://c2sp.org/tlog-cosignature, Ed25519 v1).

A witness that has checked a checkpoint against what it saw of the log before
adds one signature line to the checkpoint's note::

    — <witness name> base64(key ID || 8-byte big-endian timestamp || Ed25519 signature)

over the message ``cosignature/v1\\n`` ``time <timestamp>\\n`` and the checkpoint
text. The key ID is SHA-256(name || 0x0A || 0x04 || public key)[:4] (type 0x04,
so a witness key is never mistaken for a log key), and a witness's verifier key
is ``<name>+<key ID hex>+<base64(0x04 || public key)>``.

Standard library and ``cryptography`` only: the offline verifier imports this module.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from dnd_ledger.notary.keychain import note_body
from dnd_ledger.notary.signed_note import SIGNATURE_PREFIX, NoteError

ALG_COSIGNATURE_V1 = 0x04
HEADER = "cosignature/v1\n"
_BLOB = 4 + 8 + 64


class WitnessKey(NamedTuple):
    name: str
    key_id: bytes
    public_key: Ed25519PublicKey


class Cosignature(NamedTuple):
    witness: str
    timestamp: int


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def witness_key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    data = name.encode("utf-8") + b"\n" + bytes([ALG_COSIGNATURE_V1]) + _raw(public_key)
    return hashlib.sha256(data).digest()[:4]


def format_witness_vkey(name: str, public_key: Ed25519PublicKey) -> str:
    encoded = base64.b64encode(bytes([ALG_COSIGNATURE_V1]) + _raw(public_key)).decode("ascii")
    return f"{name}+{witness_key_id(name, public_key).hex()}+{encoded}"


def parse_witness_vkey(vkey: str) -> WitnessKey:
    """A witness verifier key (type 0x04), its key ID checked against its name and key."""
    name, _, rest = vkey.strip().partition("+")
    kid_hex, _, key_b64 = rest.partition("+")
    if not name or any(ch.isspace() or ch == "+" for ch in name) or len(kid_hex) != 8:
        raise NoteError("witness key must look like <name>+<key ID>+<base64 key>")
    try:
        raw = base64.b64decode(key_b64, validate=True)
        kid = bytes.fromhex(kid_hex)
    except ValueError as e:
        raise NoteError(f"witness key is not valid: {e}") from e
    if len(raw) != 33 or raw[0] != ALG_COSIGNATURE_V1:
        raise NoteError("witness key is not an Ed25519 cosignature/v1 key (type 0x04)")
    public_key = Ed25519PublicKey.from_public_bytes(raw[1:])
    if kid != witness_key_id(name, public_key):
        raise NoteError(f"witness key ID {kid_hex} does not match its name and key")
    return WitnessKey(name, kid, public_key)


def cosign(body: str, name: str, private_key: Ed25519PrivateKey, timestamp: int) -> str:
    """One cosignature line (ending in a newline) over a checkpoint text."""
    if not 0 <= timestamp < 2**63:
        raise NoteError("cosignature timestamp out of range")
    message = f"{HEADER}time {timestamp}\n{body}".encode()
    signature = private_key.sign(message)
    kid = witness_key_id(name, private_key.public_key())
    blob = base64.b64encode(kid + struct.pack(">Q", timestamp) + signature).decode("ascii")
    return f"{SIGNATURE_PREFIX}{name} {blob}\n"


def cosignatures(note: str, witnesses: list[WitnessKey]) -> list[Cosignature]:
    """The valid cosignatures from the given witnesses, one per witness.

    A line that names a given witness and its key ID but does not verify is a forgery,
    and raises NoteError; lines from other keys are ignored, as the spec requires.
    """
    body = note_body(note)
    found: dict[bytes, Cosignature] = {}
    for line in note[len(body) + 1 :].splitlines():
        name, _, blob_b64 = line[len(SIGNATURE_PREFIX) :].partition(" ")
        for w in witnesses:
            if name != w.name:
                continue
            try:
                blob = base64.b64decode(blob_b64, validate=True)
            except ValueError:
                blob = b""
            if blob[:4] != w.key_id:
                continue
            if len(blob) != _BLOB:
                raise NoteError(f"cosignature from witness {w.name} is not a cosignature/v1")
            (timestamp,) = struct.unpack(">Q", blob[4:12])
            message = f"{HEADER}time {timestamp}\n{body}".encode()
            try:
                w.public_key.verify(blob[12:], message)
            except InvalidSignature as e:
                raise NoteError(f"the cosignature from witness {w.name} does not verify: it "
                                "was forged or the checkpoint changed") from e  # fmt: skip
            found[w.key_id] = Cosignature(w.name, timestamp)
    return list(found.values())


def cosignature_lines(response: str) -> list[str]:
    """The signature lines of a witness's response, each checked for shape only."""
    lines = []
    for line in response.splitlines():
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError("witness response holds a line that is not a signature")
        name, sep, blob_b64 = line[len(SIGNATURE_PREFIX) :].partition(" ")
        try:
            blob = base64.b64decode(blob_b64, validate=True)
        except ValueError as e:
            raise NoteError("witness response holds a signature that is not base64") from e
        if not name or not sep or len(blob) != _BLOB:
            raise NoteError("witness response holds a line that is not a cosignature/v1")
        lines.append(line + "\n")
    return lines


__all__ = [
    "Cosignature",
    "WitnessKey",
    "cosign",
    "cosignature_lines",
    "cosignatures",
    "format_witness_vkey",
    "parse_witness_vkey",
    "witness_key_id",
]
