"""C2SP signed notes with Ed25519, and C2SP tlog checkpoints carried in them.

A checkpoint (origin, tree size, root hash) signed by the ledger's key is what
an auditor keeps and compares: two checkpoints from the same key that no
consistency proof can join prove the log was rewritten. Using the published
formats rather than an ad-hoc one means the notes can be checked with other
tools (Go's golang.org/x/mod/sumdb/note, transparency-dev/formats) and could
be cosigned by standard witnesses.

Specifications followed:

* https://c2sp.org/signed-note -- a text ending in a newline, a blank line,
  then one or more lines ``— <key name> <base64(key ID || signature)>``
  (U+2014 em dash). Ed25519 key ID = SHA-256(name || 0x0A || 0x01 || public
  key)[:4]. Signatures from unknown keys are ignored, as the spec requires,
  so that a note can carry cosignatures.
* https://c2sp.org/tlog-checkpoint -- the text is the origin line, the tree
  size in decimal without leading zeros, the base64 root hash, then optional
  non-empty extension lines.

Keys are serialised as:

* verifier key (public, the C2SP/Go "vkey" form):
  ``<name>+<8 hex digits key ID>+<base64(0x01 || 32-byte public key)>``;
* private key file: one line ``Key-Name: <name>`` followed by the key as an
  unencrypted PKCS#8 PEM block (``-----BEGIN PRIVATE KEY-----``). The name
  line is RFC 7468 explanatory text, so ``openssl pkey -in FILE`` still reads
  the key; the file must be protected by file-system permissions.

Everything is strict: a note, key or checkpoint that is not exactly in the
specified form raises NoteError rather than being repaired, because an
auditor should never accept something the signer would not have produced.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

ALG_ED25519 = 0x01
"""Signature type byte for Ed25519 in key IDs and verifier keys."""

SIGNATURE_PREFIX = "\u2014 "
"""Every signature line starts with an em dash (U+2014) and a space."""

MAX_SIGNATURES = 100
"""Notes with more signature lines are rejected; the spec requires accepting at least 16."""

KEY_NAME_HEADER = "Key-Name: "
"""First line of a private key file, followed by the key name."""

ROOT_HASH_SIZE = 32
MAX_TREE_SIZE = 2**64 - 1

_ED25519_SIGNATURE_SIZE = 64
_CONTROL_CHARS = re.compile(r"[\x00-\x09\x0b-\x1f]")
_TREE_SIZE = re.compile(r"0|[1-9][0-9]*")
_KEY_ID_HEX = re.compile(r"[0-9a-fA-F]{8}")


class NoteError(ValueError):
    """A note, checkpoint or key is malformed, or a signature does not verify."""


class VerifierKey(NamedTuple):
    """A parsed verifier key: who signs, the 4-byte key ID, and the public key."""

    name: str
    key_id: bytes
    public_key: Ed25519PublicKey


class SigningKey(NamedTuple):
    """A loaded private key file: the key name and the Ed25519 private key."""

    name: str
    private_key: Ed25519PrivateKey


# --- checkpoints (c2sp.org/tlog-checkpoint) -----------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head as signed in a checkpoint note.

    Validated on construction so that every Checkpoint can be formatted and
    parsed back to an equal value.
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "extensions", tuple(self.extensions))
        _check_line(self.origin, "checkpoint origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise NoteError(f"checkpoint size must be an integer, got {self.size!r}")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise NoteError(f"checkpoint size {self.size} is outside 0..2^64-1")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != ROOT_HASH_SIZE:
            raise NoteError(f"checkpoint root hash must be {ROOT_HASH_SIZE} bytes")
        for ext in self.extensions:
            _check_line(ext, "checkpoint extension line")


def format_checkpoint_body(checkpoint: Checkpoint) -> str:
    """The note text of a checkpoint, ending in a newline."""
    lines = [
        checkpoint.origin,
        str(checkpoint.size),
        base64.b64encode(checkpoint.root_hash).decode("ascii"),
        *checkpoint.extensions,
    ]
    return "".join(line + "\n" for line in lines)


def parse_checkpoint_body(body: str) -> Checkpoint:
    """Inverse of ``format_checkpoint_body``; accepts only the canonical form."""
    if not body.endswith("\n"):
        raise NoteError("checkpoint text must end with a newline")
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError(f"checkpoint text has {len(lines)} lines, needs at least 3")
    origin, size_line, root_line, *extensions = lines
    if not _TREE_SIZE.fullmatch(size_line) or len(size_line) > len(str(MAX_TREE_SIZE)):
        raise NoteError(f"checkpoint size line is not a canonical decimal number: {size_line!r}")
    root_hash = _b64decode_canonical(root_line, "checkpoint root hash")
    return Checkpoint(origin, int(size_line), root_hash, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, key_name: str, private_key: Ed25519PrivateKey) -> str:
    """``sign_note`` of the checkpoint's text."""
    return sign_note(format_checkpoint_body(checkpoint), key_name, private_key)


