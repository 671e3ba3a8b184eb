"""Request bodies. Separate from the domain; they only parse and convert."""

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from api.identifiers import Mrn
from domain import values
from domain.vocabulary import (
    AdministrativeSex,
    EntryKind,
    Modality,
    Plan,
    Purpose,
    SensitivityLabel,
    SigningMethod,
)

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000)]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
OrgId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]


def _from_1900(moment: datetime) -> datetime:
    try:
        year = moment.astimezone(UTC).year
    except OverflowError:  # the year 1 or 9999 moved out of range by its offset
        raise ValueError("must be in 1900 or later, and before the year 9999 ends in UTC") from None
    if year < 1900:
        raise ValueError("must be in 1900 or later")
    return moment


# A clinical time from 1900 on: times are sent as fixed-width RFC 3339 text (a year
# below 1000 would lose its four digits, and its place in the timeline's order).
ClinicalTime = Annotated[
    AwareDatetime,
    AfterValidator(_from_1900),
    Field(description="RFC 3339 with a zone, in 1900 or later"),
]


_EXAMPLE_SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NameIn(Body):
    given: Text
    family: Text

    def to_domain(self) -> values.HumanName:
        return values.HumanName(self.given, self.family)


class ContactIn(Body):
    phone: Annotated[str, StringConstraints(min_length=3, max_length=40)] | None = None
    email: Annotated[str, StringConstraints(min_length=3, max_length=254)] | None = None

    def to_domain(self) -> values.ContactDetails:
        return values.ContactDetails(self.phone, self.email)


class RegisterPatientIn(Body):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "mrn": "MRN-000123",
                    "name": {"given": "Ada", "family": "Example"},
                    "birth_date": "1984-07-12",
                    "sex": "female",
                    "contact": {"phone": "+1-555-0100", "email": "ada@example.org"},
                }
            ]
        },
    )
    # A bare MRN is in the organisation's default system (api/identifiers.py).
    mrn: Mrn
    name: NameIn
    birth_date: date
    sex: AdministrativeSex
    contact: ContactIn | None = None


class UpdateDemographicsIn(Body):
    name: NameIn | None = None
    birth_date: date | None = None
    sex: AdministrativeSex | None = None
    contact: ContactIn | None = None


class CodingIn(Body):
    system: Text
    code: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    display: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]

    def to_domain(self) -> values.Coding:
        return values.Coding(self.system, self.code, self.display)


class QuantityIn(Body):
    quantity: Annotated[Decimal, Field(allow_inf_nan=False)]
    unit: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class TextIn(Body):
    text: LongText


class CodedIn(Body):
    code: CodingIn


class BooleanIn(Body):
    boolean: bool


ComponentValueIn = QuantityIn | TextIn | CodedIn | BooleanIn


class ComponentIn(Body):
    code: CodingIn
    value: ComponentValueIn


class ComponentsIn(Body):
    """A panel (blood pressure 85354-9): coded parts, each with its own value."""

    components: Annotated[list[ComponentIn], Field(min_length=1, max_length=20)]


ValueIn = QuantityIn | TextIn | CodedIn | BooleanIn | ComponentsIn


def value_to_domain(value: ValueIn | None) -> values.EntryValue | None:
    if isinstance(value, ComponentsIn):
        return values.Components(
            tuple(
                values.Component(part.code.to_domain(), _part(value_to_domain(part.value)))
                for part in value.components
            )
        )
    if isinstance(value, QuantityIn):
        return values.Quantity(value.quantity, value.unit)
    if isinstance(value, TextIn):
        return values.TextValue(value.text)
    if isinstance(value, CodedIn):
        return values.CodedValue(value.code.to_domain())
    if isinstance(value, BooleanIn):
        return values.BooleanValue(value.boolean)
    return None


def _part(value: values.EntryValue | None) -> values.ComponentValue:
    assert value is not None and not isinstance(value, values.Components)
    return value


