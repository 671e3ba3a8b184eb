"""Which SMART scopes each route needs: the FHIR resource types and interactions it
touches, and the patient it addresses (docs/security.md, "SMART scopes").

Every /v1 and /fhir route is in ``ROUTES`` (tests/api/test_scopes.py checks it, so a new
route cannot bypass scopes); ``PUBLIC`` ones need no token at all. A route that cannot
tell which entry type it touches (an amendment names only the entry) needs the
interaction on every entry type, and a replay or a subscriber's feed, which re-disclose
whatever was disclosed, need read on every type.
"""

import json
from collections.abc import Callable
from uuid import UUID

from fastapi import Request

from api.routers import fhir
from application.context import RequestContext, Role
from application.errors import Forbidden
from application.fhir.capability import ENTRY_TYPES
from application.fhir.intake import addressed_patient
from application.fhir.resources import RESOURCE_OF_KIND
from application.scopes import Need

EVERYTHING_TYPES = ("Patient", "Coverage", "Consent", *ENTRY_TYPES)
ALL_TYPES = (*EVERYTHING_TYPES, "AuditEvent", "Provenance", "Subscription")
# FHIR's Bundle.entry.request.method, as the interaction it is.
METHODS = {"GET": "r", "HEAD": "r", "POST": "c", "PUT": "u", "PATCH": "u", "DELETE": "d"}

Needs = Callable[[Request, bytes], list[Need]]


def each(types: tuple[str, ...], interaction: str) -> Needs:
    return lambda request, body: [Need(t, interaction) for t in types]


def one(resource: str, interactions: str) -> Needs:
    return lambda request, body: [Need(resource, i) for i in interactions]


def _json(body: bytes) -> object:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None  # the route answers the bad body; its scope is judged as unknown


def _timeline(request: Request, body: bytes) -> list[Need]:
    kind = request.query_params.get("kind")
    found = RESOURCE_OF_KIND.get(kind or "")
    return [Need(t, "s") for t in ((found,) if found else ENTRY_TYPES)]


def _record_entry(request: Request, body: bytes) -> list[Need]:
    sent = _json(body)
    found = RESOURCE_OF_KIND.get(str(sent.get("kind"))) if isinstance(sent, dict) else None
    return [Need(t, "c") for t in ((found,) if found else ENTRY_TYPES)]


def _everything(request: Request, body: bytes) -> list[Need]:
    asked = [t for v in request.query_params.getlist("_type") for t in v.split(",") if t]
    types = [t for t in asked if t in EVERYTHING_TYPES] or list(EVERYTHING_TYPES)
    return [Need(t, "r") for t in dict.fromkeys(["Patient", *types])]


def _export(request: Request, body: bytes) -> list[Need]:
    """A bulk export reads every type it is asked for (all it serves by default)."""
    asked = [t for v in request.query_params.getlist("_type") for t in v.split(",") if t]
    types = [t for t in asked if t in EVERYTHING_TYPES] or list(EVERYTHING_TYPES)
    return [Need(t, "r") for t in dict.fromkeys(types)]


def _export_file(request: Request, body: bytes) -> list[Need]:
    """One file of an export: read of its type (its error file discloses no resource)."""
    kind = str(request.path_params.get("name", "")).removesuffix(".ndjson")
    return [Need(kind, "r")] if kind in EVERYTHING_TYPES else []


def _nothing_more(request: Request, body: bytes) -> list[Need]:
    """An export's status or cancel: only its requester reaches it, and it discloses no
    resource; the kick-off was judged on the scopes it needed."""
    return []


