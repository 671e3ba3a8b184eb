"""The bodies /v1 sends, as pydantic models, for the OpenAPI document only.

Responses are rendered elsewhere (disclosed bodies by
``application.charts.disclosure_rendering``, hashed into access records), so these
models never serialise anything: they describe those bytes, and tests validate real
responses against them (tests/api/test_openapi_contract.py). Times are RFC 3339 in UTC
with ``Z``; ids are dashed UUIDs.
"""

from datetime import date
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from domain.vocabulary import (
    AdministrativeSex,
    EntryKind,
    EntryStatus,
    Modality,
    SensitivityLabel,
)

PATIENT = "5f0c6f9e-3d1b-4b7e-9a57-1c1b0f6f2a10"
ENTRY = "2799eaee-a333-4240-99c1-5f8ed8e1f871"
ACCESS = "ead99101-a770-4479-a247-08655655b72e"
DIRECTIVE = "ad845811-70d0-47e2-be5b-d60a43519bc8"
MEMBERSHIP = "fab6b9be-582a-4d72-bb3b-4f2f0a3e4025"
SHA = "53b746af5fa62f7f8d77b534a3f3ff4ede574dafac981070458f9842641c12b4"
CURSOR = "MjAyNi0xMS0yMFQwOTozMDowMC4wMDAwMDBafDI3OTllYWVlYTMzMzQyNDA5OWMxNWY4ZWQ4ZTFmODcx"

# RFC 3339 in UTC: a ``date-time`` format, and the pattern that pins the zone to ``Z``.
Instant = Annotated[
    str,
    Field(
        json_schema_extra={"format": "date-time"},
        pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$",
        examples=["2026-11-20T09:30:00.000000Z"],
    ),
]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Cursor = Annotated[
    str | None, Field(description="Pass as `cursor` for the next page; null on the last page")
]
Action = Literal["read", "search", "write", "export", "replay", "deliver"]


def example(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [example]})


class Model(BaseModel):
    """A body the server sends: its keys are exactly these (``additionalProperties`` is
    false), so that a client learns of a new key from the document first."""

    model_config = ConfigDict(extra="forbid")


# --- writes ---------------------------------------------------------------------------


class StreamWritten(Model):
    """A command's result: the stream written, its new version, and the log position."""

    model_config = example({"id": PATIENT, "version": 1, "position": 42})
    id: UUID
    version: int
    position: int = Field(description="Pass as `min_position` to read your own write")


class EntryWritten(Model):
    model_config = example({"entry_id": ENTRY, "version": 2, "position": 43})
    entry_id: UUID
    version: int = Field(description="The chart's version after the write (its ETag)")
    position: int


class DirectiveWritten(Model):
    model_config = example({"directive_id": DIRECTIVE, "consent_version": 2, "position": 44})
    directive_id: UUID
    consent_version: int
    position: int


class RestrictionWritten(Model):
    model_config = example(
        {
            "restriction_id": "7205f452-a097-4054-a70a-2aac70ed895b",
            "consent_version": 4,
            "position": 45,
        }
    )
    restriction_id: UUID
    consent_version: int
    position: int


class SponsorDiscontinued(Model):
    model_config = example({"sponsor_id": "acme-corp", "version": 3, "members": 12, "position": 46})
    sponsor_id: str
    version: int
    members: int = Field(description="Memberships the process will terminate, once each")
    position: int


class Erased(Model):
    model_config = example({"id": PATIENT, "erased": True, "position": 47})
    id: UUID
    erased: Literal[True]
    position: int


class SubscriberRegistered(Model):
    model_config = example({"id": "6375d72b-0826-423c-8448-07f574664d4e", "position": 48})
    id: UUID
    position: int


class Reviewed(Model):
    model_config = example({"access_id": ACCESS, "version": 2, "position": 49})
    access_id: UUID
    version: int
    position: int


# --- patients and the chart -------------------------------------------------------------


class Name(Model):
    given: str
    family: str


class Contact(Model):
    phone: str | None
    email: str | None


