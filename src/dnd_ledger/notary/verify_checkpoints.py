"""``verify``'s checks of checkpoints: roots, the key chain, consistency, checkpoints kept
elsewhere, witnesses; and the notes that sum a run up."""

from __future__ import annotations

import itertools
from bisect import bisect_right
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from dnd_ledger.notary.cosign import WitnessKey, cosignatures
from dnd_ledger.notary.keychain import KeyChain
from dnd_ledger.notary.locations import parse_locations
from dnd_ledger.notary.merkle import CompactRange, ProofError
from dnd_ledger.notary.merkle_proofs import verify_consistency
from dnd_ledger.notary.records import CheckpointRecord, StoredEvent, checkpoint_time, format_time
from dnd_ledger.notary.signed_note import NoteError, format_checkpoint_body
from dnd_ledger.notary.tree import TreeLevels
from dnd_ledger.notary.verify_report import Cp, Report

if TYPE_CHECKING:
    from dnd_ledger.notary.notary import Notary


class CheckpointChecks:
    """The checkpoint half of :class:`~dnd_ledger.notary.verify.Verifier`."""

    notary: Notary
    report: Report
    levels: TreeLevels
    chain: KeyChain | None
    witness_keys: list[WitnessKey]
    require_witnesses: int
    latest_cosignatures: int
    locations: CompactRange
    locations_broken: bool
    known: list[str]
    skew: timedelta
    _timed: list[Cp]
    _timed_sizes: list[int]
    _cps: list[Cp]

    if TYPE_CHECKING:  # provided by Verifier and Naming

        def _problem(self, kind: str, message: str, **where: Any) -> None: ...

        def _where(self, event: StoredEvent, index: int | None = None) -> str: ...

    def _witnessed(self, cp: Cp) -> None:
        """The witness cosignatures of a verified checkpoint: none forged; how many hold."""
        if not self.witness_keys:
            return
        try:
            found = cosignatures(cp.record.note, self.witness_keys)
        except NoteError as e:
            cp.bad = True
            self._problem("cosignature", f"checkpoint at size {cp.record.size}: {e}",
                          checkpoint_size=cp.record.size)  # fmt: skip
            found = []
        self.latest_cosignatures = len(found)
        if found and len(found) >= self.require_witnesses:
            self.report.witnessed_size = cp.record.size

    def _check_witnesses(self) -> None:
        """With --require-witnesses: the latest signed checkpoint must be cosigned enough."""
        r, need = self.report, self.require_witnesses
        if need <= 0 or (r.verified_size and self.latest_cosignatures >= need):
            return
        at = f"the latest signed checkpoint (size {r.verified_size})" if r.verified_size else (
            "no verified checkpoint")  # fmt: skip
        since = f" since size {r.witnessed_size}" if r.witnessed_size else ""
        self._problem(
            "witnesses",
            f"{at} carries {self.latest_cosignatures} of the {need} witness cosignatures "
            f"required: no witness vouches that the log was not rolled back or forked{since} "
            "(run `dnd-ledger checkpoint --witness URL`)",
            checkpoint_size=r.verified_size or None,
            expected=str(need),
            found=str(self.latest_cosignatures),
        )

    # -- checkpoints -------------------------------------------------------------------
    def _parse_checkpoint(self, record: CheckpointRecord) -> Cp:
        try:
            body = record.body
        except NoteError as e:
            cp = Cp(record, None, None, bad=True)
            self._problem(
                "checkpoint",
                f"checkpoint at size {record.size}: its note is malformed ({e})",
                checkpoint_size=record.size,
            )
            return cp
        return Cp(record, body, checkpoint_time(body))

    def _check_checkpoint(self, cp: Cp) -> None:
        record, body = cp.record, cp.body
        if body is None:
            return
        where = f"checkpoint at size {record.size} (made {format_time(record.created_at)})"
        root = self.levels.root()
        if body.size != record.size or body.root_hash != record.root:
            cp.bad = True
            self._problem(
                "checkpoint",
                f"{where}: its note says size {body.size}, root {body.root_hash.hex()[:16]}..., "
                f"its row says size {record.size}, root {record.root.hex()[:16]}...: the "
                "checkpoints table was edited",
                checkpoint_size=record.size,
            )
        elif body.root_hash != root:
            cp.bad = True
            self._problem(
                "root",
                f"{where}: its root {body.root_hash.hex()[:16]}... is not the root of the first "
                f"{record.size} stored events ({root.hex()[:16]}...): an event it covers was "
                "changed, removed or inserted after it was made",
                checkpoint_size=record.size,
                expected=body.root_hash.hex(),
                found=root.hex(),
            )
        self._check_locations(cp, where)
        if body.origin != self.notary.origin:
            cp.bad = True
            self._problem(
                "checkpoint",
                f"{where}: its origin {body.origin!r} is not this log's ({self.notary.origin!r})",
                checkpoint_size=record.size,
            )
        if not record.signed:
            if record.note != format_checkpoint_body(body):
                cp.bad = True
                self._problem(
                    "checkpoint",
                    f"{where}: unsigned, yet its note carries more than the checkpoint text",
                    checkpoint_size=record.size,
                )
            return
        if self.chain is None:
            return
        try:
            self.chain.accept(record.note)
        except NoteError as e:
            cp.bad = True
            retired = "retired key" in str(e)
            what = "key hand-over" if record.handover else "signature"
            self._problem(
                "retired-key" if retired else "signature",
                f"{where}: {e}" if retired else f"{where}: its {what} {e}",
                checkpoint_size=record.size,
            )
            return
        if not cp.bad:
            self.report.verified_size = record.size
            self._witnessed(cp)

    def _check_time(self, event: StoredEvent, index: int | None, recorded: datetime) -> None:
        timed = self._timed
        at = len(timed) if index is None else bisect_right(self._timed_sizes, index)
        before = timed[at - 1] if at else None
        after = timed[at] if at < len(timed) else None
        if before is not None and before.time and recorded < before.time - self.skew:
            self._problem(
                "backdated",
                f"{self._where(event, index)} says it was recorded at {recorded.isoformat()}, "
                f"before the checkpoint at size {before.record.size} was made "
                f"({format_time(before.time)}), yet that checkpoint does not contain it: it was "
                "added later and backdated",
                position=event.id,
                originator_id=str(event.originator_id),
                version=event.originator_version,
                checkpoint_size=before.record.size,
            )
        elif after is not None and after.time and recorded > after.time + self.skew:
            self._problem(
                "postdated",
                f"{self._where(event, index)} says it was recorded at {recorded.isoformat()}, "
                f"after the checkpoint at size {after.record.size} that contains it was made "
                f"({format_time(after.time)})",
                position=event.id,
                originator_id=str(event.originator_id),
                version=event.originator_version,
                checkpoint_size=after.record.size,
            )

    def _check_locations(self, cp: Cp, where: str) -> None:
        """The location index a checkpoint signs must be the one the stored events give."""
        if cp.body is None:
            return
        try:
            claimed = parse_locations(cp.body)
        except ValueError as e:
            cp.bad = True
            self._problem("locations", f"{where}: {e}", checkpoint_size=cp.record.size)
            return
        if claimed is None or self.locations_broken:
            return
        size, root = claimed
        if (size, root) != (self.locations.size, self.locations.root()):
            cp.bad = True
            self._problem(
                "locations",
                f"{where}: its location index ({size} aggregates, root {root.hex()[:16]}...) "
                f"is not the one the stored events give ({self.locations.size}, root "
                f"{self.locations.root().hex()[:16]}...): an aggregate's location was misstated",
                checkpoint_size=cp.record.size,
                expected=root.hex(),
                found=self.locations.root().hex(),
            )

    def _check_consistency(self) -> None:
        good = [
            (c, c.body)
            for c in self._cps
            if not c.bad and c.body is not None and c.record.size <= self.levels.size
        ]
        for (old, old_body), (new, new_body) in itertools.pairwise(good):
            if old.time and new.time and new.time < old.time:
                self._problem(
                    "checkpoint",
                    f"checkpoint at size {new.record.size} was made at {format_time(new.time)}, "
                    f"before the smaller one at size {old.record.size} ({format_time(old.time)})",
                    checkpoint_size=new.record.size,
                )
            if old.record.size == new.record.size:
                continue
            proof = self.levels.consistency_proof(old.record.size, new.record.size)
            try:
                verify_consistency(
                    old.record.size, new.record.size, proof, old_body.root_hash, new_body.root_hash
                )
            except ProofError as e:
                self._problem(
                    "consistency",
                    f"checkpoints at sizes {old.record.size} and {new.record.size} are not "
                    f"consistent: {e}",
                    checkpoint_size=new.record.size,
                )

    def _check_known(self, i: int, note: str) -> None:
        where = f"the checkpoint you hold ({i + 1})"
        if self.chain is None:
            self._problem("known", f"{where} cannot be checked without a public key")
            return
        try:
            body = self.chain.verify_at(note)
        except NoteError as e:
            self._problem("known", f"{where} is not signed by the log's key: {e}")
            return
        when = checkpoint_time(body)
        where = f"the checkpoint you hold (size {body.size}" + (
            f", made {format_time(when)})" if when else ")"
        )
        if body.origin != self.notary.origin:
            self._problem("known", f"{where} is from another log ({body.origin!r})")
        elif body.size > self.levels.size:
            self._problem(
                "truncated",
                f"{where} covers {body.size} events, but the ledger has only "
                f"{self.levels.size} notarised events now: events were removed (rolled back) "
                "together with the notary's own records",
                checkpoint_size=body.size,
                expected=str(body.size),
                found=str(self.levels.size),
            )
        elif self.levels.root(body.size) != body.root_hash:
            self._problem(
                "rewritten",
                f"{where}: the first {body.size} events no longer have its root: the log was "
                "rewritten after it was signed",
                checkpoint_size=body.size,
                expected=body.root_hash.hex(),
                found=self.levels.root(body.size).hex(),
            )

    def _summarise(self) -> None:
        r = self.report
        if r.pending:
            r.notes.append(
                f"{r.pending} events after position {r.notary_position} are not notarised yet "
                "(the notary catches up when the ledger is next used, or run `dnd-ledger checkpoint`)"
            )
        if not r.checkpoints:
            if r.tree_size:
                r.notes.append("no checkpoint yet: run `dnd-ledger checkpoint`")
            return
        if r.key is None:
            r.notes.append(
                "signatures not checked: no public key (configure DND_LEDGER_SIGNING_KEY or pass "
                "--public-key); the checks above prove the log matches its own tree, not that "
                "the tree is the one that was signed"
            )
        elif not r.signed_checkpoints:
            r.notes.append(
                "no checkpoint is signed (they were made without a signing key): the log "
                "matches its own tree, but anyone able to rewrite the database could rewrite "
                "both; configure DND_LEDGER_SIGNING_KEY and run `dnd-ledger checkpoint`"
            )
        unsigned_after = [
            c.record.size
            for c in self._cps
            if not c.record.signed and c.record.size > r.verified_size
        ]
        if r.verified_size and unsigned_after:
            r.notes.append(
                f"checkpoints at sizes {', '.join(map(str, unsigned_after))} are unsigned"
            )
        if r.verified_size and r.verified_size < r.tree_size:
            r.notes.append(
                f"the last {r.tree_size - r.verified_size} notarised events are not yet under a "
                "signed checkpoint"
            )
