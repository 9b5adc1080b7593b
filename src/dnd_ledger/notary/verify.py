"""``dnd-ledger verify``: recompute the notary's evidence from the stored events.

Nothing the notary wrote is trusted as input: every leaf is rebuilt from the
stored event's columns and bytes, the tree is rebuilt from those leaves, and
every checkpoint's root and signature is checked against it. The notary's
own rows serve only to say *what was notarised*, so that a difference can be
named: which event (position, aggregate, version), what changed, and which
checkpoint no longer holds.

Checks, in log order:

* each stored event equals the leaf notarised for its position (originator,
  version, topic, SHA-256 of its stored bytes);
* no leaf's event is missing, and no event sits among notarised ones without
  a leaf (inserted afterwards);
* every aggregate's versions run 1, 2, 3, ... in log order;
* each checkpoint's root equals the root of the rebuilt tree at its size, its
  signature verifies with the public key, and consecutive checkpoints are
  consistent (the later tree extends the earlier);
* times agree with checkpoints: an event outside a checkpoint cannot have been
  recorded before that checkpoint was made (backdated), nor one inside it after
  (post-dated), beyond ``skew``;
* checkpoints kept elsewhere (``known``: notes an auditor saved, e.g. from a
  bundle) still hold: the log has at least their size and their root. This is
  what catches a rollback that removed events together with the notary's rows.
"""

from __future__ import annotations

import itertools
import json
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from dnd_ledger.notary.leaf import Leaf, LeafError, canonical_originator, stored_leaf
from dnd_ledger.notary.merkle import ProofError, leaf_hash, verify_consistency
from dnd_ledger.notary.notary import CheckpointRecord, StoredEvent, checkpoint_time, format_time
from dnd_ledger.notary.offline import contact_originator
from dnd_ledger.notary.signed_note import (
    Checkpoint,
    NoteError,
    VerifierKey,
    fingerprint,
    format_checkpoint_body,
    verify_checkpoint,
)
from dnd_ledger.notary.tree import TreeLevels

if TYPE_CHECKING:
    from dnd_ledger.application import DndLedger

#: How far apart two writers' clocks (and a transaction's start and commit) may be.
CLOCK_SKEW = timedelta(minutes=5)
BATCH = 5000
MAX_PROBLEMS = 1000
MAX_LOOKUPS = 20
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
            "first_problem": self.problems[0].to_json() if self.problems else None,
            "problem_count": self.problem_count,
            "problems": [p.to_json() for p in self.problems],
            "notes": self.notes,
        }


@dataclass
class _Cp:
    record: CheckpointRecord
    body: Checkpoint | None
    time: datetime | None
    bad: bool = False


