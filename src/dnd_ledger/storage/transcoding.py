"""Event serialisation: JSON with the ledger's own types tagged, so they come back as themselves.

Enum members and datetimes are tagged in eventsourcing's
``{"_type_": name, "_data_": value}`` form; the stored bytes are plain JSON, readable
offline, and the same bytes eventsourcing's own ``JSONTranscoder`` would read back.

Both directions use orjson. Encoding tags the event's top-level enum members and
datetimes itself (orjson would write an enum member as its bare value) and hands
anything else orjson cannot write to ``default``. Decoding parses with orjson, then
turns the tagged objects back; where they are is told by the bytes: the ledger's
events hold them only as top-level attributes, so when the count of ``"_type_"`` in
the bytes equals the tagged top-level values found, nothing else is walked. Any other
layout (a tag nested in a dict or list, any backslash escape, since one could spell a
tag's key) gets a full walk with eventsourcing's own object hook, bottom-up as the
stdlib decoder applies it, and what orjson refuses (NaN, lone surrogates) is read by
the stdlib decoder itself: the result is the one ``JSONTranscoder.decode`` gives, only
sooner. One difference is left, out of reach: orjson reads an integer beyond 64 bits
as a float, and no stored event holds one, since orjson (the encoder from the first
version on) refuses to write one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from enum import Enum
from typing import Any, cast
from uuid import UUID

import orjson
from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder, Transcoding

from dnd_ledger.domain.values import AddressKind, Channel, DndKind, Source


class EnumAs(Transcoding):
    def __init__(self, enum_type: type[Enum], name: str) -> None:
        self.type = enum_type
        self.name = name

    def encode(self, obj: Any) -> str:
        return str(obj.value)

    def decode(self, data: Any) -> Any:
        return self.type(data)


LEDGER_ENUMS: tuple[tuple[type[Enum], str], ...] = (
    (Channel, "channel"),
    (DndKind, "dnd_kind"),
    (Source, "source"),
    (AddressKind, "address_kind"),
)

_OPTIONS = orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATETIME
_TAG = b'"_type_"'
_ESCAPE = b"\\"  # any escape (found with memchr: cheaper than looking for "\\u")


def _tagger(t: Transcoding) -> Callable[[Any], dict[str, Any]]:
    """The tagged object for a value of ``t.type``; an enum's members' are made once."""
    name = t.name
    if isinstance(t, EnumAs):
        members = cast("type[Enum]", t.type)
        return {m: {"_type_": name, "_data_": t.encode(m)} for m in members}.__getitem__
    if type(t) is DatetimeAsISO:

        def tag_datetime(obj: datetime) -> dict[str, Any]:
            # orjson writes a UTC datetime as isoformat() does, in a third of the time
            # (tests/unit/test_transcoding.py holds it to that); other zones: isoformat.
            if obj.tzinfo is UTC:
                return {"_type_": name, "_data_": orjson.dumps(obj)[1:-1].decode()}
            return {"_type_": name, "_data_": obj.isoformat()}

        return tag_datetime
    encode = t.encode

    def tag(obj: Any) -> dict[str, Any]:
        return {"_type_": name, "_data_": encode(obj)}

    return tag


def _untagger(t: Transcoding) -> Callable[[Any], Any]:
    """``t.decode``, or a shortcut giving the same value for the ledger's transcodings
    (or failing where ``t.decode`` might not: the caller then asks the library)."""
    if type(t) is DatetimeAsISO:
        return datetime.fromisoformat
    if isinstance(t, EnumAs):
        members = cast("type[Enum]", t.type)._value2member_map_  # Enum(data) looks here first
        return members.__getitem__
    return t.decode


class LedgerTranscoder(JSONTranscoder):
    def __init__(self) -> None:
        self._taggers: dict[type, Callable[[Any], dict[str, Any]]] = {}
        self._untaggers: dict[str, Callable[[Any], Any]] = {}
        super().__init__()
        for enum_type, name in LEDGER_ENUMS:
            self.register(EnumAs(enum_type, name))

    def register(self, transcoding: Transcoding) -> None:
        super().register(transcoding)
        # Only what orjson would not write as is: it writes UUIDs (untagged, as text),
        # dataclasses and tuples itself, and so they stay.
        if issubclass(transcoding.type, Enum | datetime):
            self._taggers[transcoding.type] = _tagger(transcoding)
        self._untaggers[transcoding.name] = _untagger(transcoding)

    # -- encoding ---------------------------------------------------------------------
    def encode(self, obj: Any) -> bytes:
        # Top-level enum members and datetimes of a registered type are tagged here;
        # any other enum member is the library's error, as before. Nested dicts
        # (effect, detail) hold plain values; a datetime there reaches ``_tag``.
        if type(obj) is dict:
            taggers = self._taggers
            out = {}
            for k, v in obj.items():
                tag = taggers.get(type(v))
                if tag is not None:
                    v = tag(v)
                elif isinstance(v, Enum):
                    v = self._encode_obj(v)
                out[k] = v
            obj = out
        return orjson.dumps(obj, default=self._tag, option=_OPTIONS)

    def _tag(self, o: Any) -> Any:
        if type(o) is UUID or isinstance(o, datetime | Enum) or type(o) in self.types:
            return self._encode_obj(o)
        if isinstance(o, str):  # some other str subclass: store as text
            return str(o)
        return self._encode_obj(o)

    # -- decoding ---------------------------------------------------------------------
    def decode(self, data: bytes) -> Any:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return super().decode(data)  # NaN, a lone surrogate: the stdlib reads them
        if _ESCAPE in data:  # an escape could spell a tag's key: look everywhere
            return self._walk(obj)
        untagged = data.count(_TAG)
        if not untagged:
            return obj
        if type(obj) is dict:
            untaggers = self._untaggers
            try:
                for k, v in obj.items():
                    if type(v) is dict and "_type_" in v:
                        untagged -= 1
                        if len(v) == 2:
                            obj[k] = untaggers[v["_type_"]](v["_data_"])
            except Exception:  # not a tag after all, an unknown name, bad data: see below
                untagged = -1
            if not untagged:  # every tag was a top-level value: nothing nested
                return obj
            obj = orjson.loads(data)  # start again from the bytes, the library's way
        return self._walk(obj)

    def _walk(self, o: Any) -> Any:
        """``o`` with every tagged object turned back, innermost first (the object
        hook's order under the stdlib decoder)."""
        if type(o) is dict:
            return self._decode_obj({k: self._walk(v) for k, v in o.items()})
        if type(o) is list:
            return [self._walk(v) for v in o]
        return o
