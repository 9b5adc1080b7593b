"""A small C2SP tlog witness (https://c2sp.org/tlog-witness): ``dnd-ledger witness serve``.

Someone other than the ledger's operator (an auditor, a second organisation)
runs it with their own key. It trusts the log keys it is given; for each log
(named by its checkpoint origin) it remembers the latest checkpoint it cosigned
and the log's key chain (it follows key hand-overs as ``verify`` does). It
cosigns a new checkpoint only if it is signed by the log's key in force and a
consistency proof shows it extends the one it cosigned before; so it never
cosigns a rolled-back or forked tree of a log. ``POST /add-checkpoint``:

* 400 malformed request or old size larger than the checkpoint; 403 no trusted
  signature (or one only a retired key made); 404 the origin is not one this
  witness knows and its checkpoint is signed by none of its log keys;
* 409 the old size is not the size it last cosigned (the body says that size,
  ``text/x.tlog.size``), or the same size with another root (a fork);
* 422 the consistency proof does not verify;
* 200 one cosignature line.

State lives in one JSON file per log in the state directory, replaced atomically
under a lock before the witness answers. Refused checkpoints that carry a valid
log signature are appended to ``evidence.log`` there: a signed fork is proof.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from dnd_ledger.notary.cosign import cosign
from dnd_ledger.notary.keychain import Handover, KeyChain, note_body, unverified_checkpoint
from dnd_ledger.notary.merkle import ProofError
from dnd_ledger.notary.merkle_proofs import verify_consistency
from dnd_ledger.notary.signed_note import (
    NoteError,
    SigningKey,
    VerifierKey,
    format_vkey,
    parse_vkey,
)

MAX_BODY = 1 << 20
MAX_PROOF = 63


class Refused(Exception):
    def __init__(self, status: int, message: str, body: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body if body is not None else message + "\n"


@dataclass
class Witness:
    key: SigningKey
    state_dir: Path
    log_keys: list[VerifierKey]
    clock: Any = time.time

    def __post_init__(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def add_checkpoint(self, request: bytes) -> str:
        """Check and cosign one add-checkpoint request body; raise Refused otherwise."""
        old_size, proof, note = _parse_request(request)
        try:
            checkpoint = unverified_checkpoint(note)
        except NoteError as e:
            raise Refused(400, f"checkpoint is malformed: {e}") from e
        if old_size > checkpoint.size:
            raise Refused(400, f"old size {old_size} is larger than the checkpoint's")
        with self._lock:
            path = self.state_dir / (
                hashlib.sha256(checkpoint.origin.encode()).hexdigest() + ".json"
            )
            state = json.loads(path.read_text()) if path.exists() else None
            chain = self._chain(state, note, checkpoint.origin)
            try:
                chain.accept(note)
            except NoteError as e:
                raise Refused(
                    403, f"checkpoint is not signed by the log's key in force: {e}"
                ) from e
            seen = 0 if state is None else int(state["size"])
            if old_size != seen:
                raise Refused(409, f"old size {old_size} is not {seen}", f"{seen}\n")
            if state is not None:
                old_root = base64.b64decode(state["root"])
                try:
                    if old_size == checkpoint.size:
                        if checkpoint.root_hash != old_root:
                            self._evidence(note, "same size, another root")
                            raise Refused(409, "same size as the checkpoint cosigned before, "
                                          "another root: a fork", f"{seen}\n")  # fmt: skip
                    else:
                        verify_consistency(old_size, checkpoint.size, proof, old_root,
                                           checkpoint.root_hash)  # fmt: skip
                except ProofError as e:
                    self._evidence(note, f"inconsistent with size {seen}: {e}")
                    raise Refused(422, f"consistency proof does not verify: {e}") from e
            elif proof:
                raise Refused(400, "a proof from size 0 must be empty")
            self._save(path, checkpoint.origin, checkpoint.size, checkpoint.root_hash, chain)
            return cosign(note_body(note), self.key.name, self.key.private_key, int(self.clock()))

    def _chain(self, state: dict[str, Any] | None, note: str, origin: str) -> KeyChain:
        if state is not None:
            keys = [parse_vkey(k) for k in state["keys"]]
            chain = KeyChain(keys[0])
            chain.keys = keys
            chain.handovers = [
                Handover(int(h["size"]), None, keys[i], keys[i + 1])
                for i, h in enumerate(state["handovers"])
            ]
            return chain
        for key in self.log_keys:  # a log seen for the first time: which key signs it?
            try:
                KeyChain(key).accept(note)
            except NoteError:
                continue
            return KeyChain(key)
        raise Refused(404, f"unknown log {origin!r}: its checkpoint is signed by no log key "
                      "this witness trusts")  # fmt: skip

    def _save(self, path: Path, origin: str, size: int, root: bytes, chain: KeyChain) -> None:
        data = {
            "origin": origin,
            "size": size,
            "root": base64.b64encode(root).decode("ascii"),
            "keys": [format_vkey(k.name, k.public_key) for k in chain.keys],
            "handovers": [{"size": h.size} for h in chain.handovers],
        }
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def _evidence(self, note: str, why: str) -> None:
        with open(self.state_dir / "evidence.log", "a", encoding="utf-8") as f:
            f.write(json.dumps({"refused": why, "note": note, "at": int(self.clock())}) + "\n")


def _parse_request(request: bytes) -> tuple[int, list[bytes], str]:
    try:
        text = request.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Refused(400, "request is not UTF-8") from e
    head, sep, note = text.partition("\n\n")
    lines = head.split("\n")
    if not sep or not lines[0].startswith("old "):
        raise Refused(400, "request must start with 'old <size>', proof lines, an empty line")
    size_text = lines[0][4:]
    if not size_text.isdigit() or str(int(size_text)) != size_text:
        raise Refused(400, f"old size {size_text!r} is not a canonical number")
    if len(lines) - 1 > MAX_PROOF:
        raise Refused(400, "too many consistency proof lines")
    proof = []
    for line in lines[1:]:
        try:
            h = base64.b64decode(line, validate=True)
        except ValueError as e:
            raise Refused(400, "a consistency proof line is not base64") from e
        if len(h) != 32:
            raise Refused(400, "a consistency proof line is not a 32-byte hash")
        proof.append(h)
    return int(size_text), proof, note


def make_server(witness: Witness, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server answering ``POST /add-checkpoint`` (call ``serve_forever``)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/add-checkpoint":
                self._answer(404, "not found\n")
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._answer(400, "request too large\n")
                return
            try:
                line = witness.add_checkpoint(self.rfile.read(length))
            except Refused as e:
                kind = "text/x.tlog.size" if e.status == 409 else "text/plain; charset=utf-8"
                self._answer(e.status, e.body, kind)
                return
            self._answer(200, line)

        def _answer(self, status: int, body: str, kind: str = "text/plain; charset=utf-8") -> None:
            data = body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: the CLI prints what it needs

    return ThreadingHTTPServer((host, port), Handler)


__all__ = ["Refused", "Witness", "make_server"]
