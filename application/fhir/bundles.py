"""Transaction and batch Bundles as a plan of chart commands: pure, no store, no clock.

A Bundle's entries become ``Step``s: a Patient to register, or an entry to record or
amend, each already mapped by ``intake`` (so a refusal happens before anything is
written, and names the entry: ``Bundle.entry[3].resource.Observation.encounter``).
Two resource types a chart has no home for are mapped onto ones it has, as
docs/fhir.md documents: a ``MedicationRequest`` is a medication entry (read back as a
``MedicationStatement``), and a ``DiagnosticReport`` is a note (read back as a
``DocumentReference``) beside its result Observations, which the Bundle carries.
"""

import base64
from dataclasses import dataclass
from typing import Any

from application.fhir.capability import ENTRY_TYPES
from application.fhir.elements import IGNORED, Resource, concept, moment
from application.fhir.intake import EntryFields, PatientFields, entry_fields, patient_fields
from domain.errors import InvalidValue

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
    """One entry of a Bundle, planned: ``patient`` for a Patient, ``entry`` else."""

    index: int
    method: str  # POST or PUT
    resource_type: str  # as read back (DiagnosticReport: DocumentReference)
    full_url: str | None
    target: str | None  # PUT: the id in request.url
    patient: PatientFields | None = None
    entry: EntryFields | None = None
    results: tuple[str, ...] = ()  # a DiagnosticReport's result references


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


def plan(bundle: dict[str, Any]) -> list[Step | InvalidValue]:
    """Each entry's step, or why it is refused (a transaction refuses on the first)."""
    observations = {
        entry["fullUrl"]: entry["resource"]
        for entry in bundle.get("entry", [])
        if isinstance(entry, dict)
        and isinstance(entry.get("resource"), dict)
        and entry["resource"].get("resourceType") == "Observation"
        and isinstance(entry.get("fullUrl"), str)
    }
    return [
        _step(index, entry, observations) for index, entry in enumerate(bundle.get("entry", []))
    ]


def _step(index: int, entry: Any, observations: dict[str, Resource]) -> Step | InvalidValue:
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
    full_url = entry.get("fullUrl")
    read_as = READ_BACK_AS[str(resource_type)]
    try:
        if resource_type == "Patient":
            fields = patient_fields(resource)
            return Step(index, method, "Patient", full_url, target, patient=fields)
        mapped = as_held(str(resource_type), resource, observations)
        held = entry_fields(read_as, mapped)
        results = tuple(report_results(resource)) if resource_type == "DiagnosticReport" else ()
        return Step(index, method, read_as, full_url, target, entry=held, results=results)
    except InvalidValue as error:
        return EntryRefused(index, error)


def as_held(
    resource_type: str, resource: Resource, observations: dict[str, Resource] | None = None
) -> Resource:
    """A resource the chart has no type for, as the one it is read back as."""
    if resource_type == "MedicationRequest":
        return _medication(resource)
    if resource_type == "DiagnosticReport":
        return _report(resource, observations or {})
    return resource


def _only(resource: Resource, allowed: set[str], where: str) -> None:
    for name in resource:
        if name not in allowed | IGNORED:
            raise InvalidValue(f"{where}.{name}", "is not held by this server")


def _medication(resource: Resource) -> Resource:
    """A prescription as a medication entry: what, for whom, when authored, and the
    dosage's text as the entry's note."""
    where = "MedicationRequest"
    _only(
        resource,
        {"meta", "status", "intent", "medicationCodeableConcept"}
        | {"subject", "authoredOn", "dosageInstruction"},
        where,
    )
    if resource.get("status") != "active":
        raise InvalidValue(f"{where}.status", "must be active")
    if resource.get("intent") != "order":
        raise InvalidValue(f"{where}.intent", "must be order")
    held: Resource = {
        "resourceType": "MedicationStatement",
        "status": "active",
        "medicationCodeableConcept": resource.get("medicationCodeableConcept"),
        "subject": resource.get("subject"),
        "effectiveDateTime": resource.get("authoredOn"),
    }
    if "meta" in resource:
        held["meta"] = resource["meta"]
    if "dosageInstruction" in resource:
        dosage = resource["dosageInstruction"]
        if not isinstance(dosage, list) or len(dosage) != 1 or set(dosage[0]) != {"text"}:
            raise InvalidValue(f"{where}.dosageInstruction", "holds one text only")
        held["note"] = [{"text": dosage[0]["text"]}]
    return held


def _report(resource: Resource, observations: dict[str, Resource]) -> Resource:
    """A report as a note: its code, time, and a text of its conclusion and the codes
    of its results (the results are the Bundle's Observations, recorded as such)."""
    where = "DiagnosticReport"
    _only(
        resource,
        {"meta", "status", "code", "subject", "effectiveDateTime"} | {"result", "conclusion"},
        where,
    )
    if resource.get("status") != "final":
        raise InvalidValue(f"{where}.status", "must be final")
    code = concept(resource.get("code"), f"{where}.code")
    moment(resource.get("effectiveDateTime"), f"{where}.effectiveDateTime")
    results = resource.get("result", [])
    if not isinstance(results, list):
        raise InvalidValue(f"{where}.result", "must be an array")
    named = []
    for index, result in enumerate(results):
        if not isinstance(result, dict) or set(result) - {"reference", "display"}:
            raise InvalidValue(f"{where}.result[{index}]", "must be a reference")
        reference = str(result.get("reference", ""))
        if reference not in observations:
            raise InvalidValue(f"{where}.result[{index}]", "must be an Observation in the Bundle")
        found = observations[reference].get("code", {})
        display = result.get("display") or found.get("text") or reference
        named.append(str(display))
    text = str(resource.get("conclusion") or code.display)
    if named:
        text += "\nResults: " + "; ".join(named)
    held: Resource = {
        "resourceType": "DocumentReference",
        "status": "current",
        "docStatus": "final",
        "type": resource.get("code"),
        "subject": resource.get("subject"),
        "date": resource.get("effectiveDateTime"),
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain; charset=utf-8",
                    "data": base64.b64encode(text.encode()).decode(),
                }
            }
        ],
    }
    if "meta" in resource:
        held["meta"] = resource["meta"]
    return held


def report_results(resource: Resource) -> list[str]:
    """The references a DiagnosticReport's results name (checked against the Bundle)."""
    return [str(r.get("reference", "")) for r in resource.get("result", []) if isinstance(r, dict)]
