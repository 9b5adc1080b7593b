"""Events stored by earlier code still read back as they did (tests/data/events_v1).

``ledger.db`` there is a SQLite ledger made by ``make_ledger.py`` with the code of
2026-12-03 (eventsourcing's stdlib-JSON decoding), holding an event of every class the
ledger has; ``expected.json`` holds what that code decoded from each stored event, the
aggregates it replayed and what the ledger answered. A ledger opened on a copy of the
file must decode every event to equal values (types included), encode each back to
the stored bytes, replay the same aggregates, answer status and can_send as before
and rebuild its views to the rows the old code projected.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from uuid import UUID

import pytest

from dnd_ledger.application import DndLedger
from dnd_ledger.domain.policy import load_policy
from dnd_ledger.projections.audit_trail import RECORD_FIELDS
from dnd_ledger.projections.schema import CLEAR, VIEWS
from dnd_ledger.projections.status_row import COLUMNS, cause_fields

HERE = Path(__file__).resolve().parents[1] / "data" / "events_v1"
EXPECTED: dict[str, Any] = json.loads((HERE / "expected.json").read_text())


def _maker() -> ModuleType:
    """make_ledger.py: its key, its ``typed`` form of values and its summaries."""
    spec = importlib.util.spec_from_file_location("events_v1_make_ledger", HERE / "make_ledger.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKER = _maker()


class Fixed:
    now = datetime.fromisoformat(EXPECTED["now"])

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    shutil.copyfile(HERE / "ledger.db", path)
    return path


def open_ledger(path: Path) -> DndLedger:
    policy = load_policy(HERE / "policy.toml")
    return DndLedger(f"sqlite:///{path}", policy=policy, pii_key=MAKER.KEY, clock=Fixed())


@pytest.fixture
def ledger(copy: Path) -> Iterator[DndLedger]:
    opened = open_ledger(copy)
    try:
        yield opened
    finally:
        opened.close()


def stored(ledger: DndLedger) -> list[Any]:
    rows = ledger.recorder.select_notifications(start=1, limit=10_000)
    assert [n.id for n in rows] == [e["id"] for e in EXPECTED["events"]]
    return list(rows)


#: The status row's columns both layouts have (aggregate_id .. state).
SHARED_STATUS_COLUMNS = 7


def view_rows(path: Path, ledger: DndLedger | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """Every view table's rows, sorted, read straight from the file. A stats row whose
    count went back to 0 is left out: a rebuild never writes one, it means no row.

    The audit view's rows are compared with every field of the trail: the file was
    made when ``dnd_audit`` held all of them; today's code keeps in it only what the
    event does not hold, and the trail (read through ``ledger``) derives the rest
    from the stored events (``projections/audit_trail.py``).

    The status view's channels are compared as (location, contact, channel, status,
    since, code, message, cause event, its id, overall), whichever layout holds them:
    the file was made with one row per contact and channel (``dnd_status_channels``),
    today's code keeps them in the contact's row (``projections/status_row.py``)."""
    tables = [s.removeprefix("DELETE FROM ") for name in VIEWS for s in CLEAR[name]]
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        rows = {
            t: sorted((tuple(r) for r in conn.execute(f"SELECT * FROM {t}")), key=repr)
            for t in tables
            if t != "dnd_status_contacts"
        }
        contacts = list(conn.execute("SELECT * FROM dnd_status_contacts"))
        old = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'dnd_status_channels'"
        ).fetchone()
        if old:
            channels = [tuple(r) for r in conn.execute(
                "SELECT location_id, contact_id, channel, status, since, code, message,"
                " cause_event, cause_event_id, overall FROM dnd_status_channels"
            )]  # fmt: skip
        else:
            channels = [
                (r["location_id"], r["contact_id"], ch.value, r[st], *cause_fields(r[cause]),
                 r["overall"])
                for r in contacts
                for ch, (st, cause) in COLUMNS.items()
            ]  # fmt: skip
    conn.close()
    rows["dnd_status_contacts"] = sorted(tuple(r)[:SHARED_STATUS_COLUMNS] for r in contacts)
    rows["status channels"] = sorted(channels, key=repr)
    rows["dnd_stats"] = [r for r in rows["dnd_stats"] if r[-1] != 0]
    if ledger is not None:
        rows["dnd_audit"] = sorted((r.row() for r in ledger.views.trail.read()), key=repr)
    assert all(len(r) == len(RECORD_FIELDS) for r in rows["dnd_audit"])
    return rows


def test_the_fixture_holds_an_event_of_every_class_it_was_made_with() -> None:
    classes = {e["class"] for e in EXPECTED["events"]}
    assert len(classes) == 28
    assert {"Contact.PersonalDataErased", "Contact.CarrierErrorReported", "Address.Released"} <= (
        classes
    )


def test_every_stored_event_decodes_to_what_the_old_code_decoded(ledger: DndLedger) -> None:
    for n, expected in zip(stored(ledger), EXPECTED["events"], strict=True):
        assert n.state.decode() == expected["state"]  # the file is as it was made
        event = ledger.mapper.to_domain_event(n)
        assert type(event).__qualname__ == expected["class"]
        assert MAKER.typed(dict(vars(event))) == expected["decoded"], (n.id, expected["class"])


def test_every_decoded_event_encodes_to_the_bytes_it_was_stored_as(ledger: DndLedger) -> None:
    for n in stored(ledger):
        again = ledger.mapper.to_stored_event(ledger.mapper.to_domain_event(n))
        assert (again.topic, again.state) == (n.topic, n.state), n.id


def test_aggregates_replay_from_the_stored_events_as_before(ledger: DndLedger) -> None:
    """The old code's ledger had no keys table: opening it backfilled one, and a cached
    (compacted) aggregate, which holds no keys in memory, finds each of its keys there."""
    ids = [UUID(i) for i in EXPECTED["aggregates"]]
    got = MAKER.aggregates(ledger, ids)
    for aid in ids:
        agg = ledger.get_aggregate(aid)
        assert agg is not None
        assert agg.keys == set()  # compacted: the keys are the table's
        expected_keys = EXPECTED["aggregates"][str(aid)]["keys"]
        assert expected_keys == [] or all(agg.has_key(k) for k in expected_keys)
        got[str(aid)]["keys"] = sorted(
            str(r[0])
            for r in ledger.sql.fetchall("SELECT key FROM dnd_keys WHERE owner = ?", (aid.hex,))
        )
    assert got == EXPECTED["aggregates"]


def test_the_ledger_answers_status_and_can_send_as_before(ledger: DndLedger) -> None:
    assert MAKER.answers(ledger) == EXPECTED["answers"]


def test_a_rebuild_gives_the_view_rows_the_old_code_projected(copy: Path) -> None:
    before = view_rows(copy)
    assert all(before.values())
    ledger = open_ledger(copy)
    try:
        assert ledger.projector.rebuild(list(VIEWS)) == len(EXPECTED["events"])
        assert view_rows(copy, ledger) == before
        assert MAKER.answers(ledger) == EXPECTED["answers"]
    finally:
        ledger.close()
