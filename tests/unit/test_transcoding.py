"""The ledger's transcoder reads exactly what eventsourcing's JSONTranscoder reads, and
writes what it wrote before: tagged enums and datetimes at the top level, the rest as is.

The reference is ``JSONTranscoder.decode`` (the stdlib decoder with the library's object
hook) on the same transcoder, with the same transcodings registered.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum
from typing import Any
from uuid import UUID

import orjson
import pytest
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    TranscodingNotRegisteredError,
    UUIDAsHex,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from dnd_ledger.domain.values import AddressKind, Channel, Purpose, Source
from dnd_ledger.storage.transcoding import LedgerTranscoder

T = datetime(2026, 11, 20, 15, 0, 1, 250, tzinfo=UTC)


def transcoder() -> LedgerTranscoder:
    t = LedgerTranscoder()
    for x in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):  # Application.register_transcodings
        t.register(x)
    return t


TR = transcoder()


def typed(v: Any) -> Any:
    """``v`` with every value's exact type beside it: equal means equal and alike."""
    if isinstance(v, dict):
        return ("dict", [(k, typed(x)) for k, x in v.items()])
    if isinstance(v, list):
        return ("list", [typed(x) for x in v])
    if isinstance(v, float) and v != v:
        return ("float", "nan")
    return (type(v).__qualname__, v)


def outcome(decode: Any, data: bytes) -> Any:
    try:
        return typed(decode(data))
    except Exception as e:  # the same error as the reference, by type
        return ("error", type(e).__qualname__)


def assert_reads_as_reference(data: bytes) -> None:
    assert outcome(TR.decode, data) == outcome(lambda d: JSONTranscoder.decode(TR, d), data)


def tag(name: str, data: Any) -> dict[str, Any]:
    return {"_type_": name, "_data_": data}


EVENT = {
    "timestamp": tag("datetime_iso", T.isoformat()),
    "occurred_at": tag("datetime_iso", "2026-11-20T10:00:00-05:00"),
    "source": tag("source", "provider"),
    "actor": None,
    "effect": {"op": "block", "channels": ["sms", "call"], "level": "permanent"},
    "detail": {"address_ref": "ph_1", "error_code": 30004, "ok": True, "w": 1.5},
}


@pytest.mark.parametrize(
    "value",
    [
        EVENT,
        {**EVENT, "detail": {"when": tag("datetime_iso", T.isoformat())}},  # nested in a dict
        {**EVENT, "phones": [tag("channel", "sms"), "x"]},  # nested in a list
        {"a": tag("x", tag("datetime_iso", T.isoformat()))},  # a tag in a tag's data
        {"a": tag("channel", {"_type_": 1})},  # "_type_" twice, one not a tag
        {"a": {"_type_": "source", "_data_": "user", "extra": 1}},  # three keys: not a tag
        {"a": {"_type_": "source"}},  # no data: not a tag
        {"a": {"_type_": "source", "x": 1}},  # two keys, not a tag
        {"a": 'a text with "_type_" in quotes', "b": tag("source", "user")},
        {"a": tag("source", "user"), "b": {"_type_": "address_kind", "_data_": "phone"}},
        {"kind": tag("address_kind", "email"), "c": tag("dnd_kind", "active")},
        tag("datetime_iso", T.isoformat()),  # the whole document is a tag
        [tag("source", "user"), {"k": tag("channel", "gmb")}],
        [],
        "text",
        3,
        {"u": tag("uuid_hex", "a" * 32), "d": tag("decimal_str", "1.10")},
        {"a": tag("nope", "x")},  # unknown name: the library's error
        {"a": tag("source", "nobody")},  # not a member: the Enum's error
        {"a": tag("datetime_iso", "yesterday")},
        {"a": tag("source", ["user"])},  # unhashable data
        {"a": {"_type_": ["x"], "_data_": 1}},  # unhashable name
        {"a": tag("source", "user"), "reason": "“no calls” ✓ \u0000 tab\t"},
    ],
)
def test_reads_what_the_library_reads(value: Any) -> None:
    for dump in (orjson.dumps, lambda v: json.dumps(v).encode()):  # with and without escapes
        assert_reads_as_reference(dump(value))