def verify_checkpoint(
    note_text: str | bytes,
    key_name: str,
    public_key: Ed25519PublicKey,
    *,
    origin: str | None = None,
) -> Checkpoint:
    """Verify a checkpoint note and parse its text.

    ``origin``, when given, must match the checkpoint's origin line: a valid
    signature over some other log's checkpoint is not evidence about this one.
    """
    checkpoint = parse_checkpoint_body(verify_note(note_text, key_name, public_key))
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(f"checkpoint origin {checkpoint.origin!r} is not {origin!r}")
    return checkpoint


# --- signed notes (c2sp.org/signed-note) ---------------------------------------------------


def key_id(key_name: str, public_key: Ed25519PublicKey) -> bytes:
    """The 4-byte Ed25519 key ID: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    _check_key_name(key_name)
    data = key_name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + _raw_public(public_key)
    return hashlib.sha256(data).digest()[:4]


def sign_note(body: str, key_name: str, private_key: Ed25519PrivateKey) -> str:
    """The signed note: ``body``, a blank line, and one Ed25519 signature line.

    ``body`` must be non-empty, end with a newline and contain no control
    characters other than newline. The signature covers exactly ``body``'s
    UTF-8 bytes, final newline included, and not the blank line.
    """
    _check_text(body)
    kid = key_id(key_name, private_key.public_key())
    signature = private_key.sign(body.encode("utf-8"))
    blob = base64.b64encode(kid + signature).decode("ascii")
    return f"{body}\n{SIGNATURE_PREFIX}{key_name} {blob}\n"


def verify_note(note_text: str | bytes, key_name: str, public_key: Ed25519PublicKey) -> str:
    """Verify a signed note against one trusted key and return its text.

    Succeeds only if at least one signature line is from this key (same name
    and key ID) and every such line verifies. Lines from other keys must be
    well-formed but are otherwise ignored, as the spec requires.
    """
    text = _decode_note(note_text)
    if _CONTROL_CHARS.search(text):
        raise NoteError("note contains control characters other than newline")
    split = text.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line before its signatures")
    body, signature_block = text[: split + 1], text[split + 2 :]
    if not signature_block:
        raise NoteError("note has no signature lines after its last blank line")
    if not signature_block.endswith("\n"):
        raise NoteError("note does not end with a newline")
    lines = signature_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has {len(lines)} signatures, more than {MAX_SIGNATURES}")

    want_id = key_id(key_name, public_key)
    message = body.encode("utf-8")
    verified = False
    for number, line in enumerate(lines, start=1):
        name, kid, signature = _parse_signature_line(line, number)
        if name != key_name or kid != want_id:
            continue
        if len(signature) != _ED25519_SIGNATURE_SIZE:
            raise NoteError(f"signature line {number} is not an Ed25519 signature")
        try:
            public_key.verify(signature, message)
        except InvalidSignature as exc:
            raise NoteError(f"signature line {number} from {key_name} does not verify") from exc
        verified = True
    if not verified:
        raise NoteError(f"note has no signature from key {key_name}+{want_id.hex()}")
    return body


def _parse_signature_line(line: str, number: int) -> tuple[str, bytes, bytes]:
    if not line.startswith(SIGNATURE_PREFIX):
        raise NoteError(f"signature line {number} does not start with an em dash and a space")
    name, sep, blob = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not sep:
        raise NoteError(f"signature line {number} has no space between key name and signature")
    _check_key_name(name)
    raw = _b64decode_canonical(blob, f"signature on line {number}")
    if len(raw) < 5:
        raise NoteError(f"signature line {number} is too short to hold a key ID and signature")
    return name, raw[:4], raw[4:]


# --- keys ----------------------------------------------------------------------------------


def format_vkey(key_name: str, public_key: Ed25519PublicKey) -> str:
    """The verifier key string ``<name>+<hex key ID>+<base64(0x01 || public key)>``."""
    encoded = base64.b64encode(bytes([ALG_ED25519]) + _raw_public(public_key)).decode("ascii")
    return f"{key_name}+{key_id(key_name, public_key).hex()}+{encoded}"


def parse_vkey(vkey: str) -> VerifierKey:
    """Parse a verifier key, checking that its key ID matches its name and key."""
    name, sep1, rest = vkey.partition("+")
    kid_hex, sep2, key_b64 = rest.partition("+")
    if not (sep1 and sep2):
        raise NoteError("verifier key must look like <name>+<key ID>+<base64 key>")
    _check_key_name(name)
    if not _KEY_ID_HEX.fullmatch(kid_hex):
        raise NoteError(f"verifier key ID must be 8 hex digits, got {kid_hex!r}")
    raw = _b64decode_canonical(key_b64, "verifier public key")
    if len(raw) != 33 or raw[0] != ALG_ED25519:
        raise NoteError("verifier key is not an Ed25519 key (type 0x01 and 32 bytes)")
    public_key = Ed25519PublicKey.from_public_bytes(raw[1:])
    kid = bytes.fromhex(kid_hex)
    if kid != key_id(name, public_key):
        raise NoteError(f"verifier key ID {kid_hex} does not match its name and key")
    return VerifierKey(name, kid, public_key)


def generate_key(key_name: str) -> tuple[bytes, str]:
    """A new Ed25519 key: (private key file contents, verifier key string)."""
    _check_key_name(key_name)
    private_key = Ed25519PrivateKey.generate()
    return format_private_key(key_name, private_key), format_vkey(
        key_name, private_key.public_key()
    )


def format_private_key(key_name: str, private_key: Ed25519PrivateKey) -> bytes:
    """The private key file: ``Key-Name: <name>`` then an unencrypted PKCS#8 PEM block."""
    _check_key_name(key_name)
    pem = private_key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    return f"{KEY_NAME_HEADER}{key_name}\n".encode() + pem


