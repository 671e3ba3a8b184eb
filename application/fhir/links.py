"""An entry's links as FHIR elements: its encounter, and the practitioners,
organisations and locations it names. Pure, no store, no clock.

The chart holds no Practitioner, Organization or Location resource: an entry keeps
who took part as an identifier and a name (``domain.values.Attribution``), rendered
as a logical reference (``type``, ``identifier``, ``display``). Its encounter is an
encounter entry of the same chart, rendered as a literal ``Encounter/{id}``. The
element each link takes differs by resource; the table is ``ELEMENTS`` and
docs/fhir.md ("Links") documents it. ``links_of`` reads what ``rendered`` writes.
"""

from collections.abc import Callable
from typing import Any
from uuid import UUID

from application.fhir.elements import Resource, obj, only, refuse, text_of
from domain.errors import InvalidValue
from domain.values import Attribution, EntryLinks

# Per resource: each link's role and where it sits. A path is the element, then
# ``[]`` for an array of references, or ``[].name`` for an array of backbone
# elements each holding the reference under ``name``; ``.name`` goes into an object.
ELEMENTS: dict[str, dict[str, str]] = {
    "Observation": {"encounter": "encounter", "performer": "performer[]"},
    "Encounter": {
        "participant": "participant[].individual",
        "location": "location[].location",
        "service-provider": "serviceProvider",
    },
    "Condition": {"encounter": "encounter"},
    "AllergyIntolerance": {"encounter": "encounter"},
    "MedicationStatement": {"encounter": "context", "requester": "informationSource"},
    "Immunization": {
        "encounter": "encounter",
        "performer": "performer[].actor",
        "location": "location",
    },
    "Procedure": {
        "encounter": "encounter",
        "performer": "performer[].actor",
        "location": "location",
    },
    "DocumentReference": {
        "encounter": "context.encounter[]",
        "author": "author[]",
        "custodian": "custodian",
    },
}
# The element names a link occupies at the top of each resource.
TOP_ELEMENTS = {
    kind: {path.split("[")[0].split(".")[0] for path in paths.values()}
    for kind, paths in ELEMENTS.items()
}
# What each role may name.
ROLE_TYPES = {
    "performer": {"Practitioner", "Organization"},
    "participant": {"Practitioner"},
    "requester": {"Practitioner", "Organization"},
    "author": {"Practitioner", "Organization"},
    "service-provider": {"Organization"},
    "custodian": {"Organization"},
    "location": {"Location"},
}
MAX_LINKS = 20

# A reference as the chart keeps it: ("encounter", the raw reference) or (role, ...)
Reference = dict[str, Any]
# Resolves a reference: an encounter to its entry's hex id, else to an Attribution.
EncounterOf = Callable[[str, str], str]
AttributionOf = Callable[[str, Reference, str], Attribution]


def _references(resource: Resource, path: str, where: str) -> list[tuple[str, Any]]:
    """The references found at ``path``, each with the element it sits at."""
    head, _, rest = path.partition(".")
    name = head.removesuffix("[]")
    if name not in resource:
        return []
    value = resource[name]
    if head.endswith("[]"):
        if not isinstance(value, list) or not value or len(value) > MAX_LINKS:
            raise refuse(f"{where}.{name}", f"must be an array of 1 to {MAX_LINKS}")
        items = [(f"{where}.{name}[{i}]", item) for i, item in enumerate(value)]
    else:
        items = [(f"{where}.{name}", value)]
    if not rest:
        return items
    found = []
    for element, item in items:
        holder = obj(item, element)
        inner = rest.partition(".")[0].removesuffix("[]")
        # A backbone element holds its reference and nothing the chart would keep.
        only(holder, {inner}, element)
        found += _references(holder, rest, element)
    return found


def links_of(
    resource_type: str,
    resource: Resource,
    where: str,
    encounter_of: EncounterOf,
    attribution_of: AttributionOf,
) -> EntryLinks:
    """The links a resource carries, resolved; none is ``EntryLinks()``."""
    encounter = None
    attributions = []
    for role, path in ELEMENTS.get(resource_type, {}).items():
        for element, value in _references(resource, path, where):
            reference = obj(value, element)
            if role == "encounter":
                if encounter is not None:
                    raise refuse(element, "an entry has one encounter")
                only(reference, {"reference", "display"}, element)
                text = text_of(reference.get("reference"), f"{element}.reference")
                encounter = encounter_of(text, element)
                continue
            found = attribution_of(role, reference, element)
            if found.resource_type not in ROLE_TYPES[role]:
                allowed = " or ".join(sorted(ROLE_TYPES[role]))
                raise refuse(f"{element}.reference", f"must name a {allowed}")
            attributions.append(found)
    try:
        return EntryLinks(encounter, tuple(attributions))
    except InvalidValue as error:
        raise refuse(where, error.message) from None


