"""Resources a chart has no type for, as the ones they are read back as: pure, no
store, no clock (docs/fhir.md, "Transactions and batches"). A ``MedicationRequest`` is
a medication entry (read back as a ``MedicationStatement``), and a
``DiagnosticReport`` a note (read back as a ``DocumentReference``) beside its result
Observations, which the Bundle carries.
"""

import base64
import binascii

from application.fhir.elements import IGNORED, Resource, concept, moment, text_of
from domain.errors import InvalidValue

# The elements of a mapped resource as the imported resource names them.
IMPORTED_AS = {
    "MedicationRequest": {
        "context": "encounter",
        "informationSource": "requester",
        "effectiveDateTime": "authoredOn",
        "note[0].text": "dosageInstruction[0].text",
    },
    "DiagnosticReport": {
        "context.encounter[0]": "encounter",
        "author": "performer",
        "type": "code",
        "date": "effectiveDateTime",
    },
}


def as_imported(resource_type: str, read_as: str, field: str) -> str:
    """A refusal of a mapped element, named as the client wrote it."""
    if resource_type == read_as or not field.startswith(f"{read_as}."):
        return field
    rest = field.removeprefix(f"{read_as}.")
    for held, imported in IMPORTED_AS.get(resource_type, {}).items():
        if rest == held or rest.startswith((f"{held}.", f"{held}[")):
            rest = imported + rest.removeprefix(held)
            break
    return f"{resource_type}.{rest}"


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
        | {"subject", "authoredOn", "dosageInstruction", "encounter", "requester"},
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
    # MedicationStatement's elements for the visit and who prescribed (docs/fhir.md).
    if "encounter" in resource:
        held["context"] = resource["encounter"]
    if "requester" in resource:
        held["informationSource"] = resource["requester"]
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
        {"meta", "status", "code", "subject", "effectiveDateTime"}
        | {"result", "conclusion", "encounter", "performer", "presentedForm"},
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
    text = _presented(resource, where) or str(resource.get("conclusion") or code.display)
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
    # A note's elements for the visit and who wrote it (docs/fhir.md).
    if "performer" in resource:
        held["author"] = resource["performer"]
    if "encounter" in resource:
        held["context"] = {"encounter": [resource["encounter"]]}
    if "meta" in resource:
        held["meta"] = resource["meta"]
    return held


def _presented(resource: Resource, where: str) -> str | None:
    """A report's one plain-text form (Synthea's clinical note), decoded."""
    forms = resource.get("presentedForm")
    if forms is None:
        return None
    element = f"{where}.presentedForm"
    if not isinstance(forms, list) or len(forms) != 1 or not isinstance(forms[0], dict):
        raise InvalidValue(element, "holds one text/plain attachment")
    form = forms[0]
    if set(form) - {"contentType", "data"} or not str(form.get("contentType", "")).startswith(
        "text/plain"
    ):
        raise InvalidValue(f"{element}[0]", "must be text/plain with data only")
    try:
        text = base64.b64decode(text_of(form.get("data"), f"{element}[0].data"), validate=True)
        return text.decode()
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidValue(f"{element}[0].data", "must be base64 of UTF-8 text") from None


def report_results(resource: Resource) -> list[str]:
    """The references a DiagnosticReport's results name (checked against the Bundle)."""
    return [str(r.get("reference", "")) for r in resource.get("result", []) if isinstance(r, dict)]
