"""Value objects. Each validates itself on construction and is immutable."""

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from domain.errors import InvalidValue
from domain.vocabulary import SigningMethod

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def _require_text(field: str, value: str, max_length: int = 200) -> None:
    if not value or not value.strip():
        raise InvalidValue(field, "must not be blank")
    if len(value) > max_length:
        raise InvalidValue(field, f"must be at most {max_length} characters")


def require_utc(field: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidValue(field, "must carry a time zone")


@dataclass(frozen=True)
class Provenance:
    """Who acted and when. Supplied by the caller: the domain never reads a clock."""

    actor_id: str
    occurred_at: datetime

    def __post_init__(self) -> None:
        _require_text("actor_id", self.actor_id)
        require_utc("occurred_at", self.occurred_at)


@dataclass(frozen=True)
class HumanName:
    given: str
    family: str

    def __post_init__(self) -> None:
        _require_text("name.given", self.given)
        _require_text("name.family", self.family)


@dataclass(frozen=True)
class ContactDetails:
    phone: str | None = None
    email: str | None = None

    def __post_init__(self) -> None:
        if self.phone is not None:
            _require_text("contact.phone", self.phone, 40)
        if self.email is not None:
            _require_text("contact.email", self.email, 254)
            if "@" not in self.email:
                raise InvalidValue("contact.email", "must be an email address")


@dataclass(frozen=True)
class Coding:
    """A code from a terminology: LOINC, SNOMED CT, RxNorm, CVX, ..."""

    system: str
    code: str
    display: str

    def __post_init__(self) -> None:
        _require_text("code.system", self.system)
        _require_text("code.code", self.code, 64)
        _require_text("code.display", self.display, 500)


@dataclass(frozen=True)
class Quantity:
    """A measured amount with its UCUM unit."""

    quantity: Decimal
    unit: str

    def __post_init__(self) -> None:
        if not self.quantity.is_finite():
            raise InvalidValue("value.quantity", "must be a finite number")
        _require_text("value.unit", self.unit, 64)


@dataclass(frozen=True)
class TextValue:
    text: str

    def __post_init__(self) -> None:
        _require_text("value.text", self.text, 20_000)


@dataclass(frozen=True)
class CodedValue:
    code: Coding


@dataclass(frozen=True)
class BooleanValue:
    boolean: bool


ComponentValue = Quantity | TextValue | CodedValue | BooleanValue

# A blood pressure panel has two readings, so a panel holds at most a handful.
MAX_COMPONENTS = 20


@dataclass(frozen=True)
class Component:
    """One coded part of a panel observation (systolic 8480-6 under 85354-9)."""

    code: Coding
    value: ComponentValue


@dataclass(frozen=True)
class Components:
    """A panel's parts, in the order given: an observation with components and no
    value of its own (FHIR ``Observation.component``)."""

    components: tuple[Component, ...]

    def __post_init__(self) -> None:
        # The event log's JSON gives lists back; the value stays immutable.
        object.__setattr__(self, "components", tuple(self.components))
        if not self.components:
            raise InvalidValue("value.components", "must not be empty")
        if len(self.components) > MAX_COMPONENTS:
            raise InvalidValue("value.components", f"must be at most {MAX_COMPONENTS}")
        for part in self.components:
            if not isinstance(part.value, ComponentValue):
                raise InvalidValue("value.components", "a component's value is not a panel")


EntryValue = Quantity | TextValue | CodedValue | BooleanValue | Components

# How an entry names a practitioner, organisation or location (FHIR's element for it
# differs by resource: docs/fhir.md, "Links").
ATTRIBUTION_ROLES = frozenset(
    {"performer", "participant", "requester", "service-provider", "location", "author"}
    | {"custodian"}
)
ATTRIBUTED_TYPES = frozenset({"Practitioner", "Organization", "Location"})
MAX_ATTRIBUTIONS = 20
_ENTRY_HEX = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Attribution:
    """A practitioner, organisation or location an entry names: the chart keeps no
    resource for them, only the identifier they are known by and their name."""

    role: str
    resource_type: str
    system: str
    value: str
    display: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ATTRIBUTION_ROLES:
            raise InvalidValue("attribution.role", f"must be one of {sorted(ATTRIBUTION_ROLES)}")
        if self.resource_type not in ATTRIBUTED_TYPES:
            raise InvalidValue(
                "attribution.resource_type", "must be a Practitioner, an Organization or a Location"
            )
        _require_text("attribution.system", self.system, 500)
        _require_text("attribution.value", self.value, 200)
        if self.display is not None:
            _require_text("attribution.display", self.display, 500)


@dataclass(frozen=True)
class EntryLinks:
    """What an entry refers to beside its patient: the encounter entry of the same
    chart it happened in (its id in hex) and who took part."""

    encounter: str | None = None
    attributions: tuple[Attribution, ...] = ()

    def __post_init__(self) -> None:
        # The event log's JSON gives lists back; the value stays immutable.
        object.__setattr__(self, "attributions", tuple(self.attributions))
        if self.encounter is not None and not _ENTRY_HEX.match(self.encounter):
            raise InvalidValue("links.encounter", "must be an entry id")
        if len(self.attributions) > MAX_ATTRIBUTIONS:
            raise InvalidValue("links.attributions", f"must be at most {MAX_ATTRIBUTIONS}")

    def __bool__(self) -> bool:
        return self.encounter is not None or bool(self.attributions)


@dataclass(frozen=True)
class Period:
    """A closed-open span of days; ``end`` of None means open-ended."""

    start: date
    end: date | None = None

    def __post_init__(self) -> None:
        if self.end is not None and self.end <= self.start:
            raise InvalidValue("period.end", "must be after period.start")

    def includes(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day < self.end)


@dataclass(frozen=True)
class ConsentEvidence:
    """What the patient saw and how they signed it."""

    form_id: str
    form_version: str
    text_sha256: str
    method: SigningMethod
    recorded_by: str

    def __post_init__(self) -> None:
        _require_text("evidence.form_id", self.form_id, 100)
        _require_text("evidence.form_version", self.form_version, 50)
        if not _SHA256_HEX.match(self.text_sha256):
            raise InvalidValue(
                "evidence.text_sha256",
                "must be the lowercase hex SHA-256 of the form text",
            )
        _require_text("evidence.recorded_by", self.recorded_by)