def _bundle(request: Request, body: bytes) -> list[Need]:
    """Each entry's type and method, as the client sent them (a MedicationRequest needs
    MedicationRequest.c, whatever it is stored as); an unreadable Bundle needs all."""
    sent = _json(body)
    entries = sent.get("entry") if isinstance(sent, dict) else None
    if not isinstance(entries, list):
        return [Need(t, i) for t in ALL_TYPES for i in "cu"]
    needs = []
    for entry in entries:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        asked = entry.get("request") if isinstance(entry, dict) else None
        method = asked.get("method") if isinstance(asked, dict) else None
        kind = resource.get("resourceType") if isinstance(resource, dict) else None
        if not isinstance(kind, str) and isinstance(asked, dict):
            kind = str(asked.get("url", "")).split("/")[0].split("?")[0]
        if not isinstance(kind, str) or not kind:
            return [Need(t, i) for t in ALL_TYPES for i in "cu"]
        needs.append(Need(kind, METHODS.get(str(method).upper(), "c")))
    return list(dict.fromkeys(needs))


V1: dict[tuple[str, str], Needs] = {
    ("POST", "/v1/patients"): one("Patient", "c"),
    ("GET", "/v1/patients"): one("Patient", "s"),
    ("GET", "/v1/patients/{patient_id}"): one("Patient", "r"),
    ("PATCH", "/v1/patients/{patient_id}"): one("Patient", "u"),
    ("GET", "/v1/patients/{patient_id}/timeline"): _timeline,
    ("GET", "/v1/patients/{patient_id}/disclosures"): one("AuditEvent", "s"),
    ("POST", "/v1/patients/{patient_id}/entries"): _record_entry,
    ("POST", "/v1/patients/{patient_id}/entries/{entry_id}/amendments"): each(ENTRY_TYPES, "u"),
    ("POST", "/v1/patients/{patient_id}/entries/{entry_id}/entered-in-error"): each(
        ENTRY_TYPES, "u"
    ),
    ("POST", "/v1/patients/{patient_id}/death"): one("Patient", "u"),
    ("POST", "/v1/patients/{patient_id}/erase"): one("Patient", "d"),
    ("GET", "/v1/patients/{patient_id}/consents"): one("Consent", "s"),
    ("POST", "/v1/patients/{patient_id}/consents"): one("Consent", "c"),
    ("POST", "/v1/patients/{patient_id}/consents/{directive_id}/revoke"): one("Consent", "u"),
    ("POST", "/v1/patients/{patient_id}/restrictions"): one("Consent", "c"),
    ("GET", "/v1/memberships"): one("Coverage", "s"),
    ("POST", "/v1/memberships"): one("Coverage", "c"),
    ("POST", "/v1/memberships/{membership_id}/renew"): one("Coverage", "u"),
    ("POST", "/v1/memberships/{membership_id}/cancel"): one("Coverage", "u"),
    ("POST", "/v1/sponsors/{sponsor_id}/discontinue"): one("Coverage", "u"),
    ("GET", "/v1/audit/verify"): one("AuditEvent", "s"),
    ("GET", "/v1/audit/head"): one("AuditEvent", "s"),
    ("GET", "/v1/audit/accesses"): one("AuditEvent", "s"),
    ("GET", "/v1/audit/accesses/{access_id}"): one("AuditEvent", "r"),
    ("POST", "/v1/audit/accesses/{access_id}/replay"): each(ALL_TYPES, "r"),
    ("GET", "/v1/audit/break-glass"): one("AuditEvent", "s"),
    ("POST", "/v1/audit/accesses/{access_id}/review"): one("AuditEvent", "u"),
    ("GET", "/v1/me/access-log"): one("AuditEvent", "s"),
    ("POST", "/v1/subscribers"): one("Subscription", "c"),
    ("GET", "/v1/subscribers"): one("Subscription", "s"),
    ("GET", "/v1/subscribers/{subscriber_id}/feed"): each(("Subscription", *ENTRY_TYPES), "r"),
}


