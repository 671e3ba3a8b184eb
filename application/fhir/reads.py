"""FHIR reads and searches: the timeline's gate, page scan and access records, in FHIR.

Nothing here decides access: ``ChartGate.admit`` and ``policy.decide`` do, as for
/v1, and hidden entries are passed over by the timeline's page scan, never counted.
Every response that discloses PHI is one access record per patient naming the
digest of its exact bytes; the record's ``request`` (view ``fhir``) is what
``application.access.replay`` needs to render it again.
"""

from datetime import timedelta
from typing import Any
from uuid import UUID

from application.access.access_log import Disclosed
from application.access.chart_gate import Admission
from application.access.policy import POLICY_VERSION, Content
from application.access.roles import ChartAction, require_role
from application.charts.chart_reads import ChartReads
from application.charts.disclosure_rendering import decode_cursor, encode_cursor
from application.charts.read_models import sortable_time
from application.context import RequestContext
from application.errors import DataKeyDestroyed, Gone, NotFound
from application.fhir import search
from application.fhir.resources import (
    FHIR_RENDER,
    RESOURCE_OF_KIND,
    entry_resource,
    hit_resource,
    parse_resource_id,
    patient_resource,
    searchset,
)
from application.ledger.ledger import CareLedger
from domain.errors import InvalidValue
from domain.patient import Patient


def entry_body(query: dict[str, Any], rows: list[dict[str, Any]], next_key: Any) -> Any:
    """The response a query's page makes: a resource for a read, else a searchset."""
    patient_id = UUID(query["patient"])
    resources = [entry_resource(patient_id, row) for row in rows]
    if query["fhir"] == "read":
        return resources[0] if resources else None
    pairs = [(name, value) for name, value in query["params"]]
    self_url = search.url(query["base"], query["type"], [*pairs, *_cursor(query["cursor"])])
    next_url = None
    if next_key is not None:
        next_url = search.url(
            query["base"], query["type"], [*pairs, *_cursor(encode_cursor(next_key))]
        )
    first = query["cursor"] is None
    return searchset(resources, query["base"], self_url, next_url, first=first)


def patient_body(query: dict[str, Any], patient: Patient) -> Any:
    """``Patient/{id}``, or the one-patient searchset of ``Patient?_id=``."""
    resource = patient_resource(patient)
    if query["fhir"] == "read-patient":
        return resource
    pairs = [(name, value) for name, value in query["params"]]
    return searchset([resource], query["base"], search.url(query["base"], "Patient", pairs), None)


def patients_body(query: dict[str, Any], hits: list[dict[str, Any]]) -> Any:
    """A patient search's one page; its self link names how many, never what."""
    pairs = [(name, value) for name, value in query["params"]]
    self_url = search.url(query["base"], "Patient", pairs)
    resources = [hit_resource(hit) for hit in hits]
    return searchset(resources, query["base"], self_url, None, first=True)


def _cursor(cursor: str | None) -> list[tuple[str, str]]:
    return [("_cursor", cursor)] if cursor else []


