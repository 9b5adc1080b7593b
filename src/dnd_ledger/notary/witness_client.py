"""``dnd-ledger checkpoint --witness URL``: the client side of C2SP tlog-witness.

For each witness it sends the checkpoint with a consistency proof from the size
the witness last cosigned (learnt from its 409 answer when unknown) and keeps
the cosignature lines it returns, appended to the checkpoint's note, where
``verify --require-witnesses`` and the offline verifier find them.
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import TYPE_CHECKING

from dnd_ledger.domain.errors import LedgerError
from dnd_ledger.notary.cosign import WitnessKey, cosignature_lines, cosignatures
from dnd_ledger.notary.records import CheckpointRecord, format_time
from dnd_ledger.notary.signed_note import NoteError
from dnd_ledger.notary.tree import TreeLevels

if TYPE_CHECKING:
    from dnd_ledger.notary.notary import Notary

TIMEOUT = 10.0


class WitnessError(LedgerError):
    """A witness refused the checkpoint, or could not be asked."""


def request_body(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    lines = [f"old {old_size}", *(base64.b64encode(h).decode("ascii") for h in proof)]
    return ("\n".join(lines) + "\n\n" + note).encode("utf-8")


def ask_witness(url: str, record: CheckpointRecord, levels: TreeLevels) -> list[str]:
    """The cosignature lines one witness returns for the checkpoint."""
    endpoint = url.rstrip("/") + "/add-checkpoint"
    old = 0
    for _ in range(3):
        proof = levels.consistency_proof(old, record.size) if old else []
        status, text = _post(endpoint, request_body(old, proof, record.note))
        if status == 200:
            try:
                return cosignature_lines(text)
            except NoteError as e:
                raise WitnessError(f"witness {url} answered with no cosignature: {e}") from e
        if status != 409 or not text.strip().isdigit():
            raise WitnessError(
                f"witness {url} refused the checkpoint at size {record.size}: HTTP {status}: "
                f"{text.strip()}"
            )
        seen = int(text.strip())
        if seen > record.size:
            raise WitnessError(
                f"witness {url} has cosigned this log at size {seen}, larger than this "
                f"checkpoint's {record.size}: the log was rolled back, or this is a fork"
            )
        if seen == old:
            raise WitnessError(f"witness {url} refused the checkpoint at size {record.size}: "
                               "another root at the size it cosigned (a fork)")  # fmt: skip
        old = seen
    raise WitnessError(f"witness {url} keeps changing its size: try again")


def _post(url: str, body: bytes) -> tuple[int, str]:
    if not url.startswith(("http://", "https://")):
        raise WitnessError(f"witness URL {url} is not http:// or https://")
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url, data=body, method="POST", headers={"Content-Type": "text/plain; charset=utf-8"}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
            return int(response.status), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return int(e.code), e.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise WitnessError(f"cannot reach witness {url}: {e}") from e


def collect_cosignatures(
    notary: Notary,
    record: CheckpointRecord,
    urls: Sequence[str],
    witness_keys: Sequence[WitnessKey] = (),
) -> CheckpointRecord:
    """Ask every witness to cosign ``record``; store what they return in its note.

    Lines that claim the log's own key names are refused; with ``witness_keys``,
    only cosignatures that verify with one of them are kept.
    """
    if not record.signed:
        raise WitnessError("witnesses cosign only signed checkpoints: configure a signing key")
    levels = notary.levels(record.size)
    log_keys = {(r.key_name, r.key_fingerprint) for r in notary.checkpoints() if r.signed}
    note = record.note
    for url in urls:
        lines = ask_witness(url, record, levels)
        for line in lines:
            name = line[2:].partition(" ")[0]
            if any(name == n for n, _ in log_keys):
                raise WitnessError(f"witness {url} answered with a line in the log's key name")
        if witness_keys:
            try:
                good = {c.witness for c in cosignatures(note + "".join(lines), list(witness_keys))}
            except NoteError as e:
                raise WitnessError(f"witness {url}: {e}") from e
            lines = [ln for ln in lines if ln[2:].partition(" ")[0] in good]
        note += "".join(ln for ln in lines if ln not in note)
    table = "dnd_notary_handovers" if record.handover else "dnd_notary_checkpoints"
    notary.sql.execute(
        f"UPDATE {table} SET note = ? WHERE size = ? AND created_at = ?",
        (note, record.size, format_time(record.created_at)),
    )
    return CheckpointRecord(record.size, record.root, note, record.key_name,
                            record.key_fingerprint, record.created_at, record.handover)  # fmt: skip


__all__ = ["WitnessError", "ask_witness", "collect_cosignatures", "request_body"]
