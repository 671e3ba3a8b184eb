"""What an imported Bundle's entries keep: pure, no store, no clock.

Generators of synthetic US Core data (Synthea) and real exports carry more than a
chart holds. A transaction or batch entry is, by resource type (docs/fhir.md,
"Import"):

- **held**: mapped onto the chart (``intake``), after ``trimmed`` has taken off the
  elements the chart does not keep. Those are named in the entry's response
  (``outcome``, severity information), never dropped silently;
- **not held**: accepted and not kept (billing, care plans, devices, the source's own
  Provenance ...), the entry's response says so and why; a ``Practitioner``,
  ``Organization`` or ``Location`` is not kept either, but names who entries refer to
  (``directory_entry``);
- **refused**: anything else, or an element of a held resource not in these tables:
  the OperationOutcome names the entry.
"""

from typing import Any

from application.fhir.elements import Resource, json_copy, obj, refuse, text_of
from application.fhir.resources import ACT_CODE
from domain.errors import InvalidValue

DIRECTORY = {"Practitioner", "Organization", "Location", "PractitionerRole"}
NOT_HELD = {
    **{
        kind: "the chart keeps who took part on each entry, by identifier and name"
        for kind in DIRECTORY
    },
    "Claim": "billing is outside the chart",
    "ExplanationOfBenefit": "billing is outside the chart",
    "Coverage": "insurance is outside the chart: its Coverages are its memberships",
    "CareTeam": "care teams are not held: who reads a chart is its consent and memberships",
    "CarePlan": "care plans are not held",
    "Goal": "goals are not held",
    "Provenance": "this server keeps its own Provenance: who imported each entry, and when",
    "Device": "devices are not held",
    "SupplyDelivery": "supplies are not held",
    "ImagingStudy": "imaging studies are not held (their reports are, as notes)",
    "Medication": "the chart names medications by code on each entry (a MedicationRequest "
    "or MedicationStatement that names this Medication keeps its code)",
    "MedicationAdministration": "administrations are not held (prescriptions are)",
}
# Top-level elements each held type accepts and does not keep.
NOT_KEPT = {
    "Patient": {"extension", "address", "maritalStatus", "multipleBirthBoolean"}
    | {"multipleBirthInteger", "communication", "generalPractitioner"}
    | {"managingOrganization", "active"},
    "Encounter": {"identifier", "reasonCode", "reasonReference", "serviceType", "priority"}
    | {"hospitalization"},
    "Observation": {"issued"},
    "Condition": {"clinicalStatus", "category", "recordedDate", "abatementDateTime"},
    "AllergyIntolerance": {"clinicalStatus", "type", "category", "criticality", "reaction"},
    "MedicationRequest": {"category", "reasonReference", "reasonCode"},
    "Immunization": {"primarySource"},
    "Procedure": {"reasonReference", "reasonCode"},
    "DiagnosticReport": {"category", "issued"},
    "DocumentReference": {"identifier", "category"},
}
# Top-level elements whose insides the trims below change (``trimmed`` copies them).
CHANGED_INSIDE = {
    "Patient": {"name", "telecom"},
    "Encounter": {"period", "participant", "location", "type"},
    "Observation": {"category", "component"},
    "DocumentReference": {"content", "context"},
}
HELD_CATEGORIES = {"vital-signs", "laboratory"}
ENCOUNTER_CLASSES = {"VR", "AMB", "HH"}
CODE_ELEMENT = {
    "Observation": "code",
    "Condition": "code",
    "AllergyIntolerance": "code",
    "MedicationRequest": "medicationCodeableConcept",
    "Immunization": "vaccineCode",
    "Procedure": "code",
    "DiagnosticReport": "code",
    "DocumentReference": "type",
}


def not_held(resource_type: str, resource: Resource) -> str | None:
    """Why an entry is accepted and not kept, or None if the chart holds it."""
    if resource_type in NOT_HELD:
        return NOT_HELD[resource_type]
    if resource_type == "Observation":
        codes = [
            coding.get("code")
            for category in resource.get("category", [])
            if isinstance(category, dict)
            for coding in category.get("coding", [])
            if isinstance(coding, dict)
        ]
        if codes and not HELD_CATEGORIES & set(codes):
            return f"the chart holds vital-signs and laboratory observations, not {codes[0]}"
    if resource_type == "MedicationRequest" and resource.get("status") in {"stopped", "completed"}:
        return "the chart holds current medications; a prescription no longer active is not kept"
    return None


