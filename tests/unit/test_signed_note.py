"""Tests for dnd_ledger.notary.signed_note (C2SP signed-note and tlog-checkpoint)."""

from __future__ import annotations

import ast
import base64
import hashlib
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from dnd_ledger.notary import signed_note
from dnd_ledger.notary.signed_note import (
    MAX_SIGNATURES,
    Checkpoint,
    NoteError,
    fingerprint,
    format_checkpoint_body,
    format_private_key,
    format_vkey,
    generate_key,
    key_id,
    load_private_key,
    parse_checkpoint_body,
    parse_vkey,
    sign_checkpoint,
    sign_note,
    verify_checkpoint,
    verify_note,
)

EM_DASH = "\u2014"

# Interoperability vectors produced by other implementations.
# golang.org/x/mod/sumdb/note package documentation: a private key in Go's
# "PRIVATE+KEY+<name>+<id>+base64(0x01 || seed)" form, its verifier key, and
# the exact signed note (Ed25519 is deterministic, so signing must reproduce it).
GO_SKEY_B64 = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n"
    f"{EM_DASH} PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
# The example of the C2SP signed-note specification (revision d4c16da, "Verifier keys").
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n"
    f"{EM_DASH} example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)
# The example body of the C2SP tlog-checkpoint specification.
SPEC_CHECKPOINT_BODY = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)

NAME = "example.com/dnd-ledger"
ROOT = hashlib.sha256(b"root").digest()
# Fixed seeds keep failures reproducible.
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
PUB = KEY.public_key()


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _checkpoint_note() -> str:
    return sign_checkpoint(Checkpoint(NAME, 1234, ROOT, ("ext one",)), NAME, KEY)


# --- interoperability ---------------------------------------------------------------------


def test_go_reference_note_is_reproduced_and_verified() -> None:
    go_key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(GO_SKEY_B64)[1:])
    assert sign_note(GO_TEXT, "PeterNeumann", go_key) == GO_NOTE
    assert format_vkey("PeterNeumann", go_key.public_key()) == GO_VKEY
    vkey = parse_vkey(GO_VKEY)
    assert vkey.name == "PeterNeumann"
    assert vkey.key_id == bytes.fromhex("c74f20a3")
    assert verify_note(GO_NOTE, vkey.name, vkey.public_key) == GO_TEXT
    assert verify_note(GO_NOTE.encode(), vkey.name, vkey.public_key) == GO_TEXT


def test_spec_example_note_verifies() -> None:
    name, kid, public_key = parse_vkey(SPEC_VKEY)
    assert (name, kid.hex()) == ("example.com/foo", "530d903a")
    assert verify_note(SPEC_NOTE, name, public_key) == "This is an example message.\n"
    assert format_vkey(name, public_key) == SPEC_VKEY


def test_spec_example_checkpoint_body_parses_and_reformats() -> None:
    cp = parse_checkpoint_body(SPEC_CHECKPOINT_BODY)
    assert cp.origin == "example.com/behind-the-sofa"
    assert cp.size == 20852163
    assert cp.root_hash == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert cp.extensions == ()
    assert format_checkpoint_body(cp) == SPEC_CHECKPOINT_BODY


# --- exact format -------------------------------------------------------------------------


def test_note_layout_matches_the_spec_exactly() -> None:
    body = format_checkpoint_body(Checkpoint(NAME, 7, ROOT))
    note = sign_note(body, NAME, KEY)
    expected_id = hashlib.sha256(NAME.encode() + b"\n\x01" + _raw(KEY)).digest()[:4]
    signature = KEY.sign(body.encode())
    assert note == (
        f"{NAME}\n7\n{base64.b64encode(ROOT).decode()}\n"
        "\n"
        f"\u2014 {NAME} {base64.b64encode(expected_id + signature).decode()}\n"
    )
    assert note.endswith("\n")
    assert not note.endswith("\n\n")
    assert note.count("\n\n") == 1
    assert key_id(NAME, PUB) == expected_id
    assert "\u2014".encode() == b"\xe2\x80\x94"


def test_checkpoint_body_format() -> None:
    cp = Checkpoint("example.com/log", 0, ROOT, ("first ext", "second"))
    body = format_checkpoint_body(cp)
    assert body == f"example.com/log\n0\n{base64.b64encode(ROOT).decode()}\nfirst ext\nsecond\n"
    assert parse_checkpoint_body(body) == cp


