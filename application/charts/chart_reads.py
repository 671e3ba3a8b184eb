"""Reading charts from the read models: the timeline, and the directory search.

Every read passes the chart gate (the policy decision point over consent and
membership state, O(1) reads of the views, never a load of the whole chart) and is
disclosed with an access record naming the exact bytes.
"""

from datetime import date, datetime
from uuid import UUID

from application.access.access_log import Disclosed, Disclosures
from application.access.chart_gate import ChartGate
from application.access.policy import (
    POLICY_VERSION,
    AccessRequest,
    ConsentFacts,
    Content,
    Decision,
    decide,
)
from application.access.roles import ChartAction, require_role
from application.charts.disclosure_rendering import (
    SEARCH_RENDER,
    decode_search_cursor,
    encode_search_cursor,
    search_body,
    timeline_body,
)

# The codec moved to disclosure_rendering; re-exported until audit_trail imports it there.
from application.charts.disclosure_rendering import decode_cursor as decode_cursor  # noqa: PLC0414
from application.charts.disclosure_rendering import encode_cursor as encode_cursor  # noqa: PLC0414
from application.charts.read_models import ReadModels, time_bound
from application.context import RequestContext
from application.ports import Clock
from domain.errors import InvalidValue

# The views each read waits for with min_position: its own, and those the chart gate
# decides from (the care organisation, consent state and memberships).
GATE_VIEWS = ("directory", "consent_state", "roster")
TIMELINE_VIEWS = ("timeline", *GATE_VIEWS)
DIRECTORY_VIEWS = ("directory",)
CONSENT_VIEWS = GATE_VIEWS


class ChartReads:
    """The timeline and the directory search, each disclosed with an access record."""

    def __init__(
        self,
        views: ReadModels,
        gate: ChartGate,
        disclosures: Disclosures,
        clock: Clock,
    ) -> None:
        self.views = views
        self.gate = gate
        self.disclosures = disclosures
        self.clock = clock

    def timeline(
        self,
        ctx: RequestContext,
        patient_id: UUID,
        *,
        kind: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
        limit: int = 50,
        min_position: int | None = None,
    ) -> Disclosed:
        require_role(ctx, ChartAction.READ_CLINICAL)
        after = decode_cursor(cursor) if cursor else None
        since_key, until_key = time_bound("since", since), time_bound("until", until)
        self.views.caught_up(TIMELINE_VIEWS, min_position)
        admission = self.gate.admit(ctx, patient_id, Content.CLINICAL, "read")
        decision = admission.decision
        page = self.views.timeline.page(
            patient_id,
            kind=kind,
            since=since_key,
            until=until_key,
            after=after,
            limit=limit,
            admit=lambda entry: decision.shows(entry["labels"]),
        )
        return self.disclosures.disclose(
            ctx,
            action="read",
            body=timeline_body(patient_id, page.entries, page.next_key),
            decision=decision,
            patient_id=patient_id,
            entry_ids=[entry["entry_id"] for entry in page.entries],
            stream_versions={str(patient_id): page.chart_version, **admission.stream_versions},
            request={
                "view": "timeline",
                "kind": kind,
                "since": since_key,
                "until": until_key,
                "cursor": cursor,
                "limit": limit,
                "policy": POLICY_VERSION,
            },
        )

    def directory_decision(self, ctx: RequestContext) -> Decision:
        """The policy's decision on a search of the actor's organisation's directory
        (the organisation's own: the decision is the organisation's); a denial is
        recorded and raised."""
        request = AccessRequest(
            ctx.actor,
            ctx.purpose,
            "*",
            ctx.actor.org,
            Content.DIRECTORY,
            self.clock().date(),
            ctx.break_glass,
        )
        decision = decide(request, ConsentFacts(0, {}), [])
        if not decision.permit:
            raise self.disclosures.refuse(ctx, action="search", decision=decision, patient_id=None)
        return decision

    def search(
        self,
        ctx: RequestContext,
        *,
        mrn: str | None = None,
        mrn_system: str | None = None,
        family: str | None = None,
        birth_date: date | None = None,
        limit: int = 50,
        min_position: int | None = None,
        cursor: str | None = None,
    ) -> Disclosed:
        require_role(ctx, ChartAction.SEARCH)
        after = decode_search_cursor(cursor) if cursor else None
        by_mrn = mrn is not None and family is None and birth_date is None
        by_name = mrn is None and family is not None and birth_date is not None
        if not (by_mrn or by_name):
            raise InvalidValue("query", "search by mrn, or by family and birth_date together")
        if mrn_system is not None and mrn is None:
            raise InvalidValue("mrn_system", "narrows a search by mrn; give mrn too")
        self.views.caught_up(DIRECTORY_VIEWS, min_position)
        org = ctx.actor.org
        decision = self.directory_decision(ctx)
        directory = self.views.directory
        # One hit more than the page, to know whether another page follows.
        if mrn is not None:
            # In any system unless one is named (docs/events.md, Identifiers).
            found = directory.by_mrn(org, mrn, limit + 1, mrn_system, after)
        else:
            assert family is not None and birth_date is not None
            found = directory.by_name(org, family, birth_date, limit + 1, after)
        items = found[:limit]
        next_cursor = encode_search_cursor(items[-1]["id"]) if len(found) > limit else None
        # One access record for each patient the hits disclose, in their logs alike.
        return self.disclosures.disclose_each(
            ctx,
            action="search",
            body=search_body(items, next_cursor),
            decision=decision,
            patient_ids=[UUID(item["id"]) for item in items],
            # the ids disclosed, each at the version of its stream the hit reflects
            stream_versions={item["id"]: item.pop("_version") for item in items},
            request={
                "view": "directory",
                "by": "mrn" if mrn is not None else "name",
                "render": SEARCH_RENDER,
                "next_cursor": next_cursor,
            },
        )
