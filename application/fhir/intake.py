"""FHIR resources a client writes, as the chart's commands: pure, no store, no clock.

The inverse of ``application.fhir.resources``: what that module renders is what this
one takes, element for element, so a resource read back can be written again. An
element the chart cannot hold is refused (``InvalidValue`` naming it, a 422
OperationOutcome), never dropped. The mapping is documented in docs/fhir.md.
"""

import base64
import binascii
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from application.fhir.resources import (
    ACT_CODE,
    ENCOUNTER_CLASS,
    OBSERVATION_CATEGORY,
    SECURITY_LABELS,
    UCUM,
)
from domain.errors import InvalidValue
from domain.values import (
    BooleanValue,
    CodedValue,
    Coding,
    Component,
    Components,
    ComponentValue,
    ContactDetails,
    EntryValue,
    HumanName,
    Quantity,
    TextValue,
)
from domain.vocabulary import AdministrativeSex, EntryKind, Modality, SensitivityLabel

Resource = dict[str, Any]

# Elements every resource may carry that say nothing the chart keeps: the server
# assigns ids and versions, and a narrative or profile claim is not clinical content.
IGNORED = {"resourceType", "id", "text"}
META_IGNORED = {"versionId", "lastUpdated", "profile", "security"}
LABEL_OF_CODE = {code: SensitivityLabel(label) for label, (code, _) in SECURITY_LABELS.items()}
MODALITY_OF_CLASS = {code: Modality(modality) for modality, (code, _) in ENCOUNTER_CLASS.items()}
KIND_OF_CATEGORY = {"vital-signs": EntryKind.OBSERVATION, "laboratory": EntryKind.LAB_RESULT}
# What each entry resource carries beyond its code: the element names of its code, its
# time, its subject, and the statuses a write may give (the chart keeps its own).
SHAPES: dict[str, dict[str, Any]] = {
    "Observation": {
        "code": "code",
        "time": "effectiveDateTime",
        "subject": "subject",
        "statuses": {"status": {"final", "amended"}},
        "more": {"category", "valueQuantity", "valueString", "valueCodeableConcept"}
        | {"valueBoolean", "component"},
    },
    "Encounter": {
        "kind": EntryKind.ENCOUNTER,
        "code": "type",
        "time": "period",
        "subject": "subject",
        "statuses": {"status": {"finished"}},
        "more": {"class"},
    },
    "Condition": {
        "kind": EntryKind.CONDITION,
        "code": "code",
        "time": "onsetDateTime",
        "subject": "subject",
        "statuses": {"verificationStatus": {"confirmed"}},
        "more": {"note"},
    },
    "AllergyIntolerance": {
        "kind": EntryKind.ALLERGY,
        "code": "code",
        "time": "onsetDateTime",
        "subject": "patient",
        "statuses": {"verificationStatus": {"confirmed"}},
        "more": {"note"},
    },
    "MedicationStatement": {
        "kind": EntryKind.MEDICATION,
        "code": "medicationCodeableConcept",
        "time": "effectiveDateTime",
        "subject": "subject",
        "statuses": {"status": {"active"}},
        "more": {"note"},
    },
    "Immunization": {
        "kind": EntryKind.IMMUNIZATION,
        "code": "vaccineCode",
        "time": "occurrenceDateTime",
        "subject": "patient",
        "statuses": {"status": {"completed"}},
        "more": {"note"},
    },
    "Procedure": {
        "kind": EntryKind.PROCEDURE,
        "code": "code",
        "time": "performedDateTime",
        "subject": "subject",
        "statuses": {"status": {"completed"}},
        "more": {"note"},
    },
    "DocumentReference": {
        "kind": EntryKind.NOTE,
        "code": "type",
        "time": "date",
        "subject": "subject",
        "statuses": {"status": {"current"}, "docStatus": {"final", "amended"}},
        "more": {"content"},
    },
}
ENTERED_IN_ERROR = "entered-in-error"


@dataclass(frozen=True)
class PatientFields:
    """A ``Patient`` as the arguments of registration or a demographics update."""

    mrn_system: str
    mrn: str
    name: HumanName
    birth_date: date
    sex: AdministrativeSex | None
    contact: ContactDetails | None
    deceased_at: datetime | None


@dataclass(frozen=True)
class EntryFields:
    """An entry resource as the arguments of ``record_entry`` or ``amend_entry``."""

    patient_reference: str
    kind: EntryKind
    code: Coding
    value: EntryValue | None
    effective_at: datetime
    modality: Modality | None
    labels: frozenset[SensitivityLabel]
    tags: tuple[Coding, ...]
    entered_in_error: bool