def test_vkey_format() -> None:
    vkey = format_vkey(NAME, PUB)
    name, hex_id, key_b64 = vkey.split("+", 2)
    assert name == NAME
    assert hex_id == key_id(NAME, PUB).hex()
    assert len(hex_id) == 8
    assert base64.b64decode(key_b64) == b"\x01" + _raw(KEY)
    assert parse_vkey(vkey).public_key.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    ) == _raw(KEY)


# --- round trips --------------------------------------------------------------------------


def test_generate_sign_verify_round_trip() -> None:
    private_file, vkey = generate_key(NAME)
    assert private_file.startswith(f"Key-Name: {NAME}\n-----BEGIN PRIVATE KEY-----\n".encode())
    name, private_key = load_private_key(private_file)
    assert name == NAME
    assert format_vkey(name, private_key.public_key()) == vkey
    verifier = parse_vkey(vkey)
    cp = Checkpoint(NAME, 99, ROOT)
    note = sign_checkpoint(cp, name, private_key)
    assert verify_checkpoint(note, verifier.name, verifier.public_key, origin=NAME) == cp
    assert verify_note(note, verifier.name, verifier.public_key) == format_checkpoint_body(cp)


def test_private_key_file_is_plain_pkcs8_after_the_name_line() -> None:
    data = format_private_key(NAME, KEY)
    # The name line is RFC 7468 explanatory text, so standard tools still read the key.
    key = serialization.load_pem_private_key(data, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    assert _raw(key) == _raw(KEY)
    assert load_private_key(data.decode()).name == NAME


@settings(max_examples=100, deadline=None)
@given(
    lines=st.lists(
        st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=0, max_size=30),
        min_size=1,
        max_size=5,
    )
)
def test_any_text_round_trips(lines: list[str]) -> None:
    body = "".join(line + "\n" for line in lines)
    assert verify_note(sign_note(body, NAME, KEY), NAME, PUB) == body


# --- tampering ----------------------------------------------------------------------------


def test_every_single_byte_change_is_rejected() -> None:
    note = _checkpoint_note().encode()
    verify_note(note, NAME, PUB)
    tried = 0
    for i in range(len(note)):
        for mask in (0x01, 0x02, 0x20, 0x80):
            tampered = bytearray(note)
            tampered[i] ^= mask
            with pytest.raises(NoteError):
                verify_note(bytes(tampered), NAME, PUB)
            tried += 1
    assert tried == 4 * len(note)


def test_every_character_substitution_is_rejected() -> None:
    note = _checkpoint_note()
    for i, c in enumerate(note):
        for replacement in {"A", "\n", " ", "+", "/", "=", EM_DASH} - {c}:
            with pytest.raises(NoteError):
                verify_note(note[:i] + replacement + note[i + 1 :], NAME, PUB)


def test_every_deletion_and_truncation_is_rejected() -> None:
    note = _checkpoint_note()
    for i in range(len(note)):
        with pytest.raises(NoteError):
            verify_note(note[:i] + note[i + 1 :], NAME, PUB)
        with pytest.raises(NoteError):
            verify_note(note[:i], NAME, PUB)


@pytest.mark.parametrize(
    "suffix",
    ["x", "\n", "x\n", "\n\n", " ", f"{EM_DASH} {NAME}\n", f"{EM_DASH} {NAME} !!!!\n", "\r\n"],
)
def test_trailing_garbage_is_rejected(suffix: str) -> None:
    with pytest.raises(NoteError):
        verify_note(_checkpoint_note() + suffix, NAME, PUB)


def test_hyphen_instead_of_em_dash_is_rejected() -> None:
    note = _checkpoint_note()
    with pytest.raises(NoteError, match="em dash"):
        verify_note(note.replace(EM_DASH, "-"), NAME, PUB)
    with pytest.raises(NoteError):
        verify_note(note.replace(EM_DASH, "\u2013"), NAME, PUB)  # en dash


def test_crlf_line_endings_are_rejected() -> None:
    with pytest.raises(NoteError, match="control"):
        verify_note(_checkpoint_note().replace("\n", "\r\n"), NAME, PUB)


