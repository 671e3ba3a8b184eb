"""FHIR resources a client writes, as the chart's commands: pure, no store, no clock.

The inverse of ``application.fhir.resources``: what that module renders is what this
one takes, element for element, so a resource read back can be written again. An
element the chart cannot hold is refused (``InvalidValue`` naming it, a 422
OperationOutcome), never dropped. The mapping is documented in docs/fhir.md.
"""

import base64
import binascii
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from uuid import UUID

from application.fhir.elements import (
    IGNORED,
    META_IGNORED,
    Resource,
    array,
    concept,
    moment,
    obj,
    only,
    patient_id_of,
    refuse,
    security,
    subject,
    text_of,
)
from application.fhir.links import (
    TOP_ELEMENTS,
    AttributionOf,
    EncounterOf,
    by_identifier,
    encounter_id,
    links_of,
)
from application.fhir.observation_values import observation_value
from application.fhir.resources import (
    ACT_CODE,
    ENCOUNTER_CLASS,
    NULL_FLAVOR,
    OBSERVATION_CATEGORY,
)
from domain.errors import InvalidValue
from domain.values import (
    Coding,
    ContactDetails,
    EntryLinks,
    EntryValue,
    HumanName,
    TextValue,
)
from domain.vocabulary import AdministrativeSex, EntryKind, Modality, SensitivityLabel

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
    links: EntryLinks = field(default_factory=EntryLinks)


# --- Patient ------------------------------------------------------------------------


def patient_fields(resource: Resource) -> PatientFields:
    where = "Patient"
    only(
        resource,
        IGNORED
        | {"meta", "identifier", "name", "gender", "birthDate"}
        | {"telecom", "deceasedDateTime"},
        where,
    )
    if "meta" in resource:
        only(obj(resource["meta"], "Patient.meta"), META_IGNORED - {"security"}, "Patient.meta")
    identifier = obj(
        array(resource.get("identifier"), "Patient.identifier")[0], "Patient.identifier[0]"
    )
    only(identifier, {"system", "value"}, "Patient.identifier[0]")
    name = obj(array(resource.get("name"), "Patient.name")[0], "Patient.name[0]")
    only(name, {"family", "given"}, "Patient.name[0]")
    given = array(name.get("given"), "Patient.name[0].given")
    sex = resource.get("gender")
    if sex is not None and sex not in set(AdministrativeSex):
        raise refuse("Patient.gender", "must be male, female, other or unknown")
    try:
        birth = date.fromisoformat(text_of(resource.get("birthDate"), "Patient.birthDate"))
    except ValueError:
        raise refuse("Patient.birthDate", "must be a full date") from None
    phone = email = None
    for index, point in enumerate(resource.get("telecom", [])):
        where = f"Patient.telecom[{index}]"
        only(obj(point, where), {"system", "value"}, where)
        if point.get("system") == "phone" and phone is None:
            phone = text_of(point.get("value"), f"{where}.value")
        elif point.get("system") == "email" and email is None:
            email = text_of(point.get("value"), f"{where}.value")
        else:
            raise refuse(where, "one phone and one email are held")
    deceased = resource.get("deceasedDateTime")
    return PatientFields(
        mrn_system=text_of(identifier.get("system"), "Patient.identifier[0].system"),
        mrn=text_of(identifier.get("value"), "Patient.identifier[0].value"),
        name=HumanName(
            text_of(given[0], "Patient.name[0].given[0]"),
            text_of(name.get("family"), "Patient.name[0].family"),
        ),
        birth_date=birth,
        sex=AdministrativeSex(sex) if sex is not None else None,
        contact=ContactDetails(phone, email) if phone or email else None,
        deceased_at=moment(deceased, "Patient.deceasedDateTime") if deceased else None,
    )


# --- entries ------------------------------------------------------------------------


