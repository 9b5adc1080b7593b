"""Encode and decode cost per stored event: the ledger's transcoder against eventsourcing's
plain JSONTranscoder, and the mapper's round trip (domain event <-> stored event).

The events are the ledger's own: the bench workload's mix recorded by a memory ledger,
then read back from its recorder. Each figure is the median of ``--runs`` passes over
every event; CPU (process_time) beside wall (perf_counter), in µs per event.

    PYTHONPATH=$PWD/src python scripts/measure_transcoding.py [--contacts 2000] [--items 8000]
"""

from __future__ import annotations

import argparse
import collections
import gc
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson
from eventsourcing.persistence import JSONTranscoder, Mapper, StoredEvent

from dnd_ledger.application import DndLedger
from dnd_ledger.bench.workload import Workload
from dnd_ledger.storage.transcoding import LEDGER_ENUMS, EnumAs


def build(contacts: int, items: int) -> tuple[DndLedger, list[StoredEvent]]:
    ledger = DndLedger("memory:")
    work = Workload(seed=7, expected_items=contacts + items)
    commands = [it.command for it in work.population(contacts)]
    commands += [it.command for it in work.stream(items)]
    for i in range(0, len(commands), 500):
        ledger.execute_many(commands[i : i + 500])
    stored = ledger.recorder.select_notifications(start=1, limit=10**9)
    return ledger, list(stored)


def plain(ledger: DndLedger) -> JSONTranscoder:
    t = JSONTranscoder()
    ledger.register_transcodings(t)
    for enum_type, name in LEDGER_ENUMS:
        t.register(EnumAs(enum_type, name))
    return t


def timed(fn: Callable[[Any], Any], args: list[Any], runs: int) -> tuple[float, float]:
    """Median µs per call of ``fn`` over ``args`` (results dropped as they come, as a
    rebuild does); the objects built so far are frozen out of the collector's way."""
    gc.collect()
    gc.freeze()
    cpu, wall = [], []
    n = len(args)
    for _ in range(runs):
        c0, w0 = time.process_time(), time.perf_counter()
        for a in args:
            fn(a)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return statistics.median(cpu) / n * 1e6, statistics.median(wall) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--contacts", type=int, default=2000)
    ap.add_argument("--items", type=int, default=8000)
    ap.add_argument("--runs", type=int, default=7)
    o = ap.parse_args()
    ledger, stored = build(o.contacts, o.items)
    n = len(stored)
    events = [ledger.mapper.to_domain_event(s) for s in stored]
    kinds = collections.Counter(type(e).__qualname__ for e in events)
    mean_bytes = statistics.mean(len(s.state) for s in stored)
    print(f"{n} events, mean state {mean_bytes:.0f} bytes, load {os.getloadavg()[0]:.2f}; mix:")
    print("  " + ", ".join(f"{k} {v / n:.0%}" for k, v in kinds.most_common()))
    states = []
    for e in events:
        d = dict(vars(e))
        d.pop("originator_id"), d.pop("originator_version")
        states.append(d)
    blobs = [s.state for s in stored]
    rows: list[tuple[str, tuple[float, float]]] = []
    floor = orjson.loads
    rows.append(("orjson.loads alone (floor)", timed(floor, blobs, o.runs)))
    rows.append(("orjson.dumps alone, untagged (floor)", timed(orjson.dumps, states, o.runs)))
    for name, t in (
        ("plain JSONTranscoder", plain(ledger)),
        ("LedgerTranscoder", ledger.mapper.transcoder),
    ):
        assert [t.decode(b) for b in blobs] == [plain(ledger).decode(b) for b in blobs]
        enc, dec = t.encode, t.decode
        rows.append((f"{name} encode", timed(enc, states, o.runs)))
        rows.append((f"{name} decode", timed(dec, blobs, o.runs)))
        m = Mapper(transcoder=t)
        to_s, to_d = m.to_stored_event, m.to_domain_event
        rows.append((f"{name} mapper.to_stored_event", timed(to_s, events, o.runs)))
        rows.append((f"{name} mapper.to_domain_event", timed(to_d, stored, o.runs)))
    print(f"{'µs per event (median of ' + str(o.runs) + ')':<44} {'cpu':>7} {'wall':>7}")
    for label, (cpu, wall) in rows:
        print(f"{label:<44} {cpu:7.2f} {wall:7.2f}")
    ledger.close()


if __name__ == "__main__":
    main()