def identified(role: str, reference: Reference, element: str) -> Attribution:
    """A logical reference as this server renders it: ``type``, ``identifier`` and
    an optional ``display``."""
    only(reference, {"type", "identifier", "display"}, element)
    identifier = obj(reference.get("identifier"), f"{element}.identifier")
    only(identifier, {"system", "value"}, f"{element}.identifier")
    display = reference.get("display")
    return attribution(
        role,
        text_of(reference.get("type"), f"{element}.type"),
        text_of(identifier.get("system"), f"{element}.identifier.system"),
        text_of(identifier.get("value"), f"{element}.identifier.value"),
        text_of(display, f"{element}.display") if display is not None else None,
        element,
    )


def attribution(
    role: str, kind: str, system: str, value: str, display: str | None, element: str
) -> Attribution:
    try:
        return Attribution(role, kind, system, value, display)
    except InvalidValue as error:
        raise refuse(element, error.message) from None


def conditional(reference: str, element: str) -> tuple[str, str, str] | None:
    """``Practitioner?identifier=system|value`` as (type, system, value), else None."""
    kind, mark, query = reference.partition("?identifier=")
    if not mark:
        return None
    system, bar, value = query.partition("|")
    if not bar or not system or not value or "&" in query:
        raise refuse(element, "a conditional reference names one identifier=system|value")
    return kind, system, value


def encounter_id(patient_id: UUID, reference: str, element: str) -> str:
    """``Encounter/{id}`` of the same chart as its entry's hex id."""
    # Imported here: resources renders through this module.
    from application.fhir.resources import parse_resource_id

    kind, _, text = reference.rpartition("/")
    ids = parse_resource_id(text) if kind.endswith("Encounter") else None
    if ids is None or ids[0] != patient_id:
        raise refuse(element, "must be an Encounter of the same chart")
    return ids[1].hex


def rendered(resource_type: str, patient_id: UUID, row: dict[str, Any]) -> Resource:
    """The link elements of a row's resource (merged into it by the caller)."""
    paths = ELEMENTS.get(resource_type, {})
    out: Resource = {}
    encounter = row.get("encounter")
    if encounter is not None and "encounter" in paths:
        literal = {"reference": f"Encounter/{patient_id.hex}{UUID(encounter).hex}"}
        _put(out, paths["encounter"], literal)
    for item in row.get("attributions", ()):
        reference: dict[str, Any] = {
            "type": item["type"],
            "identifier": {"system": item["system"], "value": item["value"]},
        }
        if "display" in item:
            reference["display"] = item["display"]
        if item["role"] in paths:
            _put(out, paths[item["role"]], reference)
    return out


def _put(out: Resource, path: str, reference: Reference) -> None:
    head, _, rest = path.partition(".")
    name = head.removesuffix("[]")
    if not head.endswith("[]"):
        if rest:
            _put(out.setdefault(name, {}), rest, reference)
        else:
            out[name] = reference
        return
    items = out.setdefault(name, [])
    if rest:
        # Each reference gets a backbone element of its own.
        holder: Resource = {}
        _put(holder, rest, reference)
        items.append(holder)
    else:
        items.append(reference)


def by_identifier(role: str, reference: Resource, element: str) -> Attribution:
    """Who took part, named as this server renders it (``type``, ``identifier``) or
    by a conditional reference (``Practitioner?identifier=system|value``)."""
    if "reference" not in reference:
        return identified(role, reference, element)
    only(reference, {"reference", "display"}, element)
    text = text_of(reference.get("reference"), f"{element}.reference")
    found = conditional(text, f"{element}.reference")
    if found is None:
        raise refuse(
            f"{element}.reference",
            "must name a Practitioner, Organization or Location by identifier: this "
            "server holds none of them",
        )
    display = reference.get("display")
    shown = text_of(display, f"{element}.display") if display is not None else None
    return attribution(role, *found, shown, element)