@pytest.mark.parametrize(
    "data",
    [
        b'{"a": {"\\u005ftype_": "source", "_data_": "user"}}',  # an escaped key spells a tag
        b'{"\\u005ftype_": "source", "_data_": "user"}',
        b'{"a": NaN, "b": {"_type_": "source", "_data_": "user"}}',  # orjson refuses NaN
        b'{"a": "\\ud800", "b": {"_type_": "source", "_data_": "user"}}',  # a lone surrogate
        b'{"a": 1e400}',
        b'{"a": 1,}',  # invalid for both
        b"",
        b'{"a": 1, "a": {"_type_": "source", "_data_": "user"}}',  # a repeated key
    ],
)
def test_reads_odd_bytes_as_the_library_does(data: bytes) -> None:
    assert_reads_as_reference(data)


NAMES = ["datetime_iso", "source", "channel", "address_kind", "dnd_kind", "uuid_hex", "x"]
KEYS = st.sampled_from(["_type_", "_data_", "a", "timestamp", "ü", 'q"'])
DATA = st.one_of(
    st.sampled_from([T.isoformat(), "user", "sms", "phone", "active", "a" * 32, "?"]),
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)


def _tree(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(KEYS, st.text(max_size=4)), children, max_size=5),
        st.builds(tag, st.sampled_from(NAMES), st.one_of(DATA, children)),
    )


@settings(max_examples=400, deadline=None)
@given(st.recursive(st.one_of(SCALARS, st.builds(tag, st.sampled_from(NAMES), DATA)), _tree))
def test_reads_any_document_as_the_library_does(value: Any) -> None:
    assert_reads_as_reference(orjson.dumps(value))
    assert_reads_as_reference(json.dumps(value, ensure_ascii=False).encode())


# -- writing ------------------------------------------------------------------------------
def test_writes_top_level_enums_and_datetimes_tagged_and_the_rest_as_is() -> None:
    est = timezone(timedelta(hours=-5))
    state = {
        "timestamp": T,
        "occurred_at": T.astimezone(est),
        "source": Source.SUPPORT,
        "kind": AddressKind.PHONE,
        "channel": Channel.SMS,
        "ref": UUID(int=1),  # orjson writes a UUID as text, untagged, as before
        "detail": {"at": T, "channel": Channel.SMS, "n": [1, None]},
    }
    assert orjson.loads(TR.encode(state)) == {
        "timestamp": tag("datetime_iso", "2026-11-20T15:00:01.000250+00:00"),
        "occurred_at": tag("datetime_iso", "2026-11-20T10:00:01.000250-05:00"),
        "source": tag("source", "support"),
        "kind": tag("address_kind", "phone"),
        "channel": tag("channel", "sms"),
        "ref": "00000000-0000-0000-0000-000000000001",
        "detail": {"at": tag("datetime_iso", T.isoformat()), "channel": "sms", "n": [1, None]},
    }
    back = TR.decode(TR.encode(state))
    assert typed({k: back[k] for k in ("timestamp", "occurred_at", "source", "kind")}) == typed(
        {k: state[k] for k in ("timestamp", "occurred_at", "source", "kind")}
    )


def test_an_unregistered_enum_at_the_top_level_is_refused() -> None:
    with pytest.raises(TranscodingNotRegisteredError):
        TR.encode({"purpose": Purpose.MARKETING})


def test_a_transcoding_registered_later_is_used_both_ways() -> None:
    class Colour(Enum):
        RED = "red"

    from dnd_ledger.storage.transcoding import EnumAs

    t = transcoder()
    t.register(EnumAs(Colour, "colour"))
    data = t.encode({"c": Colour.RED})
    assert orjson.loads(data) == {"c": tag("colour", "red")}
    assert t.decode(data) == {"c": Colour.RED}


def test_integers_beyond_64_bits_are_refused_so_none_is_ever_stored() -> None:
    # orjson would read one back as a float; its encoder never writes one.
    with pytest.raises(TypeError, match="64-bit"):
        TR.encode({"n": 2**64})


@settings(max_examples=2000, deadline=None)
@given(
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]))
    | st.datetimes()
)
def test_a_datetime_is_written_as_its_isoformat(when: datetime) -> None:
    expected = orjson.dumps({"at": tag("datetime_iso", when.isoformat())})
    assert TR.encode({"at": when}) == expected
    assert typed(TR.decode(expected)["at"]) == typed(datetime.fromisoformat(when.isoformat()))
