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

import json
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from dnd_ledger.notary.cosign import WitnessKey
from dnd_ledger.notary.keychain import KeyChain
from dnd_ledger.notary.leaf import Leaf, LeafError, stored_leaf
from dnd_ledger.notary.locations import entry_hash, location_of, location_tag
from dnd_ledger.notary.merkle import CompactRange, leaf_hash
from dnd_ledger.notary.records import StoredEvent, format_time
from dnd_ledger.notary.signed_note import VerifierKey, fingerprint
from dnd_ledger.notary.tree import TreeLevels
from dnd_ledger.notary.verify_checkpoints import CheckpointChecks
from dnd_ledger.notary.verify_report import (
    Cp,
    Naming,
    Problem,
    Report,
    event_name,
    oid_of,
    tagged_time,
)

if TYPE_CHECKING:
    from dnd_ledger.application import DndLedger

#: How far apart two writers' clocks (and a transaction's start and commit) may be.
CLOCK_SKEW = timedelta(minutes=5)
BATCH = 5000
MAX_PROBLEMS = 1000
MAX_LOOKUPS = 20
CONTACT_TOPIC = "dnd_ledger.domain.contact:Contact."
ADDRESS_TOPIC = "dnd_ledger.domain.address:Address."


class Verifier(CheckpointChecks, Naming):
    def __init__(
        self,
        app: DndLedger,
        public_key: VerifierKey | None,
        skew: timedelta = CLOCK_SKEW,
        known: Sequence[str] = (),
        witnesses: Sequence[WitnessKey] = (),
        require_witnesses: int = 0,
    ) -> None:
        self.app = app
        self.known = list(known)
        self.witness_keys = list(witnesses)
        self.require_witnesses = require_witnesses
        self.latest_cosignatures = 0
        self.notary = app.notary
        self.key = public_key
        self.chain = None if public_key is None else KeyChain(public_key)
        self.skew = skew
        self.report = Report()
        self.levels = TreeLevels()
        self._versions: dict[str, int] = {}
        self._names: dict[str, str] = {}
        self._locations: dict[str, str] = {}
        self._cps: list[Cp] = []
        self._timed: list[Cp] = []
        self._timed_sizes: list[int] = []
        self._lookups = 0
        self.locations = CompactRange()
        self.locations_broken = False

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
                if event.originator_version == 1:
                    self._index(index, event)
                event = next(events, None)
            else:
                leaf = self._row_leaf(row)
                if leaf is None:
                    break  # reported; without the event or a leaf there is no hash to go on
                self._missing(leaf, index)
                if leaf.version == 1:
                    self.locations_broken = True  # its location is gone with it (reported)
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
        if self.chain is not None:
            r.keys = [{"name": k.name, "fingerprint": fingerprint(k.public_key)}
                      for k in self.chain.keys]  # fmt: skip
        for i, note in enumerate(self.known):
            self._check_known(i, note)
        self._check_witnesses()
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
    def _index(self, index: int, event: StoredEvent) -> None:
        """The location index entry of an aggregate's first event, rebuilt from its bytes."""
        where = location_of(bytes(event.state))
        self.locations.append(entry_hash(index, oid_of(event), location_tag(where)))

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
            f" version {leaf.version}, {event_name(leaf.topic)}; leaf {index}) is gone from the "
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
        oid = oid or oid_of(event)
        version = int(event.originator_version)
        last = self._versions.get(oid, 0)
        self._versions[oid] = version
        try:
            state = json.loads(bytes(event.state))
            recorded = tagged_time(state["timestamp"])
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

    # -- reporting ---------------------------------------------------------------------
    def _problem(self, kind: str, message: str, **where: Any) -> None:
        self.report.problem_count += 1
        if len(self.report.problems) < MAX_PROBLEMS:
            self.report.problems.append(Problem(kind, message, **where))


def verify_ledger(
    app: DndLedger,
    public_key: VerifierKey | None = None,
    *,
    skew: timedelta = CLOCK_SKEW,
    known: Sequence[str] = (),
    witnesses: Sequence[WitnessKey] = (),
    require_witnesses: int = 0,
) -> Report:
    """Check the whole ledger against its notary; see the module docstring.

    With ``require_witnesses``, the latest signed checkpoint must also carry that many
    valid cosignatures from distinct ``witnesses``; a forged one is always a problem.
    """
    return Verifier(app, public_key, skew, known, witnesses, require_witnesses).run()


__all__ = ["CLOCK_SKEW", "Problem", "Report", "Verifier", "verify_ledger"]