def test_non_canonical_base64_signature_is_rejected() -> None:
    note = _checkpoint_note()
    line = note.rstrip("\n").rsplit("\n", 1)[1]
    blob = line.rsplit(" ", 1)[1]
    # 68 bytes encode to one "=" of padding and 2 unused bits in the last character.
    assert blob.endswith("=")
    assert not blob.endswith("==")
    last = blob[-2]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    sibling = alphabet[alphabet.index(last) ^ 1]  # same decoded bytes, other padding bits
    assert base64.b64decode(blob[:-2] + sibling + "=") == base64.b64decode(blob)
    with pytest.raises(NoteError, match="canonical"):
        verify_note(note.replace(blob, blob[:-2] + sibling + "="), NAME, PUB)


def test_invalid_utf8_is_rejected() -> None:
    with pytest.raises(NoteError, match="UTF-8"):
        verify_note(_checkpoint_note().encode() + b"\xff", NAME, PUB)
    with pytest.raises(NoteError, match="Unicode"):
        verify_note("a\ud800\n" + _checkpoint_note(), NAME, PUB)


# --- keys ---------------------------------------------------------------------------------


def test_wrong_key_is_rejected() -> None:
    note = _checkpoint_note()
    with pytest.raises(NoteError, match="no signature from key"):
        verify_note(note, NAME, OTHER_KEY.public_key())
    with pytest.raises(NoteError, match="no signature from key"):
        verify_note(note, "example.com/other", PUB)


def test_same_name_and_key_id_with_a_bad_signature_is_rejected() -> None:
    note = _checkpoint_note()
    body, _ = note.split("\n\n", 1)
    forged_sig = OTHER_KEY.sign((body + "\n").encode())
    forged = f"{EM_DASH} {NAME} {base64.b64encode(key_id(NAME, PUB) + forged_sig).decode()}\n"
    with pytest.raises(NoteError, match="does not verify"):
        verify_note(note + forged, NAME, PUB)
    with pytest.raises(NoteError, match="does not verify"):
        verify_note(body + "\n\n" + forged, NAME, PUB)


def test_signatures_from_unknown_keys_are_ignored() -> None:
    # Spec: verifiers MUST ignore unknown keys, so witnesses can cosign.
    note = _checkpoint_note()
    body = format_checkpoint_body(Checkpoint(NAME, 1234, ROOT, ("ext one",)))
    cosigned = note + sign_note(body, "witness.example", OTHER_KEY).split("\n\n")[-1]
    assert verify_note(cosigned, NAME, PUB) == body
    assert verify_note(cosigned, "witness.example", OTHER_KEY.public_key()) == body
    # A key sharing only the name (rotation), or only the ID, is also unknown.
    same_name = note + sign_note(body, NAME, OTHER_KEY).split("\n\n")[-1]
    assert verify_note(same_name, NAME, PUB) == body


def test_malformed_lines_from_unknown_keys_still_reject_the_note() -> None:
    note = _checkpoint_note()
    for bad in (f"{EM_DASH} other AAAA\n", f"{EM_DASH} oth er AAAAAAAA\n", f"{EM_DASH}  x\n"):
        with pytest.raises(NoteError):
            verify_note(note + bad, NAME, PUB)