class RecordEntryIn(Body):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "kind": "observation",
                    "code": {
                        "system": "http://loinc.org",
                        "code": "8867-4",
                        "display": "Heart rate",
                    },
                    "value": {"quantity": 72, "unit": "/min"},
                    "effective_at": "2026-11-20T09:30:00Z",
                    "labels": [],
                },
                {
                    "kind": "encounter",
                    "code": {
                        "system": "http://snomed.info/sct",
                        "code": "185317003",
                        "display": "Telephone encounter",
                    },
                    "effective_at": "2026-11-20T10:00:00Z",
                    "modality": "virtual",
                },
            ]
        },
    )
    kind: EntryKind
    code: CodingIn
    value: ValueIn | None = None
    effective_at: ClinicalTime
    modality: Modality | None = None
    labels: Annotated[list[SensitivityLabel], Field(max_length=4)] = []


class AmendEntryIn(Body):
    reason: Text
    code: CodingIn | None = None
    value: ValueIn | None = None
    effective_at: ClinicalTime | None = None
    modality: Modality | None = None
    labels: Annotated[list[SensitivityLabel], Field(max_length=4)] | None = None


class ReasonIn(Body):
    reason: Text


class DeceasedIn(Body):
    deceased_at: ClinicalTime


class EnrolIn(Body):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "patient_id": "5f0c6f9e-3d1b-4b7e-9a57-1c1b0f6f2a10",
                    "plan": "employer",
                    "sponsor_id": "acme-corp",
                    "annual_fee_cents": 19900,
                    "starts_on": "2026-01-01",
                    "ends_on": "2026-12-31",
                }
            ]
        },
    )
    patient_id: UUID
    plan: Plan
    sponsor_id: OrgId | None = None
    annual_fee_cents: Annotated[int, Field(ge=0, le=10_000_000)]
    starts_on: date
    ends_on: date


class RenewIn(Body):
    ends_on: date
    annual_fee_cents: Annotated[int, Field(ge=0, le=10_000_000)] | None = None


class DiscontinueIn(Body):
    effective_on: date


class PeriodIn(Body):
    start: date
    end: date | None = None

    def to_domain(self) -> values.Period:
        return values.Period(self.start, self.end)


class EvidenceIn(Body):
    form_id: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    form_version: Annotated[str, StringConstraints(min_length=1, max_length=50)]
    text_sha256: Sha256Hex
    method: SigningMethod


class GrantDirectiveIn(Body):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "grantee": "org-pharmacy",
                    "purposes": ["TREAT"],
                    "labels": ["substance_use"],
                    "period": {"start": "2026-01-01", "end": "2027-01-01"},
                    "evidence": {
                        "form_id": "consent-42cfr2",
                        "form_version": "3",
                        "text_sha256": _EXAMPLE_SHA256,
                        "method": "electronic",
                    },
                }
            ]
        },
    )
    grantee: Text
    purposes: Annotated[list[Purpose], Field(min_length=1, max_length=8)]
    labels: Annotated[list[SensitivityLabel], Field(max_length=4)] = []
    period: PeriodIn
    evidence: EvidenceIn


class RestrictionIn(Body):
    purposes: Annotated[list[Purpose], Field(max_length=8)] = []
    labels: Annotated[list[SensitivityLabel], Field(max_length=4)] = []
    recipient: Text | None = None


class EraseIn(Body):
    legal_basis: str = Field(
        min_length=1,
        max_length=500,
        description="Why the record may be erased, e.g. a reference to the request",
        examples=["GDPR art. 17 request REF-2026-0042"],
    )


class ReviewIn(Body):
    outcome: Literal["justified", "unjustified", "needs_follow_up"] = Field(
        description="The auditor's finding on a break-glass access"
    )
    note: str = Field(default="", max_length=2000, description="Why; no PHI")


class SubscriberIn(Body):
    name: Text = Field(description="Who receives the feed, e.g. 'Main St pharmacy'")
    recipient_org: OrgId = Field(description="The recipient organisation the policy decides for")
    purpose: Purpose = Field(description="The purpose of use every delivery is decided for")
    kinds: list[EntryKind] = Field(min_length=1, description="Entry kinds it may receive")
    labels: list[SensitivityLabel] = Field(
        default_factory=list,
        description="Sensitivity labels it may receive; consent must also allow each one",
    )
    content: Literal["id-only", "summary", "full"] = Field(
        description="id-only: ids; summary: kind, code and dates, no free text; full: the entry"
    )