def trimmed(resource_type: str, resource: Resource) -> tuple[Resource, list[str]]:
    """The resource without the elements the chart does not keep, and their names."""
    # Only the elements a trim changes inside are copied; the rest are shared with
    # the Bundle, which stays as it came (a copy of each whole resource was a tenth
    # of an import's CPU).
    found = dict(resource)
    for name in CHANGED_INSIDE.get(resource_type, set()) | {CODE_ELEMENT.get(resource_type)}:
        if name in found:
            found[name] = json_copy(found[name])
    notes: list[str] = []

    def drop(holder: dict[str, Any], name: str, where: str) -> None:
        if name in holder:
            del holder[name]
            notes.append(f"{where}.{name}")

    for name in sorted(NOT_KEPT.get(resource_type, ())):
        drop(found, name, resource_type)
    code = CODE_ELEMENT.get(resource_type)
    if code and isinstance(found.get(code), dict):
        _first_coding(found[code], f"{resource_type}.{code}", notes)
    trim = TRIMS.get(resource_type)
    if trim is not None:
        trim(found, drop, notes)
    return found, notes


def _first_coding(concept: dict[str, Any], where: str, notes: list[str]) -> None:
    """A concept keeps its first coding; ``text`` other than its display goes too."""
    codings = concept.get("coding")
    if isinstance(codings, list) and len(codings) > 1:
        del codings[1:]
        notes.append(f"{where}.coding[1:]")
    first = codings[0] if isinstance(codings, list) and codings else {}
    if "text" in concept and isinstance(first, dict) and concept["text"] != first.get("display"):
        del concept["text"]
        notes.append(f"{where}.text")


def _patient(found: Resource, drop: Any, notes: list[str]) -> None:
    identifiers = found.get("identifier")
    if isinstance(identifiers, list) and identifiers:
        # The medical record number is the one typed MR, else the first.
        index = next((i for i, item in enumerate(identifiers) if _typed_mr(item)), 0)
        mrn = identifiers[index]
        if len(identifiers) > 1:
            notes.append("Patient.identifier (all but the medical record number)")
        if isinstance(mrn, dict):
            mrn = {k: v for k, v in mrn.items() if k in {"system", "value"}}
            if len(mrn) != len(identifiers[index]):
                notes.append(f"Patient.identifier[{index}].type")
        found["identifier"] = [mrn]
    names = found.get("name")
    if isinstance(names, list) and names:
        if len(names) > 1:
            notes.append("Patient.name[1:]")
            del names[1:]
        for part in ("use", "prefix", "suffix", "text"):
            if isinstance(names[0], dict):
                drop(names[0], part, "Patient.name[0]")
    for index, point in enumerate(found.get("telecom", [])):
        if isinstance(point, dict):
            drop(point, "use", f"Patient.telecom[{index}]")


def _typed_mr(identifier: Any) -> bool:
    kind = identifier.get("type") if isinstance(identifier, dict) else None
    codings = kind.get("coding", []) if isinstance(kind, dict) else []
    return any(isinstance(c, dict) and c.get("code") == "MR" for c in codings)


def _encounter(found: Resource, drop: Any, notes: list[str]) -> None:
    period = found.get("period")
    if isinstance(period, dict):
        drop(period, "end", "Encounter.period")
    klass = found.get("class")
    if isinstance(klass, dict) and (
        klass.get("system") != ACT_CODE or klass.get("code") not in ENCOUNTER_CLASSES
    ):
        # The chart's modalities are virtual, in person and home: an emergency or
        # inpatient visit happens in person, so it is kept as ambulatory, and said so.
        notes.append(f"Encounter.class ({klass.get('code')}: kept as AMB, in person)")
        found["class"] = {"system": ACT_CODE, "code": "AMB"}
    for index, participant in enumerate(found.get("participant", [])):
        if isinstance(participant, dict):
            drop(participant, "type", f"Encounter.participant[{index}]")
            drop(participant, "period", f"Encounter.participant[{index}]")
    for index, place in enumerate(found.get("location", [])):
        if isinstance(place, dict):
            drop(place, "status", f"Encounter.location[{index}]")
            drop(place, "period", f"Encounter.location[{index}]")
    for index, kind in enumerate(found.get("type", [])[:1]):
        if isinstance(kind, dict):
            _first_coding(kind, f"Encounter.type[{index}]", notes)