def _refuse(element: str, why: str) -> InvalidValue:
    return InvalidValue(element, why)


def _only(resource: Resource, allowed: set[str], where: str) -> None:
    for name in resource:
        if name not in allowed:
            raise _refuse(f"{where}.{name}", "is not held by this server")


def _list(value: Any, element: str, most: int | None = 1) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise _refuse(element, "must be a non-empty array")
    if most is not None and len(value) > most:
        raise _refuse(element, f"holds at most {most} here")
    return value


def _dict(value: Any, element: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _refuse(element, "must be an object")
    return value


def _text(value: Any, element: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _refuse(element, "must be a non-empty string")
    return value


def coding(value: Any, element: str) -> Coding:
    """A Coding with system, code and display (the chart keeps all three)."""
    found = _dict(value, element)
    _only(found, {"system", "code", "display"}, element)
    display = found.get("display")
    return Coding(
        _text(found.get("system"), f"{element}.system"),
        _text(found.get("code"), f"{element}.code"),
        _text(display, f"{element}.display"),
    )


def concept(value: Any, element: str) -> Coding:
    """A CodeableConcept of one coding; its ``text``, if any, must be that display."""
    found = _dict(value, element)
    _only(found, {"coding", "text"}, element)
    codings = _list(found.get("coding"), f"{element}.coding")
    code = coding(codings[0], f"{element}.coding[0]")
    if "text" in found and found["text"] != code.display:
        raise _refuse(f"{element}.text", "must equal the coding's display")
    return code


def moment(value: Any, element: str) -> datetime:
    """A FHIR dateTime to the second, with its zone: the chart keeps instants."""
    text = _text(value, element)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _refuse(element, "must be a date-time with a time zone") from None
    if len(text) <= 10 or parsed.tzinfo is None:
        raise _refuse(element, "must be a date-time with a time zone")
    return parsed


def security(meta: Any, element: str) -> tuple[frozenset[SensitivityLabel], tuple[Coding, ...]]:
    """``meta.security``: sensitivity labels (v3-ActCode ETH, MH, SEX, GDIS), and the
    other codes (HTEST ...) kept as tags."""
    labels: set[SensitivityLabel] = set()
    tags: list[Coding] = []
    if meta is None:
        return frozenset(), ()
    found = _dict(meta, element)
    _only(found, META_IGNORED, element)
    for index, item in enumerate(found.get("security", [])):
        where = f"{element}.security[{index}]"
        entry = _dict(item, where)
        if entry.get("system") == ACT_CODE and entry.get("code") in LABEL_OF_CODE:
            labels.add(LABEL_OF_CODE[entry["code"]])
            continue
        # Security codes often come without display: the code stands for it.
        tags.append(coding({"display": entry.get("code"), **entry}, where))
    return frozenset(labels), tuple(tags)


def subject(value: Any, element: str) -> str:
    found = _dict(value, element)
    _only(found, {"reference", "display"}, element)
    return _text(found.get("reference"), f"{element}.reference")


def patient_id_of(reference: str, element: str) -> UUID:
    """``Patient/{id}`` (or a full URL ending so) as a patient id."""
    _, _, tail = reference.rpartition("Patient/")
    try:
        return UUID(tail) if tail and "Patient/" in reference else _bad(element)
    except ValueError:
        raise _refuse(element, "must reference a Patient of this server") from None


def _bad(element: str) -> UUID:
    raise _refuse(element, "must reference a Patient of this server")


# --- Patient ------------------------------------------------------------------------


def patient_fields(resource: Resource) -> PatientFields:
    where = "Patient"
    _only(
        resource,
        IGNORED
        | {"meta", "identifier", "name", "gender", "birthDate"}
        | {"telecom", "deceasedDateTime"},
        where,
    )
    if "meta" in resource:
        _only(_dict(resource["meta"], "Patient.meta"), META_IGNORED - {"security"}, "Patient.meta")
    identifier = _dict(
        _list(resource.get("identifier"), "Patient.identifier")[0], "Patient.identifier[0]"
    )
    _only(identifier, {"system", "value"}, "Patient.identifier[0]")
    name = _dict(_list(resource.get("name"), "Patient.name")[0], "Patient.name[0]")
    _only(name, {"family", "given"}, "Patient.name[0]")
    given = _list(name.get("given"), "Patient.name[0].given")
    sex = resource.get("gender")
    if sex is not None and sex not in set(AdministrativeSex):
        raise _refuse("Patient.gender", "must be male, female, other or unknown")
    try:
        birth = date.fromisoformat(_text(resource.get("birthDate"), "Patient.birthDate"))
    except ValueError:
        raise _refuse("Patient.birthDate", "must be a full date") from None
    phone = email = None
    for index, point in enumerate(resource.get("telecom", [])):
        where = f"Patient.telecom[{index}]"
        _only(_dict(point, where), {"system", "value"}, where)
        if point.get("system") == "phone" and phone is None:
            phone = _text(point.get("value"), f"{where}.value")
        elif point.get("system") == "email" and email is None:
            email = _text(point.get("value"), f"{where}.value")
        else:
            raise _refuse(where, "one phone and one email are held")
    deceased = resource.get("deceasedDateTime")
    return PatientFields(
        mrn_system=_text(identifier.get("system"), "Patient.identifier[0].system"),
        mrn=_text(identifier.get("value"), "Patient.identifier[0].value"),
        name=HumanName(
            _text(given[0], "Patient.name[0].given[0]"),
            _text(name.get("family"), "Patient.name[0].family"),
        ),
        birth_date=birth,
        sex=AdministrativeSex(sex) if sex is not None else None,
        contact=ContactDetails(phone, email) if phone or email else None,
        deceased_at=moment(deceased, "Patient.deceasedDateTime") if deceased else None,
    )


# --- entries ------------------------------------------------------------------------


def entry_fields(resource_type: str, resource: Resource) -> EntryFields:
    """An entry resource (``Observation`` ... ``DocumentReference``) as a command."""
    shape = SHAPES[resource_type]
    where = resource_type
    common = {"meta", shape["code"], shape["time"], shape["subject"]}
    _only(resource, IGNORED | common | set(shape["statuses"]) | shape["more"], where)
    if resource.get("resourceType") != resource_type:
        raise _refuse(f"{where}.resourceType", f"must be {resource_type}")
    labels, tags = security(resource.get("meta"), f"{where}.meta")
    in_error = _statuses(resource, shape["statuses"], where)
    code_element = f"{where}.{shape['code']}"
    if resource_type == "Encounter":
        code = concept(_list(resource.get("type"), code_element)[0], f"{code_element}[0]")
    else:
        code = concept(resource.get(shape["code"]), code_element)
    if resource_type == "Encounter":
        period = _dict(resource.get("period"), f"{where}.period")
        _only(period, {"start"}, f"{where}.period")
        at = moment(period.get("start"), f"{where}.period.start")
    else:
        at = moment(resource.get(shape["time"]), f"{where}.{shape['time']}")
    kind = shape.get("kind")
    value: EntryValue | None = None
    modality = None
    if resource_type == "Observation":
        kind = _category(resource, where)
        value = observation_value(resource, where)
    elif resource_type == "Encounter":
        modality = _modality(resource.get("class"), f"{where}.class")
    elif resource_type == "DocumentReference":
        value = _attachment(resource.get("content"), f"{where}.content")
    elif "note" in resource:
        note = _dict(_list(resource["note"], f"{where}.note")[0], f"{where}.note[0]")
        _only(note, {"text"}, f"{where}.note[0]")
        value = TextValue(_text(note.get("text"), f"{where}.note[0].text"))
    assert isinstance(kind, EntryKind)
    return EntryFields(
        patient_reference=subject(resource.get(shape["subject"]), f"{where}.{shape['subject']}"),
        kind=kind,
        code=code,
        value=value,
        effective_at=at,
        modality=modality,
        labels=labels,
        tags=tags,
        entered_in_error=in_error,
    )


def _statuses(resource: Resource, allowed: dict[str, set[str]], where: str) -> bool:
    """Whether the resource marks the entry entered in error; other statuses are the
    chart's own, so only those it would show are taken."""
    in_error = False
    for element, codes in allowed.items():
        if element not in resource:
            continue
        found = resource[element]
        if element == "verificationStatus":
            found = concept_code(found, f"{where}.{element}")
        if found == ENTERED_IN_ERROR:
            in_error = True
        elif found not in codes:
            raise _refuse(f"{where}.{element}", f"must be one of {sorted(codes)}")
    return in_error


def concept_code(value: Any, element: str) -> str:
    found = _dict(value, element)
    _only(found, {"coding"}, element)
    first = _dict(_list(found.get("coding"), f"{element}.coding")[0], f"{element}.coding[0]")
    _only(first, {"system", "code"}, f"{element}.coding[0]")
    return _text(first.get("code"), f"{element}.coding[0].code")


def _category(resource: Resource, where: str) -> EntryKind:
    element = f"{where}.category"
    category = _dict(_list(resource.get("category"), element)[0], f"{element}[0]")
    _only(category, {"coding"}, f"{element}[0]")
    first = _list(category.get("coding"), f"{element}[0].coding")[0]
    first = _dict(first, f"{element}[0].coding[0]")
    # The category is the entry's kind: a display or text would not come back.
    _only(first, {"system", "code"}, f"{element}[0].coding[0]")
    if first.get("system") != OBSERVATION_CATEGORY or first.get("code") not in KIND_OF_CATEGORY:
        raise _refuse(f"{element}[0]", "must be vital-signs or laboratory")
    return KIND_OF_CATEGORY[first["code"]]


def _modality(value: Any, element: str) -> Modality:
    found = _dict(value, element)
    _only(found, {"system", "code", "display"}, element)
    if found.get("system") != ACT_CODE or found.get("code") not in MODALITY_OF_CLASS:
        raise _refuse(element, "must be v3-ActCode VR, AMB or HH")
    modality = MODALITY_OF_CLASS[found["code"]]
    if found.get("display", ENCOUNTER_CLASS[modality][1]) != ENCOUNTER_CLASS[modality][1]:
        raise _refuse(f"{element}.display", f"must be {ENCOUNTER_CLASS[modality][1]!r}")
    return modality


def _attachment(value: Any, element: str) -> TextValue:
    content = _dict(_list(value, element)[0], f"{element}[0]")
    _only(content, {"attachment"}, f"{element}[0]")
    where = f"{element}[0].attachment"
    attachment = _dict(content.get("attachment"), where)
    _only(attachment, {"contentType", "data"}, where)
    if not str(attachment.get("contentType", "")).startswith("text/plain"):
        raise _refuse(f"{where}.contentType", "must be text/plain")
    try:
        text = base64.b64decode(_text(attachment.get("data"), f"{where}.data"), validate=True)
        return TextValue(text.decode())
    except (binascii.Error, UnicodeDecodeError):
        raise _refuse(f"{where}.data", "must be base64 of UTF-8 text") from None


def observation_value(resource: Resource, where: str) -> EntryValue | None:
    value = _value(resource, where)
    if "component" not in resource:
        return value
    if value is not None:
        raise _refuse(f"{where}.component", "is held only on an observation without a value")
    parts = []
    for index, item in enumerate(_list(resource["component"], f"{where}.component", 20)):
        part_where = f"{where}.component[{index}]"
        part = _dict(item, part_where)
        _only(part, {"code"} | VALUE_ELEMENTS, part_where)
        found = _value(part, part_where)
        if found is None:
            raise _refuse(part_where, "must have a value")
        parts.append(Component(concept(part.get("code"), f"{part_where}.code"), found))
    return Components(tuple(parts))


VALUE_ELEMENTS = {"valueQuantity", "valueString", "valueCodeableConcept", "valueBoolean"}


def _value(resource: Resource, where: str) -> ComponentValue | None:
    present = sorted(name for name in VALUE_ELEMENTS if name in resource)
    if not present:
        return None
    if len(present) > 1:
        raise _refuse(f"{where}.{present[1]}", "a resource has one value[x]")
    name = present[0]
    element, found = f"{where}.{name}", resource[name]
    if name == "valueString":
        return TextValue(_text(found, element))
    if name == "valueBoolean":
        if not isinstance(found, bool):
            raise _refuse(element, "must be true or false")
        return BooleanValue(found)
    if name == "valueCodeableConcept":
        return CodedValue(concept(found, element))
    quantity = _dict(found, element)
    _only(quantity, {"value", "unit", "system", "code"}, element)
    unit = _text(quantity.get("code", quantity.get("unit")), f"{element}.code")
    if quantity.get("system", UCUM) != UCUM:
        raise _refuse(f"{element}.system", "must be UCUM (http://unitsofmeasure.org)")
    if quantity.get("unit", unit) != unit:
        raise _refuse(f"{element}.unit", "must equal its UCUM code: the chart keeps one")
    number = quantity.get("value")
    if isinstance(number, bool) or not isinstance(number, int | float | Decimal):
        raise _refuse(f"{element}.value", "must be a number")
    try:
        return Quantity(Decimal(str(number)), unit)
    except InvalidOperation:
        raise _refuse(f"{element}.value", "must be a number") from None


def addressed_patient(resource_type: str, resource: Resource) -> UUID | None:
    """The patient an entry resource names as its subject, if it names one validly: a
    refusal before the resource is read is recorded where that patient's auditors see
    it, as a refusal of a path naming the patient is."""
    shape = SHAPES.get(resource_type)
    reference = resource.get(shape["subject"]) if shape else None
    if not isinstance(reference, dict) or not isinstance(reference.get("reference"), str):
        return None
    try:
        return patient_id_of(reference["reference"], "subject")
    except InvalidValue:
        return None
