"""Transaction and batch Bundles as a plan of chart commands: pure, no store, no clock.

A Bundle's entries become ``Step``s: a Patient to register, or an entry to record or
amend, each already mapped by ``intake`` (so a refusal happens before anything is
written, and names the entry: ``Bundle.entry[3].resource.Observation.encounter``).
Two resource types a chart has no home for are mapped onto ones it has, as
docs/fhir.md documents: a ``MedicationRequest`` is a medication entry (read back as a
``MedicationStatement``), and a ``DiagnosticReport`` is a note (read back as a
``DocumentReference``) beside its result Observations, which the Bundle carries.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from application.fhir.capability import ENTRY_TYPES
from application.fhir.elements import (
    Resource,
    only,
    patient_id_of,
    text_of,
)
from application.fhir.imports import (
    DIRECTORY,
    NOT_HELD,
    check_not_held_request,
    directory_entry,
    not_held,
    note_of,
    trimmed,
)
from application.fhir.intake import EntryFields, PatientFields, entry_fields, patient_fields
from application.fhir.links import attribution, conditional, encounter_id, identified
from application.fhir.mapped import as_held, as_imported, report_results
from application.fhir.medications import medication_key, resolved
from domain.errors import InvalidValue
from domain.values import Attribution

MAX_ENTRIES = 5000
KINDS = {"transaction", "batch"}
# Resource types a Bundle may carry, and what each is read back as.
READ_BACK_AS = {
    "Patient": "Patient",
    **{kind: kind for kind in ENTRY_TYPES},
    "MedicationRequest": "MedicationStatement",
    "DiagnosticReport": "DocumentReference",
}


@dataclass(frozen=True)
class Step:
    """One entry of a Bundle, planned: ``patient`` for a Patient, ``entry`` for an
    entry of the chart, neither for one accepted and not kept (``note`` says why)."""

    index: int
    method: str  # POST or PUT
    resource_type: str  # as read back (DiagnosticReport: DocumentReference)
    full_url: str | None
    target: str | None  # PUT: the id in request.url
    patient: PatientFields | None = None
    entry: EntryFields | None = None
    results: tuple[str, ...] = ()  # a DiagnosticReport's result references
    entry_id: UUID | None = None  # a new entry's id, assigned before any is mapped
    note: str | None = None  # what was not kept, or why the entry was not
    held: bool = True


# What reading a JSON value as the wrong FHIR type raises in the mappers.
MISTYPED = (TypeError, AttributeError, KeyError, ValueError)


class EntryRefused(InvalidValue):
    """A Bundle entry the chart cannot take: its index and the element."""

    def __init__(self, index: int, error: InvalidValue) -> None:
        super().__init__(f"Bundle.entry[{index}].resource.{error.field}", error.message)
        self.index = index


def bundle_kind(bundle: Any) -> str:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise InvalidValue("Bundle", "the body must be a Bundle")
    kind = bundle.get("type")
    if kind not in KINDS:
        raise InvalidValue("Bundle.type", "must be transaction or batch")
    for name in bundle:
        if name not in {"resourceType", "id", "meta", "type", "entry"}:
            raise InvalidValue(f"Bundle.{name}", "is not held by this server")
    entries = bundle.get("entry", [])
    if not isinstance(entries, list) or len(entries) > MAX_ENTRIES:
        raise InvalidValue("Bundle.entry", f"must be an array of at most {MAX_ENTRIES}")
    return str(kind)


@dataclass
class Referents:
    """What a Bundle's references may name: its Observations (a report's results),
    its Encounters (their new entries' ids), its Patients, the practitioners,
    organisations and locations it lists (by ``fullUrl`` and by identifier), and its
    Medications (a prescription's ``medicationReference``)."""

    observations: dict[str, Resource]
    encounters: dict[str, UUID]
    patients: set[str]
    directory: dict[str, tuple[str, str, str, str | None]]
    names: dict[tuple[str, str, str], str | None]
    medications: dict[str, Resource] = field(default_factory=dict)

    def encounter_of(self, subject: str) -> Any:
        def resolve(text: str, element: str) -> str:
            if text in self.encounters:
                return self.encounters[text].hex
            if text.startswith("urn:"):
                raise InvalidValue(element, "must name an Encounter entry of the Bundle")
            if subject.startswith("urn:"):
                raise InvalidValue(element, "must name an Encounter of the same chart")
            return encounter_id(patient_id_of(subject, element), text, element)

        return resolve

    def attribution_of(self, role: str, reference: Resource, element: str) -> Attribution:
        if "identifier" in reference and "reference" not in reference:
            return identified(role, reference, element)
        only(reference, {"reference", "display"}, element)
        text = text_of(reference.get("reference"), f"{element}.reference")
        display = reference.get("display")
        if text in self.directory:
            kind, system, value, name = self.directory[text]
            return attribution(role, kind, system, value, display or name, element)
        found = conditional(text, f"{element}.reference")
        if found is None:
            raise InvalidValue(
                f"{element}.reference",
                "must name a Practitioner, Organization or Location by identifier "
                "(Type?identifier=system|value) or by an entry of the Bundle: this "
                "server holds none of them",
            )
        kind, system, value = found
        name = display or self.names.get((kind, system, value))
        return attribution(role, kind, system, value, name, element)


def referents(bundle: dict[str, Any], new_id: Callable[[], UUID]) -> Referents:
    found = Referents({}, {}, set(), {}, {})
    for entry in bundle.get("entry", []):
        try:
            _note_referent(found, entry, new_id)
        except MISTYPED:
            continue  # the entry itself is refused when planned
    return found


def _note_referent(found: Referents, entry: Any, new_id: Callable[[], UUID]) -> None:
    resource = entry.get("resource") if isinstance(entry, dict) else None
    url = entry.get("fullUrl") if isinstance(entry, dict) else None
    if not isinstance(resource, dict) or not isinstance(url, str):
        return
    kind = resource.get("resourceType")
    if kind == "Observation":
        found.observations[url] = resource
    elif kind == "Encounter":
        found.encounters[url] = new_id()
    elif kind == "Patient":
        found.patients.add(url)
    elif kind == "Medication":
        found.medications |= dict.fromkeys(medication_key(url, resource), resource)
    elif kind in DIRECTORY and kind != "PractitionerRole":
        try:
            system, value, name = directory_entry(str(kind), resource, str(kind))
        except InvalidValue:
            return  # the entry itself is refused when planned
        found.directory[url] = (str(kind), system, value, name)
        found.names[(str(kind), system, value)] = name


def plan(bundle: dict[str, Any], new_id: Callable[[], UUID]) -> list[Step | InvalidValue]:
    """Each entry's step, or why it is refused (a transaction refuses on the first).
    ``new_id`` gives new entries their ids first, so references between entries
    resolve whatever their order."""
    found = referents(bundle, new_id)
    return [
        _step(index, entry, found, new_id) for index, entry in enumerate(bundle.get("entry", []))
    ]


def _step(
    index: int, entry: Any, found: Referents, new_id: Callable[[], UUID]
) -> Step | InvalidValue:
    try:
        return _step_of(index, entry, found, new_id)
    except MISTYPED:
        # The mappers read JSON as FHIR types it; an element of another JSON type (an
        # object for a code, a number for a string) is this entry's error, not a fault.
        return InvalidValue(f"Bundle.entry[{index}]", "an element is not of its FHIR type")


def _step_of(
    index: int, entry: Any, found: Referents, new_id: Callable[[], UUID]
) -> Step | InvalidValue:
    where = f"Bundle.entry[{index}]"
    if not isinstance(entry, dict):
        return InvalidValue(where, "must be an object")
    for name in entry:
        if name not in {"fullUrl", "resource", "request"}:
            return InvalidValue(f"{where}.{name}", "is not held by this server")
    resource, request = entry.get("resource"), entry.get("request")
    if not isinstance(resource, dict) or not isinstance(request, dict):
        return InvalidValue(where, "needs a resource and a request")
    resource_type = resource.get("resourceType")
    full_url = entry.get("fullUrl")
    if resource_type in NOT_HELD:
        return _not_held(index, str(resource_type), resource, request, full_url)
    if resource_type not in READ_BACK_AS:
        return InvalidValue(f"{where}.resource", f"{resource_type} is not held by this server")
    method, url = request.get("method"), str(request.get("url", ""))
    target = None
    if set(request) - {"method", "url"}:
        return InvalidValue(f"{where}.request", "takes method and url only")
    if method == "POST" and url == resource_type:
        pass
    elif method == "PUT" and url.startswith(f"{resource_type}/") and url.count("/") == 1:
        target = url.partition("/")[2]
    else:
        return InvalidValue(
            f"{where}.request", f"must be POST {resource_type} or PUT {resource_type}/id"
        )
    try:
        return _held(
            index, str(method), str(resource_type), resource, full_url, target, found, new_id
        )
    except InvalidValue as error:
        return EntryRefused(index, error)


def _held(
    index: int,
    method: str,
    resource_type: str,
    resource: Resource,
    full_url: Any,
    target: str | None,
    found: Referents,
    new_id: Callable[[], UUID],
) -> Step:
    """A held type's entry as a step: not kept (an Observation of another category, a
    stopped prescription), or mapped after trimming what the chart does not keep."""
    why = not_held(resource_type, resource)
    if why is not None:
        why = f"{resource_type} is not kept: {why}"
        return Step(index, method, resource_type, full_url, target, note=why, held=False)
    resource, named = resolved(resource_type, resource, found.medications)
    kept, notes = trimmed(resource_type, resource)
    note = note_of(named + notes)
    if resource_type == "Patient":
        fields = patient_fields(kept)
        return Step(index, method, "Patient", full_url, target, patient=fields, note=note)
    read_as = READ_BACK_AS[resource_type]
    mapped = as_held(resource_type, kept, found.observations)
    subject = _subject(mapped, read_as)
    try:
        held = entry_fields(read_as, mapped, found.encounter_of(subject), found.attribution_of)
    except InvalidValue as error:
        raise InvalidValue(
            as_imported(resource_type, read_as, error.field), error.message
        ) from None
    results = tuple(report_results(kept)) if resource_type == "DiagnosticReport" else ()
    if method != "POST":
        entry_id = None
    elif resource_type == "Encounter" and full_url in found.encounters:
        entry_id = found.encounters[full_url]
    else:
        entry_id = new_id()
    return Step(
        index,
        method,
        read_as,
        full_url,
        target,
        entry=held,
        results=results,
        entry_id=entry_id,
        note=note,
    )


def _subject(resource: Resource, resource_type: str) -> str:
    element = "patient" if resource_type in {"AllergyIntolerance", "Immunization"} else "subject"
    reference = resource.get(element)
    found = reference.get("reference") if isinstance(reference, dict) else None
    return found if isinstance(found, str) else ""


def _not_held(
    index: int, resource_type: str, resource: Resource, request: Any, full_url: Any
) -> Step | InvalidValue:
    where = f"Bundle.entry[{index}]"
    try:
        check_not_held_request(request, where)
        if request.get("method") not in {"POST", "PUT"}:
            raise InvalidValue(f"{where}.request.method", "must be POST or PUT")
        if resource_type in DIRECTORY and resource_type != "PractitionerRole":
            directory_entry(resource_type, resource, f"{where}.resource.{resource_type}")
    except InvalidValue as error:
        return error
    why = f"{resource_type} is not kept: {NOT_HELD[resource_type]}"
    url = full_url if isinstance(full_url, str) else None
    return Step(index, str(request["method"]), resource_type, url, None, note=why, held=False)