def test_too_many_signatures_are_rejected() -> None:
    note = _checkpoint_note()
    extra = note.split("\n\n")[-1]
    verify_note(note + extra * (MAX_SIGNATURES - 1), NAME, PUB)
    with pytest.raises(NoteError, match="more than"):
        verify_note(note + extra * MAX_SIGNATURES, NAME, PUB)


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        ("", "must look like"),
        ("name+c74f20a3", "must look like"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 hex digits"),
        ("PeterNeumann+c74f20a3+Apc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "base64"),
        ("PeterNeumann+c74f20a3+Alpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "Ed25519"),
        ("PeterNeumann+c74f20a3+" + base64.b64encode(b"\x01" + bytes(31)).decode(), "Ed25519"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "space"),
        (GO_VKEY + "\n", "base64"),
    ],
)
def test_bad_vkeys_are_rejected(vkey: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        parse_vkey(vkey)


def test_bad_private_key_files_are_rejected() -> None:
    pem = KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(NoteError, match="Key-Name"):
        load_private_key(pem)
    with pytest.raises(NoteError, match="key name"):
        load_private_key(b"Key-Name: \n" + pem)
    with pytest.raises(NoteError, match="unencrypted"):
        load_private_key(b"Key-Name: x\nnot a key\n")
    encrypted = KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(NoteError, match="unencrypted"):
        load_private_key(b"Key-Name: x\n" + encrypted)
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(NoteError, match="not hold an Ed25519"):
        load_private_key(b"Key-Name: x\n" + ec_pem)
    with pytest.raises(NoteError, match="UTF-8"):
        load_private_key(b"Key-Name: \xff\n" + pem)


def test_fingerprint() -> None:
    vkey = format_vkey(NAME, PUB)
    fp = fingerprint(PUB)
    assert fp == "sha256:" + hashlib.sha256(_raw(KEY)).hexdigest()
    assert fingerprint(vkey) == fp
    assert fingerprint(OTHER_KEY.public_key()) != fp


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\tb", "a\u00a0b", "a\u3000b", "a\nb"])
def test_invalid_key_names_are_rejected(name: str) -> None:
    with pytest.raises(NoteError):
        sign_note("text\n", name, KEY)
    with pytest.raises(NoteError):
        generate_key(name)


# --- input validation ---------------------------------------------------------------------


@pytest.mark.parametrize("body", ["", "no newline", "tab\there\n", "cr\r\n", "nul\x00\n"])
def test_sign_note_rejects_bad_text(body: str) -> None:
    with pytest.raises(NoteError):
        sign_note(body, NAME, KEY)


def test_note_text_may_contain_blank_lines() -> None:
    body = "first\n\nthird\n"
    assert verify_note(sign_note(body, NAME, KEY), NAME, PUB) == body


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("origin\n1\n", "at least 3"),
        ("origin\n1\nAAAA", "newline"),
        ("\n1\n" + base64.b64encode(ROOT).decode() + "\n", "origin"),
        ("origin\n01\n" + base64.b64encode(ROOT).decode() + "\n", "canonical decimal"),
        ("origin\n+1\n" + base64.b64encode(ROOT).decode() + "\n", "canonical decimal"),
        ("origin\n-1\n" + base64.b64encode(ROOT).decode() + "\n", "canonical decimal"),
        ("origin\n 1\n" + base64.b64encode(ROOT).decode() + "\n", "canonical decimal"),
        ("origin\n\u0661\n" + base64.b64encode(ROOT).decode() + "\n", "canonical decimal"),
        ("origin\n18446744073709551616\n" + base64.b64encode(ROOT).decode() + "\n", "2\\^64"),
        ("origin\n1\n" + base64.b64encode(ROOT[:31]).decode() + "\n", "32 bytes"),
        ("origin\n1\n" + base64.b64encode(ROOT).decode().rstrip("=") + "\n", "base64"),
        ("origin\n1\n" + base64.b64encode(ROOT).decode() + "\n\n", "extension"),
        ("origin\n1\n" + base64.b64encode(ROOT).decode() + "\next\r\n", "extension"),
    ],
)
def test_bad_checkpoint_bodies_are_rejected(body: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        parse_checkpoint_body(body)


def test_checkpoint_validation() -> None:
    assert parse_checkpoint_body(
        format_checkpoint_body(Checkpoint("o", 2**64 - 1, ROOT))
    ) == Checkpoint("o", 2**64 - 1, ROOT)
    for args in [("", 1, ROOT), ("a\nb", 1, ROOT), ("o", -1, ROOT), ("o", 2**64, ROOT)]:
        with pytest.raises(NoteError):
            Checkpoint(*args)
    with pytest.raises(NoteError):
        Checkpoint("o", 1, ROOT[:5])
    with pytest.raises(NoteError):
        Checkpoint("o", True, ROOT)
    with pytest.raises(NoteError):
        Checkpoint("o", 1, ROOT, ("",))


def test_verify_checkpoint_checks_the_origin() -> None:
    note = _checkpoint_note()
    assert verify_checkpoint(note, NAME, PUB).size == 1234
    with pytest.raises(NoteError, match="origin"):
        verify_checkpoint(note, NAME, PUB, origin="example.com/elsewhere")
    plain = sign_note("not a checkpoint\n", NAME, KEY)
    with pytest.raises(NoteError, match="at least 3"):
        verify_checkpoint(plain, NAME, PUB)


def test_note_error_is_a_value_error() -> None:
    assert issubclass(NoteError, ValueError)


def test_signed_note_module_imports_only_stdlib_cryptography_and_merkle() -> None:
    tree = ast.parse(Path(signed_note.__file__).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                assert module == "merkle", module
            else:
                imported.add(module.split(".")[0])
    allowed = set(sys.stdlib_module_names) | {"__future__", "cryptography"}
    assert imported <= allowed, imported
