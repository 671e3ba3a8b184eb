"""Audit: the integrity of the log, and the access log of PHI disclosures."""

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from starlette.responses import Response

from api.dependencies import Context, MinPosition, UseCases
from api.openapi_document import documented
from api.openapi_models import Reviewed
from api.openapi_models_audit import (
    AccessPage,
    AccessRecord,
    BreakGlassQueue,
    Head,
    Replayed,
    Verified,
)
from api.responses import JSON, disclosed
from api.schemas import ReviewIn

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get(
    "/verify",
    summary="Recompute the tamper-evident chain",
    description=(
        "Auditor or admin. Recomputes every link of the chain over the stored records and "
        "names the first bad position. Pass the `head_position` and `head_link` exported "
        "earlier (GET /v1/audit/head, `careledger audit head`) to detect a truncated tail."
    ),
    **documented(Verified, 200),
)
def verify(
    ctx: Context,
    use_cases: UseCases,
    head_position: Annotated[int | None, Query(ge=1)] = None,
    head_link: Annotated[str | None, Query(pattern="^[0-9a-f]{64}$")] = None,
) -> JSON:
    anchored = None
    if head_position is not None and head_link is not None:
        anchored = {"position": head_position, "link": head_link}
    return JSON(use_cases.integrity.verify(ctx, anchored))


@router.get(
    "/head",
    summary="The chain's current head, for anchoring elsewhere",
    **documented(Head, 200),
)
def head(ctx: Context, use_cases: UseCases) -> JSON:
    return JSON({"head": use_cases.integrity.head(ctx)})


Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[str | None, Query(max_length=200)]


@router.get(
    "/accesses",
    summary="Search the access log (auditor; a patient sees their own)",
    **documented(AccessPage, 200, 404, 410),
)
def accesses(
    ctx: Context,
    use_cases: UseCases,
    patient_id: Annotated[UUID | None, Query()] = None,
    actor_id: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
    decision: Annotated[str | None, Query(pattern="^(permit|deny)$")] = None,
    purpose: Annotated[str | None, Query(max_length=20)] = None,
    action: Annotated[str | None, Query(max_length=20)] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
    min_position: MinPosition = None,
) -> JSON:
    filters = {
        "patient_id": str(patient_id) if patient_id else None,
        "actor_id": actor_id,
        "decision": decision,
        "purpose": purpose,
        "action": action,
    }
    return JSON(
        use_cases.audit.accesses(
            ctx,
            filters=filters,
            since=since,
            until=until,
            cursor=cursor,
            limit=limit,
            min_position=min_position,
        )
    )


@router.get(
    "/accesses/{access_id}", summary="One access record", **documented(AccessRecord, 200, 404, 410)
)
def access(access_id: UUID, ctx: Context, use_cases: UseCases) -> JSON:
    return JSON(use_cases.audit.access(ctx, access_id))


@router.post(
    "/accesses/{access_id}/replay",
    summary="Rebuild a disclosed response from the log and check its digest (auditor)",
    description=(
        "Loads the streams the response was computed from at the recorded versions, "
        "decides again with the consent and memberships as they were on that day, "
        "renders through the same code, and compares SHA-256 digests. The replay is "
        "itself an access record. 410 for a crypto-shredded patient."
    ),
    **documented(Replayed, 200, 404, 410, 500, disclosed=True),
)
def replay(access_id: UUID, ctx: Context, use_cases: UseCases) -> Response:
    return disclosed(use_cases.replays.replay(ctx, access_id))


@router.get(
    "/break-glass",
    summary="The break-glass review queue (auditor)",
    **documented(BreakGlassQueue, 200),
)
def break_glass(
    ctx: Context,
    use_cases: UseCases,
    cursor: Cursor = None,
    limit: Limit = 50,
    min_position: MinPosition = None,
) -> JSON:
    return JSON(
        use_cases.audit.break_glass_queue(
            ctx, cursor=cursor, limit=limit, min_position=min_position
        )
    )


@router.post(
    "/accesses/{access_id}/review",
    summary="Review a break-glass access (auditor); recorded as an event",
    **documented(Reviewed, 200, 404, 409, 413),
)
def review(access_id: UUID, body: ReviewIn, ctx: Context, use_cases: UseCases) -> JSON:
    return JSON(use_cases.audit.review(ctx, access_id, outcome=body.outcome, note=body.note))
