"""``AuditEvent?patient=&date=&agent=&purpose=&outcome=`` and ``AuditEvent/{id}``: the
auditors' /v1 queries (``AuditTrail``), answered as BALP AuditEvents.

Only auditors, each of their own organisation's records, by the same scoping as
``GET /v1/audit/accesses``: a patient outside it is 404 (recorded), and a record of
another organisation is 404 (recorded where that organisation sees it). Access
records are PHI-free metadata, so reading them, as on /v1, is not itself recorded.
"""

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from application.access.audit_trail import AuditTrail
from application.charts.read_models import SORTABLE_TIME
from application.context import RequestContext, Role
from application.errors import Forbidden, NotFound
from application.fhir import search
from application.fhir.audit_events import ACT_REASON, ACTOR, REFUSED, SUCCESS, audit_event
from application.fhir.resources import searchset
from domain.access_record import AccessRecord
from domain.errors import InvalidValue

AUDIT_PARAMS = {"patient", "date", "agent", "purpose", "outcome", "_count", "_cursor"}
OUTCOME = "http://terminology.hl7.org/CodeSystem/audit-event-outcome"
OUTCOMES = {SUCCESS: "permit", REFUSED: "deny", "8": None, "12": None}  # None: never recorded


def _require_auditor(ctx: RequestContext) -> None:
    if ctx.actor.role is not Role.AUDITOR:
        raise Forbidden("only auditors read AuditEvents, of their own organisation")


def _moment(text: str | None) -> datetime | None:
    """The window's sortable bound as the time the audit trail takes."""
    return datetime.strptime(text, SORTABLE_TIME).replace(tzinfo=UTC) if text else None


def _token(value: str, name: str, system: str) -> str:
    """A token's code, its system (if given) the one this parameter is coded in."""
    named, bar, code = value.rpartition("|")
    if not code or (bar and named not in ("", system)):
        raise InvalidValue(name, f"must be a code, or {system}|code")
    return code


def _filters(found: dict[str, list[str]]) -> tuple[dict[str, str | None], bool]:
    """The access log's filters the parameters ask for, and whether they can match
    anything (not an outcome this server never records)."""
    filters: dict[str, str | None] = {}
    subject = search.single(found, "patient")
    if subject is not None:
        try:
            filters["patient_id"] = str(UUID(subject.removeprefix("Patient/")))
        except ValueError:
            raise InvalidValue("patient", "is not a patient id") from None
    agent = search.single(found, "agent")
    if agent is not None:
        value = _token(agent, "agent", ACTOR)
        organisation, slash, subject_id = value.partition("/")
        if slash and not (organisation and subject_id):
            raise InvalidValue("agent", "is organisation/subject, or a subject")
        filters |= {"actor_org": organisation, "actor_id": subject_id} if slash else {}
        filters.setdefault("actor_id", value)
    purpose = search.single(found, "purpose")
    if purpose is not None:
        filters["purpose"] = _token(purpose, "purpose", ACT_REASON).upper()
    outcome = search.single(found, "outcome")
    if outcome is not None:
        code = _token(outcome, "outcome", OUTCOME)
        if code not in OUTCOMES:
            raise InvalidValue("outcome", "is 0, 4, 8 or 12")
        filters["decision"] = OUTCOMES[code]
        if OUTCOMES[code] is None:
            return filters, False
    return filters, True


def search_audit_events(
    trail: AuditTrail, ctx: RequestContext, base: str, params: search.Params
) -> dict[str, Any]:
    """A page of the organisation's access records, newest first, as a searchset."""
    _require_auditor(ctx)
    found = search.known(params, AUDIT_PARAMS)
    filters, matchable = _filters(found)
    since, until = search.window(found.get("date", []))
    limit = search.count(found)
    cursor = search.single(found, "_cursor")
    records: list[AccessRecord] = []
    next_cursor = None
    if not matchable and filters.get("patient_id"):
        trail.gate.within_reach(ctx, UUID(str(filters["patient_id"])), "read")
    if matchable:
        page = trail.accesses(
            ctx,
            filters=filters,
            since=_moment(since),
            until=_moment(until),
            cursor=cursor,
            limit=limit,
        )
        next_cursor = page["next_cursor"]
        ledger = trail.ledger
        records = [
            ledger.load(AccessRecord, UUID(item["access_id"]), "access record")
            for item in page["items"]
        ]
    kept = [(n, v) for n, v in params if n not in ("_cursor", *search.IGNORED)]
    self_url = search.url(base, "AuditEvent", [*kept, *_cursor(cursor)])
    next_url = None
    if next_cursor is not None:
        next_url = search.url(base, "AuditEvent", [*kept, ("_cursor", next_cursor)])
    resources = [audit_event(record) for record in records]
    return searchset(resources, base, self_url, next_url, first=cursor is None)


def read_audit_event(
    trail: AuditTrail, ctx: RequestContext, text: str, params: search.Params
) -> dict[str, Any]:
    """``AuditEvent/{id}``: one record of the auditor's organisation; else 404."""
    _require_auditor(ctx)
    search.known(params, set())
    try:
        access_id = UUID(text)
    except ValueError:
        raise NotFound("access record") from None
    return audit_event(trail.visible_record(ctx, access_id, "read"))


def _cursor(cursor: str | None) -> list[tuple[str, str]]:
    return [("_cursor", cursor)] if cursor else []