class Demographics(Model):
    model_config = example(
        {
            "id": PATIENT,
            "version": 6,
            "mrn": "MRN-000123",
            "mrn_system": "urn:careledger:org-main:mrn",
            "name": {"given": "Ada", "family": "Example"},
            "birth_date": "1984-07-12",
            "sex": "female",
            "contact": {"phone": "+1-555-0100", "email": None},
            "deceased_at": None,
        }
    )
    id: UUID
    version: int
    mrn: str = Field(description="The medical record number's value")
    mrn_system: str = Field(description="The identifier system the MRN is unique in")
    name: Name | None
    birth_date: date | None
    sex: AdministrativeSex | None
    contact: Contact | None
    deceased_at: Instant | None


class SearchHit(Model):
    id: UUID
    name: Name
    birth_date: date


class SearchResults(Model):
    model_config = example(
        {
            "items": [
                {
                    "id": PATIENT,
                    "name": {"given": "Ada", "family": "Example"},
                    "birth_date": "1984-07-12",
                }
            ],
            "next_cursor": None,
        }
    )
    items: list[SearchHit]
    next_cursor: Cursor


class Coding(Model):
    system: str
    code: str
    display: str


class QuantityValue(Model):
    quantity: float
    unit: str = Field(description="UCUM unit")


class TextValue(Model):
    text: str


class CodedValue(Model):
    code: Coding


class BooleanValue(Model):
    boolean: bool


class Component(Model):
    code: Coding
    value: QuantityValue | TextValue | CodedValue | BooleanValue


class ComponentsValue(Model):
    """A panel, such as blood pressure (LOINC 85354-9) with its systolic and diastolic
    parts: the parts' values, and none of its own."""

    model_config = example(
        {
            "components": [
                {
                    "code": {"system": "http://loinc.org", "code": "8480-6", "display": "Systolic"},
                    "value": {"quantity": 120.0, "unit": "mm[Hg]"},
                }
            ]
        }
    )
    components: list[Component]


EntryValue = QuantityValue | TextValue | CodedValue | BooleanValue | ComponentsValue

_ENTRY_EXAMPLE = {
    "entry_id": ENTRY,
    "kind": "observation",
    "code": {"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"},
    "value": {"quantity": 72.0, "unit": "/min"},
    "modality": None,
    "labels": [],
    "author": "dr-main",
    "effective_at": "2026-11-20T09:30:00.000000Z",
    "status": "active",
}


class Attribution(Model):
    role: str = Field(
        description="performer, participant, requester, service-provider, location, "
        "author or custodian"
    )
    type: str = Field(description="Practitioner, Organization or Location")
    system: str = Field(description="The system of the identifier it is known by")
    value: str = Field(description="That identifier")
    display: str | None = Field(default=None, description="Its name; absent if none given")


class TimelineEntry(Model):
    model_config = example(_ENTRY_EXAMPLE)
    entry_id: UUID
    kind: EntryKind
    code: Coding
    value: EntryValue | None
    modality: Modality | None
    labels: list[SensitivityLabel]
    tags: list[Coding] = Field(
        default_factory=list,
        description="Security codes that are not sensitivity labels, such as HL7 HTEST "
        "(test data), as a FHIR write gave them; absent when there are none",
    )
    encounter: UUID | None = Field(
        default=None,
        description="The encounter entry of the same chart this entry happened in, as a "
        "FHIR write or import gave it; absent when none",
    )
    attributions: list[Attribution] = Field(
        default_factory=list,
        description="The practitioners, organisations and locations the entry names, "
        "by identifier and name, as a FHIR write or import gave them; absent when none",
    )
    author: str
    effective_at: Instant
    status: EntryStatus


class Timeline(Model):
    model_config = example(
        {"patient_id": PATIENT, "entries": [_ENTRY_EXAMPLE], "next_cursor": None}
    )
    patient_id: UUID
    entries: list[TimelineEntry] = Field(description="Ordered by effective time")
    next_cursor: Cursor
