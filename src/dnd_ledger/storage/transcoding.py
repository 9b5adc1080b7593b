"""Event serialisation: JSON with the ledger's own types tagged, so they come back as themselves.

Encoding uses orjson; enum members and datetimes are tagged in eventsourcing's
``{"_type_", "_data_"}`` form; decoding is the stdlib JSON decoder with
eventsourcing's object hook. The stored bytes are plain JSON, readable offline.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import JSONTranscoder, Transcoding

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


class LedgerTranscoder(JSONTranscoder):
    def __init__(self) -> None:
        super().__init__()
        for enum_type, name in LEDGER_ENUMS:
            self.register(EnumAs(enum_type, name))

    def encode(self, obj: Any) -> bytes:
        # orjson writes Enum members natively (as their values); tag them first.
        # The ledger's events hold enums only as top-level attributes (nested
        # effect and detail dicts hold plain values), so one level is enough.
        if isinstance(obj, dict):
            obj = {k: self._encode_obj(v) if isinstance(v, Enum) else v for k, v in obj.items()}
        return orjson.dumps(obj, default=self._tag, option=_OPTIONS)

    def _tag(self, o: Any) -> Any:
        if type(o) is UUID or isinstance(o, datetime | Enum) or type(o) in self.types:
            return self._encode_obj(o)
        if isinstance(o, str):  # some other str subclass: store as text
            return str(o)
        return self._encode_obj(o)
