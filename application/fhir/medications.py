"""``medicationReference`` resolved to the Medication's code: pure, no store, no clock.

A chart names a medication by its code on each entry. A ``MedicationRequest`` or
``MedicationStatement`` may instead name a ``Medication`` resource: one in the same
Bundle (by its ``fullUrl``, such as ``urn:uuid:...``) or contained in the resource
(``#id``). That Medication's ``code`` becomes the entry's
``medicationCodeableConcept``, so the code is kept whichever way it was written, and
the entry's response says so. A reference that names nothing the request carries is
refused, naming the element (docs/fhir.md, "Import: what is kept").
"""

from application.fhir.elements import Resource, json_copy, obj
from domain.errors import InvalidValue

MEDICATION_TYPES = {"MedicationRequest", "MedicationStatement"}
# A Medication's elements besides its code: accepted, named as not kept (a Bundle's
# Medication entry is answered as not kept as a whole).
MEDICATION_ELEMENTS = {"resourceType", "id", "meta", "code"}


def medication_key(full_url: str, resource: Resource) -> list[str]:
    """The references a Bundle's Medication entry answers to: its fullUrl, and
    ``Medication/{id}`` when it has an id."""
    keys = [full_url]
    if isinstance(resource.get("id"), str):
        keys.append(f"Medication/{resource['id']}")
    return keys


def resolved(
    resource_type: str, resource: Resource, medications: dict[str, Resource]
) -> tuple[Resource, list[str]]:
    """The resource with ``medicationReference`` replaced by the Medication's code as
    ``medicationCodeableConcept`` (its contained Medication removed), and what was
    not kept; the resource as it is when it names no Medication."""
    if resource_type not in MEDICATION_TYPES or "medicationReference" not in resource:
        return resource, []
    where = f"{resource_type}.medicationReference"
    if "medicationCodeableConcept" in resource:
        raise InvalidValue(where, "is given with medicationCodeableConcept: give one of them")
    reference = obj(resource["medicationReference"], where)
    if set(reference) - {"reference", "display"}:
        raise InvalidValue(where, "takes reference and display only")
    text = reference.get("reference")
    if not isinstance(text, str) or not text:
        raise InvalidValue(f"{where}.reference", "must name a Medication")
    found = json_copy(resource)
    del found["medicationReference"]
    notes = []
    if text.startswith("#"):
        medication, at = _contained(found, text[1:], resource_type)
        element = f"{resource_type}.contained[{at}]"
    elif text in medications:
        medication, element = medications[text], f"{where} ({text})"
    else:
        raise InvalidValue(
            f"{where}.reference",
            "must name a Medication entry of the Bundle (its fullUrl) or a contained one "
            "(#id): the chart keeps the medication's code, and this names none",
        )
    code = medication.get("code")
    if not isinstance(code, dict) or not code.get("coding"):
        raise InvalidValue(f"{element}.code", "is needed: the chart keeps the medication's code")
    found["medicationCodeableConcept"] = json_copy(code)
    notes.append(f"{where} (the Medication's code kept as medicationCodeableConcept)")
    if text.startswith("#"):
        notes += [f"{element}.{name}" for name in sorted(set(medication) - MEDICATION_ELEMENTS)]
    return found, notes


def _contained(found: Resource, local: str, resource_type: str) -> tuple[Resource, int]:
    """The contained Medication ``local`` names, taken out of ``found``; ``contained``
    holds that Medication only (anything else contained is not held)."""
    contained = found.get("contained")
    element = f"{resource_type}.contained"
    if not isinstance(contained, list):
        raise InvalidValue(f"{resource_type}.medicationReference.reference", "names no contained")
    at = next(
        (
            index
            for index, item in enumerate(contained)
            if isinstance(item, dict)
            and item.get("resourceType") == "Medication"
            and item.get("id") == local
        ),
        None,
    )
    if at is None:
        raise InvalidValue(
            f"{resource_type}.medicationReference.reference", "names no contained Medication"
        )
    if len(contained) > 1:
        other = next(index for index in range(len(contained)) if index != at)
        raise InvalidValue(f"{element}[{other}]", "is not held: only the Medication named")
    del found["contained"]
    return contained[at], at


def resolved_alone(resource_type: str, resource: Resource) -> Resource:
    """A single write's resource: a contained Medication resolved, and refused if any
    of it would not be kept (a single write has no outcome to say so in)."""
    found, notes = resolved(resource_type, resource, {})
    dropped = [note for note in notes if "medicationReference (" not in note]
    if dropped:
        raise InvalidValue(dropped[0], "is not held by this server")
    return found