def entry_fields(
    resource_type: str,
    resource: Resource,
    encounter_of: EncounterOf | None = None,
    attribution_of: AttributionOf | None = None,
) -> EntryFields:
    """An entry resource (``Observation`` ... ``DocumentReference``) as a command.
    Its links resolve through ``encounter_of`` and ``attribution_of`` (a Bundle's
    entries); by default an encounter is ``Encounter/{id}`` of the same chart and
    who took part is named by identifier."""
    shape = SHAPES[resource_type]
    where = resource_type
    common = {"meta", shape["code"], shape["time"], shape["subject"]}
    allowed = set(shape["statuses"]) | shape["more"] | TOP_ELEMENTS[resource_type]
    only(resource, IGNORED | common | allowed, where)
    if resource.get("resourceType") != resource_type:
        raise refuse(f"{where}.resourceType", f"must be {resource_type}")
    labels, tags = security(resource.get("meta"), f"{where}.meta")
    in_error = _statuses(resource, shape["statuses"], where)
    code_element = f"{where}.{shape['code']}"
    if resource_type == "Encounter":
        code = concept(array(resource.get("type"), code_element)[0], f"{code_element}[0]")
    else:
        code = concept(resource.get(shape["code"]), code_element)
    if resource_type == "Encounter":
        period = obj(resource.get("period"), f"{where}.period")
        only(period, {"start"}, f"{where}.period")
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
        klass = resource.get("class")
        # No class, or the unknown one this server renders for it: no modality.
        unknown = isinstance(klass, dict) and klass.get("system") == NULL_FLAVOR
        if klass is not None and not (unknown and klass.get("code") == "UNK"):
            modality = _modality(klass, f"{where}.class")
    elif resource_type == "DocumentReference":
        value = _attachment(resource.get("content"), f"{where}.content")
    elif "note" in resource:
        note = obj(array(resource["note"], f"{where}.note")[0], f"{where}.note[0]")
        only(note, {"text"}, f"{where}.note[0]")
        value = TextValue(text_of(note.get("text"), f"{where}.note[0].text"))
    assert isinstance(kind, EntryKind)
    reference = subject(resource.get(shape["subject"]), f"{where}.{shape['subject']}")

    def same_chart(text: str, element: str) -> str:
        return encounter_id(patient_id_of(reference, element), text, element)

    links = links_of(
        resource_type, resource, where, encounter_of or same_chart, attribution_of or by_identifier
    )
    return EntryFields(
        patient_reference=reference,
        kind=kind,
        code=code,
        value=value,
        effective_at=at,
        modality=modality,
        labels=labels,
        tags=tags,
        entered_in_error=in_error,
        links=links,
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
            raise refuse(f"{where}.{element}", f"must be one of {sorted(codes)}")
    return in_error


def concept_code(value: Any, element: str) -> str:
    found = obj(value, element)
    only(found, {"coding"}, element)
    first = obj(array(found.get("coding"), f"{element}.coding")[0], f"{element}.coding[0]")
    only(first, {"system", "code"}, f"{element}.coding[0]")
    return text_of(first.get("code"), f"{element}.coding[0].code")


def _category(resource: Resource, where: str) -> EntryKind:
    element = f"{where}.category"
    category = obj(array(resource.get("category"), element)[0], f"{element}[0]")
    only(category, {"coding"}, f"{element}[0]")
    first = array(category.get("coding"), f"{element}[0].coding")[0]
    first = obj(first, f"{element}[0].coding[0]")
    # The category is the entry's kind: a display or text would not come back.
    only(first, {"system", "code"}, f"{element}[0].coding[0]")
    if first.get("system") != OBSERVATION_CATEGORY or first.get("code") not in KIND_OF_CATEGORY:
        raise refuse(f"{element}[0]", "must be vital-signs or laboratory")
    return KIND_OF_CATEGORY[first["code"]]


def _modality(value: Any, element: str) -> Modality:
    found = obj(value, element)
    only(found, {"system", "code", "display"}, element)
    if found.get("system") != ACT_CODE or found.get("code") not in MODALITY_OF_CLASS:
        raise refuse(element, "must be v3-ActCode VR, AMB or HH")
    modality = MODALITY_OF_CLASS[found["code"]]
    if found.get("display", ENCOUNTER_CLASS[modality][1]) != ENCOUNTER_CLASS[modality][1]:
        raise refuse(f"{element}.display", f"must be {ENCOUNTER_CLASS[modality][1]!r}")
    return modality


def _attachment(value: Any, element: str) -> TextValue:
    content = obj(array(value, element)[0], f"{element}[0]")
    only(content, {"attachment"}, f"{element}[0]")
    where = f"{element}[0].attachment"
    attachment = obj(content.get("attachment"), where)
    only(attachment, {"contentType", "data"}, where)
    if not str(attachment.get("contentType", "")).startswith("text/plain"):
        raise refuse(f"{where}.contentType", "must be text/plain")
    try:
        text = base64.b64decode(text_of(attachment.get("data"), f"{where}.data"), validate=True)
        return TextValue(text.decode())
    except (binascii.Error, UnicodeDecodeError):
        raise refuse(f"{where}.data", "must be base64 of UTF-8 text") from None


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