def _observation(found: Resource, drop: Any, notes: list[str]) -> None:
    for index, category in enumerate(found.get("category", [])):
        for position, coding in enumerate(obj(category, "Observation.category").get("coding", [])):
            if isinstance(coding, dict):
                drop(coding, "display", f"Observation.category[{index}].coding[{position}]")
        if isinstance(category, dict):
            drop(category, "text", f"Observation.category[{index}]")
    for index, part in enumerate(found.get("component", [])):
        if isinstance(part, dict) and isinstance(part.get("code"), dict):
            _first_coding(part["code"], f"Observation.component[{index}].code", notes)


def _allergy(found: Resource, drop: Any, notes: list[str]) -> None:
    if "onsetDateTime" not in found and "recordedDate" in found:
        # The chart's entry has one time: without an onset, the day it was recorded.
        found["onsetDateTime"] = found.pop("recordedDate")
        notes.append("AllergyIntolerance.recordedDate (kept as onsetDateTime)")
    drop(found, "recordedDate", "AllergyIntolerance")


def _medication(found: Resource, drop: Any, notes: list[str]) -> None:
    dosage = found.get("dosageInstruction")
    if isinstance(dosage, list) and dosage:
        text = dosage[0].get("text") if isinstance(dosage[0], dict) else None
        if len(dosage) > 1 or set(dosage[0]) != {"text"}:
            notes.append("MedicationRequest.dosageInstruction (all but its text)")
        if text is None:
            del found["dosageInstruction"]
        else:
            found["dosageInstruction"] = [{"text": text}]


def _procedure(found: Resource, drop: Any, notes: list[str]) -> None:
    period = found.get("performedPeriod")
    if "performedDateTime" not in found and isinstance(period, dict):
        found["performedDateTime"] = period.get("start")
        del found["performedPeriod"]
        notes.append("Procedure.performedPeriod (its start kept as performedDateTime)")


def _document(found: Resource, drop: Any, notes: list[str]) -> None:
    if found.get("status") == "superseded":
        # Synthea marks its notes superseded; the chart's note is its current version.
        found["status"] = "current"
        notes.append("DocumentReference.status (superseded: the chart's note is current)")
    for index, content in enumerate(found.get("content", [])):
        if isinstance(content, dict):
            drop(content, "format", f"DocumentReference.content[{index}]")
    context = found.get("context")
    if isinstance(context, dict):
        drop(context, "period", "DocumentReference.context")


TRIMS = {
    "Patient": _patient,
    "Encounter": _encounter,
    "Observation": _observation,
    "AllergyIntolerance": _allergy,
    "MedicationRequest": _medication,
    "Procedure": _procedure,
    "DocumentReference": _document,
}


def directory_entry(
    resource_type: str, resource: Resource, where: str
) -> tuple[str, str, str | None]:
    """A Practitioner, Organization or Location as what a reference to it keeps: the
    system and value of its first identifier, and its name."""
    identifiers = resource.get("identifier")
    if not isinstance(identifiers, list) or not identifiers:
        raise refuse(f"{where}.identifier", "is needed to name it on the entries")
    first = obj(identifiers[0], f"{where}.identifier[0]")
    system = text_of(first.get("system"), f"{where}.identifier[0].system")
    value = text_of(first.get("value"), f"{where}.identifier[0].value")
    return system, value, _name(resource)


def _name(resource: Resource) -> str | None:
    name = resource.get("name")
    if isinstance(name, str):
        return name or None
    if isinstance(name, list) and name and isinstance(name[0], dict):
        parts = [*name[0].get("prefix", []), *name[0].get("given", [])]
        parts.append(name[0].get("family", ""))
        text = " ".join(str(part) for part in parts if part)
        return text or None
    return None


def note_of(notes: list[str]) -> str | None:
    if not notes:
        return None
    return "not kept: " + ", ".join(notes)


def check_not_held_request(request: dict[str, Any], where: str) -> None:
    """A not-held entry may be a conditional create (Synthea's): nothing to check."""
    if set(request) - {"method", "url", "ifNoneExist"}:
        raise InvalidValue(f"{where}.request", "takes method, url and ifNoneExist")
