"""How value objects and dates are written into the event payloads."""

import dataclasses
import math
from datetime import UTC, date, datetime
from typing import Any

import orjson
from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder, Transcoding

from domain import values


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class ValueObjectAsDict(Transcoding):
    """Any frozen dataclass value object, by field. Names are stable across renames
    of the module because they are the class name alone."""

    def __init__(self, cls: type[Any]) -> None:
        self.type = cls
        self.name = cls.__name__
        self._fields = tuple(f.name for f in dataclasses.fields(cls))

    def encode(self, obj: Any) -> dict[str, Any]:
        return {name: getattr(obj, name) for name in self._fields}

    def decode(self, data: dict[str, Any]) -> Any:
        return self.type(**data)


VALUE_OBJECTS: tuple[type[Any], ...] = (
    values.Provenance,
    values.HumanName,
    values.ContactDetails,
    values.Coding,
    values.Quantity,
    values.TextValue,
    values.CodedValue,
    values.BooleanValue,
    values.Component,
    values.Components,
    values.Period,
    values.ConsentEvidence,
    values.Attribution,
    values.EntryLinks,
)


def register_clinical_transcodings(transcoder: JSONTranscoder) -> None:
    transcoder.register(DateAsISO())
    for cls in VALUE_OBJECTS:
        transcoder.register(ValueObjectAsDict(cls))


class _Unwritable(Exception):
    """A value the fast path does not write as the library would: it is left to it."""


_SCALARS = frozenset({str, int, bool, type(None)})


class OrjsonTranscoder(JSONTranscoder):
    """The library's JSON format, written through orjson; reading is the library's own,
    so what either wrote reads back the same.

    An event's state is first turned into plain JSON values here, each registered type
    by its own transcoding, so that orjson never writes a UUID, an Enum or a dataclass
    its own way. A state holding anything else (a dict with keys other than strings, an
    unregistered type, a non-finite float, an integer orjson cannot hold) is written by
    the library's encoder, with the library's errors."""

    def encode(self, obj: Any) -> bytes:
        if type(obj) is dict:
            try:
                return orjson.dumps({key: self._plain(value) for key, value in obj.items()})
            except (_Unwritable, orjson.JSONEncodeError, RecursionError):
                pass  # the library's encoder writes it, or raises its own error
        return super().encode(obj)

    def _plain(self, value: Any) -> Any:
        kind = type(value)
        if kind in _SCALARS:
            return value
        if kind is float:
            if math.isfinite(value):
                return value
            raise _Unwritable
        if kind is list or kind is tuple:
            return [self._plain(item) for item in value]
        if kind is dict:
            if not all(type(key) is str for key in value):
                raise _Unwritable  # the library writes other keys as strings
            return {key: self._plain(item) for key, item in value.items()}
        if issubclass(kind, (str, int)):  # a StrEnum: both encoders write its value
            return value
        if issubclass(kind, (float, list, tuple, dict)):
            raise _Unwritable  # the library's json writes these itself, past any transcoding
        transcoding = self.types.get(kind)
        if kind is datetime and value.tzinfo is UTC and type(transcoding) is DatetimeAsISO:
            # orjson writes a UTC time as isoformat() does, in C.
            return {"_type_": transcoding.name, "_data_": value}
        if transcoding is not None:
            data = transcoding.encode(value)
            if type(data) is dict:
                data = {key: self._plain(item) for key, item in data.items()}
            else:
                data = self._plain(data)
            return {"_type_": transcoding.name, "_data_": data}
        raise _Unwritable
