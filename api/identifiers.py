"""The MRN of a registration body: a bare value, read in the organisation's default
system, or ``{system, value}`` (docs/events.md, Identifiers)."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

MrnValue = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class MrnIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"system": "urn:example:clinic-a:mrn", "value": "MRN-000123"}]
        },
    )
    system: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")]
    value: MrnValue


Mrn = MrnValue | MrnIn
