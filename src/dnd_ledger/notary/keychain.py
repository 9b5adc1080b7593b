"""Key rotation: a chain of signing keys, each handed over to the next in a signed checkpoint.

A hand-over is an ordinary C2SP checkpoint with one more extension line,
``key-handover <verifier key of the new key>``, signed by *both* keys: the old
key's signature says "from here on, this key speaks for the log" (it covers
the line naming the new key), the new key's shows that its holder took over.
From the hand-over on, every checkpoint must be signed by the new key; one
signed only by a retired key after its hand-over is an error.

An auditor is given the first public key only. :class:`KeyChain` starts from it
and follows the hand-overs in log order (tree size, then time), so a checkpoint
made years and two rotations later still verifies from that first key.

Standard library and ``cryptography`` only: the offline verifier imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dnd_ledger.notary.signed_note import (
    SIGNATURE_PREFIX,
    Checkpoint,
    NoteError,
    VerifierKey,
    fingerprint,
    format_checkpoint_body,
    format_vkey,
    key_id,
    parse_checkpoint_body,
    parse_vkey,
    sign_note,
    verify_checkpoint,
)

HANDOVER_PREFIX = "key-handover "
TIME_PREFIX = "time "
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def note_body(note: str) -> str:
    """The text of a signed note (everything before its signature block), unverified."""
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line before its signatures")
    return note[: split + 1]


def unverified_checkpoint(note: str) -> Checkpoint:
    return parse_checkpoint_body(note_body(note))


def note_time(checkpoint: Checkpoint) -> datetime | None:
    """The ``time`` extension line, if there is exactly one in the checkpoint format."""
    times = [x for x in checkpoint.extensions if x.startswith(TIME_PREFIX)]
    if len(times) != 1:
        return None
    try:
        return datetime.strptime(times[0][len(TIME_PREFIX) :], TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def handover_key(checkpoint: Checkpoint) -> VerifierKey | None:
    """The key a checkpoint hands over to, if it is a hand-over."""
    lines = [x for x in checkpoint.extensions if x.startswith(HANDOVER_PREFIX)]
    if not lines:
        return None
    if len(lines) > 1:
        raise NoteError("checkpoint names more than one new key")
    return parse_vkey(lines[0][len(HANDOVER_PREFIX) :])


def sign_handover(
    checkpoint: Checkpoint,
    old: tuple[str, Ed25519PrivateKey],
    new: tuple[str, Ed25519PrivateKey],
) -> str:
    """The hand-over note: ``checkpoint`` plus the new key's line, signed by old then new."""
    new_vkey = format_vkey(new[0], new[1].public_key())
    if key_id(old[0], old[1].public_key()) == key_id(new[0], new[1].public_key()):
        raise NoteError("the new key is the old key")
    body = Checkpoint(
        checkpoint.origin,
        checkpoint.size,
        checkpoint.root_hash,
        (*checkpoint.extensions, HANDOVER_PREFIX + new_vkey),
    )
    note = sign_note(format_checkpoint_body(body), old[0], old[1])
    return add_signature(note, new[0], new[1])


def add_signature(note: str, key_name: str, private_key: Ed25519PrivateKey) -> str:
    """Another signature line on a signed note, over the same text."""
    body = note_body(note)
    line = sign_note(body, key_name, private_key)[len(body) + 1 :]
    if not line.startswith(SIGNATURE_PREFIX):
        raise NoteError("could not sign the note")
    return note + line


@dataclass(frozen=True)
class Handover:
    size: int
    time: datetime | None
    old: VerifierKey
    new: VerifierKey


class KeyChain:
    """The keys of one log, from the first (trusted) key along its verified hand-overs.

    Feed it the log's checkpoints in order (tree size, then time) with
    :meth:`accept`; it verifies each with the key in force and moves on at each
    hand-over. :meth:`verify_at` checks a checkpoint kept elsewhere against the
    key that was in force at its size and time.
    """

    def __init__(self, first: VerifierKey) -> None:
        self.keys: list[VerifierKey] = [first]
        self.handovers: list[Handover] = []

    @property
    def current(self) -> VerifierKey:
        return self.keys[-1]

    @property
    def first(self) -> VerifierKey:
        return self.keys[0]

    def accept(self, note: str) -> Checkpoint:
        """Verify the next checkpoint of the log; raise NoteError saying why it fails."""
        checkpoint = unverified_checkpoint(note)
        new = handover_key(checkpoint)
        key = self.current
        self._verify(note, key, checkpoint)
        if new is None:
            return checkpoint
        try:
            verify_checkpoint(note, new.name, new.public_key)
        except NoteError as e:
            raise NoteError(f"hand-over to key {_who(new)} is not signed by that key: {e}") from e
        if any(fingerprint(k.public_key) == fingerprint(new.public_key) for k in self.keys):
            raise NoteError(f"hand-over to key {_who(new)}, which was already used")
        self.handovers.append(Handover(checkpoint.size, note_time(checkpoint), key, new))
        self.keys.append(new)
        return checkpoint

    def key_at(self, size: int, time: datetime | None) -> VerifierKey:
        """The key in force for a checkpoint of ``size`` made at ``time``."""
        key = self.first
        for h in self.handovers:
            after = size > h.size or (
                size == h.size and time is not None and h.time is not None and time > h.time
            )
            if not after:
                break
            key = h.new
        return key

    def verify_at(self, note: str) -> Checkpoint:
        """Verify a checkpoint with the key in force at its size and time."""
        checkpoint = unverified_checkpoint(note)
        key = self.key_at(checkpoint.size, note_time(checkpoint))
        self._verify(note, key, checkpoint)
        return checkpoint

    def _verify(self, note: str, key: VerifierKey, checkpoint: Checkpoint) -> None:
        try:
            verify_checkpoint(note, key.name, key.public_key)
        except NoteError as e:
            for h in self.handovers:
                if h.old is key or not _verifies(note, h.old):
                    continue
                raise NoteError(
                    f"signed only by the retired key {_who(h.old)} after its hand-over to "
                    f"{_who(h.new)} at size {h.size}"
                ) from e
            raise NoteError(f"does not verify with key {_who(key)}: {e}") from e


def _verifies(note: str, key: VerifierKey) -> bool:
    try:
        verify_checkpoint(note, key.name, key.public_key)
    except NoteError:
        return False
    return True


def _who(key: VerifierKey) -> str:
    return f"{key.name} ({fingerprint(key.public_key)[:23]}...)"


__all__ = [
    "HANDOVER_PREFIX",
    "Handover",
    "KeyChain",
    "add_signature",
    "handover_key",
    "note_body",
    "note_time",
    "sign_handover",
    "unverified_checkpoint",
]