def _fhir_routes() -> dict[tuple[str, str], Needs]:
    table: dict[tuple[str, str], Needs] = {
        ("POST", "/fhir"): _bundle,
        ("GET", "/fhir/Patient/{patient_id}"): one("Patient", "r"),
        ("PUT", "/fhir/Patient/{patient_id}"): one("Patient", "u"),
        ("GET", "/fhir/Patient/{patient_id}/_history"): one("Patient", "r"),
        ("GET", "/fhir/Patient/{patient_id}/_history/{vid}"): one("Patient", "r"),
        ("GET", "/fhir/Patient/{patient_id}/$everything"): _everything,
        ("GET", "/fhir/$export"): _export,
        ("GET", "/fhir/Patient/$export"): _export,
        ("GET", "/fhir/Group/{group_id}/$export"): _export,
        ("GET", "/fhir/$export-status/{export_id}"): _nothing_more,
        ("DELETE", "/fhir/$export-status/{export_id}"): _nothing_more,
        ("GET", "/fhir/$export-file/{export_id}/{name}"): _export_file,
    }
    for kind in ("Patient", "Consent", "Coverage", "AuditEvent", "Provenance", *ENTRY_TYPES):
        table[("GET", f"/fhir/{kind}")] = one(kind, "s")
    for kind in ("Consent", "Coverage", "AuditEvent", "Provenance", *ENTRY_TYPES):
        table[("GET", f"/fhir/{kind}/{{resource_id}}")] = one(kind, "r")
    for kind in ("Patient", *ENTRY_TYPES):
        table[("POST", f"/fhir/{kind}")] = one(kind, "c")
    for kind in ENTRY_TYPES:
        table[("PUT", f"/fhir/{kind}/{{resource_id}}")] = one(kind, "u")
        table[("GET", f"/fhir/{kind}/{{resource_id}}/_history")] = one(kind, "r")
        table[("GET", f"/fhir/{kind}/{{resource_id}}/_history/{{vid}}")] = one(kind, "r")
    return table


ROUTES: dict[tuple[str, str], Needs] = {**V1, **_fhir_routes()}
# Served without a token: they disclose no PHI (SMART asks this of the two discovery ones).
PUBLIC = {
    ("GET", "/fhir/metadata"),
    ("GET", "/.well-known/smart-configuration"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
}


def _patient(request: Request, body: bytes) -> UUID | None:
    """The one patient the request addresses, if it names one."""
    path = request.url.path
    if path == "/fhir":
        sent = _json(body)
        entries = sent.get("entry") if isinstance(sent, dict) else None
        entries = entries if isinstance(entries, list) else []
        named = {
            addressed_patient(str(e["resource"].get("resourceType")), e["resource"])
            if e["resource"].get("resourceType") != "Patient"
            else None
            for e in entries
            if isinstance(e, dict) and isinstance(e.get("resource"), dict)
        }
        return named.pop() if len(named) == 1 else None
    if path.startswith("/fhir/"):
        sent = _json(body) if request.method == "POST" else None
        if isinstance(sent, dict) and isinstance(sent.get("resourceType"), str):
            return addressed_patient(sent["resourceType"], sent)
        return fhir.patient_addressed(request)
    try:
        return UUID(str(request.path_params["patient_id"]))
    except (KeyError, ValueError):
        return None


async def admit_scopes(request: Request, ctx: RequestContext) -> None:
    """403 (recorded, as any refusal) when the token's scopes do not allow the request.

    A token without a ``scope`` claim is not narrowed; a route missing from the table
    is refused to a scoped token rather than let through.
    """
    grant = ctx.actor.scopes
    if grant is None:
        return
    route = request.scope.get("route")
    key = (request.method, str(getattr(route, "path", "")))
    needs = ROUTES.get(key)
    if needs is None:
        raise Forbidden("this route is not open to scoped tokens")
    body = await request.body() if request.method in ("POST", "PUT", "PATCH") else b""
    patient = _patient(request, body)
    if patient is None and ctx.actor.role is Role.PATIENT:
        patient = ctx.actor.patient_id  # the policy keeps a patient to their own record
    refusal = grant.refusal(needs(request, body), patient)
    if refusal is not None:
        raise Forbidden(refusal)
