"""Bulk Data ``_typeFilter``: FHIR search queries that narrow an export's resources of
one type (pure, no I/O; docs/fhir.md, Bulk Data).

``_typeFilter=Observation?category=laboratory,Condition?code=195967001`` keeps, of the
types it names, the resources that at least one of that type's queries matches; the
other types are exported whole. Each query takes the parameters this server's own
search of that type takes, except ``patient`` (an export walks every patient) and
paging. Anything else is refused (400, naming it), never ignored, so that a client
never takes a wider export for a narrower one. The parsed filters are kept in each
patient's access record, so that replay keeps exactly the same resources.
"""

import re
from typing import Any
from urllib.parse import parse_qsl

from application.errors import Unsupported
from application.fhir import search
from application.fhir.capability import ENTRY_TYPES
from application.fhir.consents import STATUSES as CONSENT_STATUSES
from application.fhir.coverage import STATUSES as COVERAGE_STATUSES
from domain.errors import InvalidValue

# The search parameters each type's filter takes: those its own search takes.
FILTER_PARAMS: dict[str, set[str]] = {
    **{kind: {"code", "date"} | search.EXTRA_PARAMS.get(kind, set()) for kind in ENTRY_TYPES},
    "Coverage": {"status"},
    "Consent": {"status"},
}
SERVED = ("Patient", "Coverage", "Consent", *ENTRY_TYPES)
STATUSES = {"Coverage": COVERAGE_STATUSES, "Consent": CONSENT_STATUSES}
# A query begins with a resource type and ``?``; a comma before anything else separates
# a parameter's alternatives (``code=a,b``) rather than two queries.
_QUERY_START = re.compile(r"^[A-Z][A-Za-z]*\?")

Filters = dict[str, list[dict[str, Any]]]  # by type, the alternatives (any one keeps)


def queries(values: list[str]) -> list[str]:
    """The queries of ``_typeFilter`` values (repeated, or joined by commas)."""
    found: list[str] = []
    for value in values:
        for part in value.split(","):
            if _QUERY_START.match(part) or not found:
                found.append(part)
            else:
                found[-1] += "," + part
    return found


def type_filters(values: list[str], types: list[str]) -> Filters:
    """Each query parsed, by type; ``types`` the types exported (``_type``'s)."""
    filters: Filters = {}
    for text in queries(values):
        kind, mark, query = text.partition("?")
        if not mark or kind not in SERVED:
            raise Unsupported(
                "_typeFilter: each filter is Type?query, of a type this server exports"
            )
        if kind not in types:
            raise Unsupported(f"_typeFilter: {kind} is not among the _type exported")
        pairs = parse_qsl(query, keep_blank_values=True)
        if not pairs:
            raise Unsupported(f"_typeFilter: {kind}? names no search parameter")
        for name, _ in pairs:
            if name not in FILTER_PARAMS.get(kind, set()):
                allowed = ", ".join(sorted(FILTER_PARAMS.get(kind, set()))) or "none"
                raise Unsupported(
                    f"_typeFilter: {kind}?{name} is not a search parameter this server "
                    f"supports in an export (for {kind}: {allowed})"
                )
        names = [name for name, _ in pairs if name != "date"]
        if repeated := sorted({name for name in names if names.count(name) > 1}):
            # FHIR would AND them, which a token match here does not: refused rather
            # than exporting more than was asked for.
            raise Unsupported(
                f"_typeFilter: {kind}?{repeated[0]} is repeated; give its values once, "
                "comma-separated (any of them)"
            )
        try:
            parsed = _parsed(kind, pairs)
        except InvalidValue as invalid:
            named = f"{kind}?{invalid.field}"
            raise InvalidValue("_typeFilter", f"{named}: {invalid.message}") from None
        filters.setdefault(kind, []).append(parsed)
    return filters


def _parsed(kind: str, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    found: dict[str, list[str]] = {}
    for name, value in pairs:
        found.setdefault(name, []).append(value)
    if kind in STATUSES:
        return {"statuses": search.statuses(found, STATUSES[kind])}
    since, until = search.window(found.get("date", []))
    return {
        "kinds": search.kinds_for(kind, found.get("category", [])),
        "codes": search.tokens(found.get("code", []), "code"),
        "since": since,
        "until": until,
    }


def keeps_resource(filters: Filters, resource: dict[str, Any]) -> bool:
    """Whether a Coverage or Consent passes its type's ``status`` filters."""
    alternatives = filters.get(str(resource["resourceType"]))
    return alternatives is None or any(
        not each["statuses"] or resource["status"] in each["statuses"] for each in alternatives
    )
