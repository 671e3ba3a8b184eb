"""How value objects and dates are written into the event payloads."""

import dataclasses
from datetime import date
from typing import Any

from eventsourcing.persistence import JSONTranscoder, Transcoding

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