def load_private_key(data: bytes | str) -> SigningKey:
    """Read a private key file written by ``format_private_key``/``generate_key``."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError("private key file is not UTF-8") from exc
    first, sep, pem = data.partition("\n")
    if not sep or not first.startswith(KEY_NAME_HEADER):
        raise NoteError(f"private key file must start with a '{KEY_NAME_HEADER}<name>' line")
    name = first[len(KEY_NAME_HEADER) :]
    _check_key_name(name)
    try:
        key = serialization.load_pem_private_key(pem.encode("utf-8"), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise NoteError(f"private key file does not hold an unencrypted key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise NoteError("private key file does not hold an Ed25519 key")
    return SigningKey(name, key)


def fingerprint(key: Ed25519PublicKey | str) -> str:
    """``sha256:<hex>`` of the raw 32-byte public key, for comparing keys out of band.

    Accepts a public key or a verifier key string. Unlike the 4-byte key ID,
    which only says which key to try, this is long enough to be trusted when
    two people read it to each other.
    """
    public_key = parse_vkey(key).public_key if isinstance(key, str) else key
    return "sha256:" + hashlib.sha256(_raw_public(public_key)).hexdigest()


# --- helpers -------------------------------------------------------------------------------


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw
    )


def _check_key_name(name: str) -> None:
    """Key names are non-empty, without Unicode spaces, '+' or control characters."""
    if not isinstance(name, str) or not name:
        raise NoteError("key name must be a non-empty string")
    if any(c.isspace() or c == "+" for c in name) or _CONTROL_CHARS.search(name):
        raise NoteError(f"key name {name!r} contains a space, '+' or control character")
    _check_utf8(name, "key name")


def _check_text(body: str) -> None:
    if not isinstance(body, str) or not body:
        raise NoteError("note text must be a non-empty string")
    if not body.endswith("\n"):
        raise NoteError("note text must end with a newline")
    if _CONTROL_CHARS.search(body):
        raise NoteError("note text contains control characters other than newline")
    _check_utf8(body, "note text")


def _check_line(value: str, what: str) -> None:
    if not isinstance(value, str) or not value:
        raise NoteError(f"{what} must be a non-empty string")
    if "\n" in value or _CONTROL_CHARS.search(value):
        raise NoteError(f"{what} contains a newline or control character")
    _check_utf8(value, what)


def _check_utf8(value: str, what: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NoteError(f"{what} is not valid Unicode text") from exc


def _decode_note(note_text: str | bytes) -> str:
    if isinstance(note_text, bytes):
        try:
            return note_text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError("note is not valid UTF-8") from exc
    _check_utf8(note_text, "note")
    return note_text


def _b64decode_canonical(value: str, what: str) -> bytes:
    """Standard base64 with padding, rejecting any other spelling of the same bytes.

    Non-canonical input (e.g. non-zero unused bits in the last character)
    would let the signed bytes stay the same while the text changes; refusing
    it keeps "any change to the note is detected" true.
    """
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except ValueError as exc:  # binascii.Error and UnicodeEncodeError are ValueErrors
        raise NoteError(f"{what} is not valid base64") from exc
    if not raw or base64.b64encode(raw).decode("ascii") != value:
        raise NoteError(f"{what} is not canonical base64")
    return raw