class FhirReads:
    """The FHIR read interface of one request's services."""

    def __init__(self, ledger: CareLedger, charts: ChartReads) -> None:
        self.ledger = ledger
        self.charts = charts

    # --- Patient ----------------------------------------------------------------------

    def patient(
        self, ctx: RequestContext, patient_id: UUID, base: str, params: search.Params
    ) -> Disclosed:
        """``Patient/{id}`` (no ``params``) or ``Patient?_id=``: the demographics read."""
        require_role(ctx, ChartAction.READ_DEMOGRAPHICS)
        gate = self.charts.gate
        admission = gate.admit(ctx, patient_id, Content.DEMOGRAPHICS, "read")
        patient = self.chart(patient_id)
        query: dict[str, Any] = {"view": "fhir", "fhir": "read-patient", "base": base}
        if params:
            query |= {"fhir": "search-patient-id", "params": [list(p) for p in params]}
        query |= {"render": FHIR_RENDER, "policy": POLICY_VERSION}
        return self.charts.disclosures.disclose(
            ctx,
            action="read",
            body=patient_body(query, patient),
            decision=admission.decision,
            patient_id=patient_id,
            stream_versions={str(patient_id): patient.version, **admission.stream_versions},
            request=query,
            version=patient.version,
        )

    def search_patients(self, ctx: RequestContext, base: str, params: search.Params) -> Disclosed:
        found = search.known(params, search.PATIENT_PARAMS)
        by_id = search.single(found, "_id")
        if by_id is not None:
            if set(found) != {"_id"}:
                raise InvalidValue("_id", "is searched on its own")
            try:
                patient_id = UUID(by_id)
            except ValueError:
                raise InvalidValue("_id", "is not a patient id") from None
            return self.patient(ctx, patient_id, base, [("_id", by_id)])
        require_role(ctx, ChartAction.SEARCH)
        limit = search.count(found)
        if search.single(found, "_cursor") is not None:
            raise InvalidValue("_cursor", "a patient search answers in one page")
        identifier = search.single(found, "identifier")
        family, birthdate = search.single(found, "family"), search.single(found, "birthdate")
        if (identifier is None) == (family is None or birthdate is None):
            raise InvalidValue("query", "search by identifier, or by family and birthdate")
        if identifier is not None and (family or birthdate):
            raise InvalidValue("query", "search by identifier, or by family and birthdate")
        org = ctx.actor.org
        decision = self.charts.directory_decision(ctx)
        disclosures = self.charts.disclosures
        directory = self.charts.views.directory
        wanted = limit + 1  # one more, to know whether more match than the page holds
        if identifier is not None:
            system, bar, value = identifier.rpartition("|")
            if not value:
                raise InvalidValue("identifier", "must be system|value or a value")
            # ``|value`` asks for identifiers without a system: every MRN has one.
            no_system = bool(bar) and not system
            items = [] if no_system else directory.by_mrn(org, value, wanted, system or None)
        else:
            assert family is not None and birthdate is not None
            day = search.day(birthdate)
            items = directory.by_name(org, family, day, wanted)
        items.sort(key=lambda item: item["id"])
        hits = items[:limit]
        if len(items) > limit:
            # A next link would have to carry the name, birth date or MRN searched for.
            raise InvalidValue(
                "_count",
                f"more than {limit} patients match: narrow the search, or raise _count "
                f"(at most {search.MAX_COUNT})",
            )
        # Neither the links nor the access record keep what was searched for (PHI):
        # only how, and how many.
        kept = [[n, v] for n, v in params if n == "_count"]
        query = {
            "view": "fhir",
            "fhir": "search-patient",
            "by": "identifier" if identifier is not None else "name",
            "base": base,
            "params": kept,
            "render": FHIR_RENDER,
        }
        versions = {item["id"]: item.pop("_version") for item in hits}
        return disclosures.disclose_each(
            ctx,
            action="search",
            body=patients_body(query, hits),
            decision=decision,
            patient_ids=[UUID(item["id"]) for item in hits],
            stream_versions=versions,
            request=query,
        )

    def chart(self, patient_id: UUID) -> Patient:
        """The chart of an admitted patient; erased meanwhile, 410 (within reach)."""
        try:
            patient = self.ledger.load(Patient, patient_id, "patient")
        except DataKeyDestroyed:
            raise Gone("the patient's record has been erased") from None
        if patient.erased:
            raise Gone("the patient's record has been erased")
        return patient

    # --- entries ----------------------------------------------------------------------

    def search_entries(
        self, ctx: RequestContext, resource_type: str, base: str, params: search.Params
    ) -> Disclosed:
        allowed = search.ENTRY_PARAMS | search.EXTRA_PARAMS.get(resource_type, set())
        found = search.known(params, allowed)
        patient_id = search.chart_of(found, "patient")
        since, until = search.window(found.get("date", []))
        cursor = search.single(found, "_cursor")
        if cursor:
            decode_cursor(cursor)  # refused (422) before the chart is touched
        kinds = search.kinds_for(resource_type, found.get("category", []))
        kept = [[n, v] for n, v in params if n not in ("_cursor", *search.IGNORED)]
        query = {
            "view": "fhir",
            "fhir": "search",
            "type": resource_type,
            "base": base,
            "params": kept,
            "patient": str(patient_id),
            "kinds": kinds,
            "kind": kinds[0] if len(kinds) == 1 else None,
            "codes": search.tokens(found.get("code", []), "code"),
            "since": since,
            "until": until,
            "cursor": cursor,
            "limit": search.count(found),
        }
        return self._disclose_page(ctx, patient_id, query)

    def read_entry(
        self, ctx: RequestContext, resource_type: str, base: str, text: str
    ) -> Disclosed:
        """``{type}/{id}``: the chart's one entry, through the same scan as a search (a
        hidden entry is not found, as an unknown one)."""
        ids = parse_resource_id(text)
        if ids is None:
            raise NotFound(resource_type)
        patient_id, entry_id = ids
        require_role(ctx, ChartAction.READ_CLINICAL)
        # Admitted before the chart is loaded: an outsider's probe is refused, recorded.
        admission = self.charts.gate.admit(ctx, patient_id, Content.CLINICAL, "read")
        facts = self.chart(patient_id).entries.get(entry_id.hex)
        if facts is None or RESOURCE_OF_KIND[facts["kind"]] != resource_type:
            raise NotFound(resource_type)
        at = facts["effective_at"]
        query = {
            "view": "fhir",
            "fhir": "read",
            "type": resource_type,
            "base": base,
            "patient": str(patient_id),
            "entry": str(entry_id),
            "kinds": [facts["kind"]],
            "kind": facts["kind"],
            "codes": [],
            "since": sortable_time(at),
            "until": sortable_time(at + timedelta(microseconds=1)),
            "cursor": None,
            "limit": 1,
        }
        return self._disclose_page(ctx, patient_id, query, admission, missing=resource_type)

    def _disclose_page(
        self,
        ctx: RequestContext,
        patient_id: UUID,
        query: dict[str, Any],
        admission: Admission | None = None,
        missing: str | None = None,
    ) -> Disclosed:
        require_role(ctx, ChartAction.READ_CLINICAL)
        charts = self.charts
        admission = admission or charts.gate.admit(ctx, patient_id, Content.CLINICAL, "read")
        decision = admission.decision
        keeps = search.matcher(query)
        page = charts.views.timeline.page(
            patient_id,
            kind=query["kind"],
            since=query["since"],
            until=query["until"],
            after=decode_cursor(query["cursor"]) if query["cursor"] else None,
            limit=query["limit"],
            admit=lambda row: decision.shows(row["labels"]) and keeps(row),
        )
        if missing is not None and not page.entries:
            raise NotFound(missing)  # hidden from this reader, or not projected yet
        query = query | {"render": FHIR_RENDER, "policy": POLICY_VERSION}
        return charts.disclosures.disclose(
            ctx,
            action="read",
            body=entry_body(query, page.entries, page.next_key),
            decision=decision,
            patient_id=patient_id,
            entry_ids=[row["entry_id"] for row in page.entries],
            stream_versions={str(patient_id): page.chart_version, **admission.stream_versions},
            request=query,
        )