class Verifier:
    def __init__(
        self,
        app: DndLedger,
        public_key: VerifierKey | None,
        skew: timedelta = CLOCK_SKEW,
        known: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.known = list(known)
        self.notary = app.notary
        self.key = public_key
        self.skew = skew
        self.report = Report()
        self.levels = TreeLevels()
        self._versions: dict[str, int] = {}
        self._names: dict[str, str] = {}
        self._locations: dict[str, str] = {}
        self._cps: list[_Cp] = []
        self._timed: list[_Cp] = []
        self._timed_sizes: list[int] = []
        self._lookups = 0

    # -- the run ---------------------------------------------------------------------
    def run(self) -> Report:
        r = self.report
        r.notary_position = self.notary.position()
        if self.key is not None:
            r.key = {"name": self.key.name, "fingerprint": fingerprint(self.key.public_key)}
        self._cps = [self._parse_checkpoint(c) for c in self.notary.checkpoints()]
        r.checkpoints = len(self._cps)
        r.signed_checkpoints = sum(1 for c in self._cps if c.record.signed)
        self._timed = [c for c in self._cps if c.time is not None]
        self._timed_sizes = [c.record.size for c in self._timed]
        events = self._events()
        event = next(events, None)
        next_cp = 0
        last_nid = 0
        for row in self._leaf_rows():
            index, position = int(row[0]), int(row[1])
            if index != self.levels.size:
                self._problem(
                    "leaf-gap",
                    f"the notary's leaves jump from index {self.levels.size - 1} to {index}: "
                    "leaf rows were deleted from dnd_notary_leaves",
                    leaf_index=self.levels.size,
                )
                break
            if position <= last_nid:
                self._problem(
                    "leaf-order",
                    f"leaf {index} is at position {position}, not after the previous leaf's "
                    f"position {last_nid}: the notary's table was edited",
                    position=position,
                    leaf_index=index,
                )
            last_nid = position
            while event is not None and event.id < position:
                self._not_notarised(event)
                event = next(events, None)
            if event is not None and event.id == position:
                h = self._notarised(event, row, index)
                event = next(events, None)
            else:
                leaf = self._row_leaf(row)
                if leaf is None:
                    break  # reported; without the event or a leaf there is no hash to go on
                self._missing(leaf, index)
                h = leaf.hash()
            self.levels.append(h)
            while next_cp < len(self._cps) and self._cps[next_cp].record.size == self.levels.size:
                self._check_checkpoint(self._cps[next_cp])
                next_cp += 1
            while next_cp < len(self._cps) and self._cps[next_cp].record.size < self.levels.size:
                next_cp += 1  # only after a leaf gap; already reported
        r.tree_size = self.levels.size
        while event is not None:
            if event.id <= r.notary_position:
                self._not_notarised(event)
            else:
                r.pending += 1
                self._content(event, None)
            event = next(events, None)
        for cp in self._cps[next_cp:]:
            if cp.record.size > self.levels.size:
                self._problem(
                    "truncated",
                    f"checkpoint at size {cp.record.size} (made {format_time(cp.record.created_at)}) "
                    f"covers {cp.record.size} events, but only {self.levels.size} are notarised "
                    "now: events and their leaves were removed after it was made",
                    checkpoint_size=cp.record.size,
                    expected=str(cp.record.size),
                    found=str(self.levels.size),
                )
                cp.bad = True
        self._check_consistency()
        for i, note in enumerate(self.known):
            self._check_known(i, note)
        self._summarise()
        return r

    # -- streams -----------------------------------------------------------------------
    def _events(self) -> Iterator[StoredEvent]:
        after = 0
        while True:
            batch = self.notary.stored_events(after, BATCH)
            yield from batch
            if len(batch) < BATCH:
                return
            after = batch[-1].id

    def _leaf_rows(self) -> Iterator[tuple[Any, ...]]:
        """The notary's leaf rows as stored: index, position, originator, version, topic,
        state sha256 (hex), leaf hash (hex)."""
        after = -1
        while True:
            rows = self.app.sql.fetchall(
                "SELECT leaf_index, notification_id, originator_id, version, topic,"
                " state_sha256, leaf_hash FROM dnd_notary_leaves WHERE leaf_index > ?"
                " ORDER BY leaf_index LIMIT ?",
                (after, BATCH),
            )
            yield from rows
            if len(rows) < BATCH:
                return
            after = int(rows[-1][0])

    def _row_leaf(self, row: tuple[Any, ...]) -> Leaf | None:
        """A leaf row as a checked Leaf, whose hash must be the one stored beside it."""
        try:
            leaf = Leaf(int(row[1]), str(row[2]), int(row[3]), str(row[4]), bytes.fromhex(row[5]))
        except (LeafError, ValueError, TypeError) as e:
            self._problem(
                "leaf-row",
                f"leaf {row[0]} is malformed ({e}): the notary's table was edited",
                leaf_index=int(row[0]),
            )
            return None
        self._check_row_hash(row, leaf.hash())
        return leaf

    def _check_row_hash(self, row: tuple[Any, ...], h: bytes) -> None:
        if h.hex() != row[6]:
            self._problem(
                "leaf-row",
                f"leaf {row[0]} (position {row[1]}) does not hash to the hash stored beside "
                "it: the notary's table was edited",
                position=int(row[1]),
                leaf_index=int(row[0]),
            )

    # -- events ------------------------------------------------------------------------
    def _notarised(self, event: StoredEvent, row: tuple[Any, ...], index: int) -> bytes:
        self.report.events += 1
        version, topic = event.originator_version, event.topic
        try:
            oid, digest, data = stored_leaf(event.id, event.originator_id, version, topic,
                                            event.state)  # fmt: skip
        except LeafError as e:
            leaf = self._row_leaf(row)
            if leaf is not None:
                self._versions[leaf.originator_id] = leaf.version
            self._problem("malformed", f"{self._where(event)}: {e}", position=event.id)
            return leaf.hash() if leaf is not None else bytes(32)
        h = leaf_hash(data)
        if (oid, version, topic, digest) == (row[2], row[3], row[4], row[5]):
            self._check_row_hash(row, h)
            self._content(event, index, oid)
            return h
        leaf = self._row_leaf(row)
        if leaf is not None:
            actual = Leaf(event.id, oid, version, topic, bytes.fromhex(digest))
            self._changed(event, actual, leaf, index)
        return h

    def _changed(self, event: StoredEvent, actual: Leaf, leaf: Leaf, index: int) -> None:
        self._versions[leaf.originator_id] = leaf.version  # one problem per event
        diffs = []
        for name, was, now in (
            ("originator", leaf.originator_id, actual.originator_id),
            ("version", str(leaf.version), str(actual.version)),
            ("topic", leaf.topic, actual.topic),
        ):
            if was != now:
                diffs.append(f"{name} is {now}, notarised {was}")
        if actual.state_sha256 != leaf.state_sha256:
            diffs.append(
                f"stored state has sha256 {actual.state_sha256.hex()[:16]}..., notarised "
                f"{leaf.state_sha256.hex()[:16]}..."
            )
            self._lookups += 1
            elsewhere = None
            if self._lookups <= MAX_LOOKUPS:  # a scan of the leaves each: only for the first few
                elsewhere = self.app.sql.fetchone(
                    "SELECT notification_id FROM dnd_notary_leaves WHERE state_sha256 = ?"
                    " AND notification_id != ?",
                    (actual.state_sha256.hex(), event.id),
                )
            if elsewhere is not None:
                diffs.append(f"these are the bytes notarised for position {elsewhere[0]}")
        self._problem(
            "changed",
            f"{self._where(event, index)} was changed after it was notarised: " + "; ".join(diffs),
            position=event.id,
            leaf_index=index,
            originator_id=leaf.originator_id,
            version=leaf.version,
            expected=leaf.state_sha256.hex(),
            found=actual.state_sha256.hex(),
        )

    def _missing(self, leaf: Leaf, index: int) -> None:
        self._versions[leaf.originator_id] = leaf.version
        self._problem(
            "deleted",
            f"event at position {leaf.notification_id} ({self._name(leaf.originator_id, leaf.topic)}"
            f" version {leaf.version}, {_event_name(leaf.topic)}; leaf {index}) is gone from the "
            "store: it was deleted after it was notarised",
            position=leaf.notification_id,
            leaf_index=index,
            originator_id=leaf.originator_id,
            version=leaf.version,
        )

    def _not_notarised(self, event: StoredEvent) -> None:
        self.report.events += 1
        self._problem(
            "inserted",
            f"{self._where(event)} is not in the tree, although the notary has passed its "
            "position: it was inserted after the events around it were notarised",
            position=event.id,
            originator_id=str(event.originator_id),
            version=event.originator_version,
        )
        self._content(event, None, report=False)

    def _content(
        self, event: StoredEvent, index: int | None, oid: str | None = None, *, report: bool = True
    ) -> None:
        """Versions, decoding and times: what every event must satisfy, notarised or not."""
        if index is None and report:
            self.report.events += 1
        oid = oid or _oid(event)
        version = int(event.originator_version)
        last = self._versions.get(oid, 0)
        self._versions[oid] = version
        try:
            state = json.loads(bytes(event.state))
            recorded = _time(state["timestamp"])
        except (ValueError, KeyError, TypeError):
            if report:
                self._problem(
                    "undecodable",
                    f"{self._where(event, index)}: its stored state is not a ledger event "
                    "(JSON with a timestamp)",
                    position=event.id,
                    originator_id=oid,
                    version=version,
                )
            return
        self._learn_name(oid, event.topic, state)
        if not report:
            return
        if version != last + 1:
            what = "starts at" if last == 0 else f"follows version {last} with"
            self._problem(
                "versions",
                f"{self._where(event, index)}: {self._name(oid, event.topic)} {what} version "
                f"{version}; versions must run 1, 2, 3, ... (an event was removed, reordered "
                "or forged)",
                position=event.id,
                originator_id=oid,
                version=version,
                expected=str(last + 1),
                found=str(version),
            )
            return
        self._check_time(event, index, recorded)

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

    # -- checkpoints -------------------------------------------------------------------
    def _parse_checkpoint(self, record: CheckpointRecord) -> _Cp:
        try:
            body = record.body
        except NoteError as e:
            cp = _Cp(record, None, None, bad=True)
            self._problem(
                "checkpoint",
                f"checkpoint at size {record.size}: its note is malformed ({e})",
                checkpoint_size=record.size,
            )
            return cp
        return _Cp(record, body, checkpoint_time(body))

    def _check_checkpoint(self, cp: _Cp) -> None:
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
        if self.key is None:
            return
        try:
            verify_checkpoint(record.note, self.key.name, self.key.public_key)
        except NoteError as e:
            cp.bad = True
            self._problem(
                "signature",
                f"{where}: its signature does not verify with key {self.key.name} ({e})",
                checkpoint_size=record.size,
            )
            return
        if not cp.bad:
            self.report.verified_size = record.size

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
        if self.key is None:
            self._problem("known", f"{where} cannot be checked without a public key")
            return
        try:
            body = verify_checkpoint(note, self.key.name, self.key.public_key)
        except NoteError as e:
            self._problem("known", f"{where} is not signed by key {self.key.name}: {e}")
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

    # -- reporting ---------------------------------------------------------------------
    def _problem(self, kind: str, message: str, **where: Any) -> None:
        self.report.problem_count += 1
        if len(self.report.problems) < MAX_PROBLEMS:
            self.report.problems.append(Problem(kind, message, **where))

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
        oid = _oid(event)
        leaf = f"; leaf {index}" if index is not None else ""
        return (
            f"event at position {event.id} ({self._name(oid, event.topic)} version "
            f"{event.originator_version}, {_event_name(event.topic)}{leaf})"
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


def verify_ledger(
    app: DndLedger,
    public_key: VerifierKey | None = None,
    *,
    skew: timedelta = CLOCK_SKEW,
    known: Sequence[str] = (),
) -> Report:
    """Check the whole ledger against its notary; see the module docstring."""
    return Verifier(app, public_key, skew, known).run()


def _oid(event: StoredEvent) -> str:
    try:
        return canonical_originator(event.originator_id)
    except LeafError:
        return str(event.originator_id)


def _event_name(topic: str) -> str:
    return topic.rpartition(".")[2] or topic


def _time(value: Any) -> datetime:
    if not isinstance(value, dict) or value.get("_type_") != "datetime_iso":
        raise ValueError("not a tagged datetime")
    t = datetime.fromisoformat(value["_data_"])
    if t.tzinfo is None:
        raise ValueError("datetime without a zone")
    return t


__all__ = ["CLOCK_SKEW", "Problem", "Report", "Verifier", "verify_ledger"]
