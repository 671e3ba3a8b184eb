"""Memberships and sponsors' programmes."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query

from api.dependencies import Context, ExpectedVersion, MinPosition, UseCases
from api.openapi_document import documented
from api.openapi_models import SponsorDiscontinued, StreamWritten
from api.openapi_models_consent import Memberships
from api.rendering import written
from api.responses import JSON
from api.schemas import DiscontinueIn, EnrolIn, ReasonIn, RenewIn
from domain.vocabulary import MembershipStatus

router = APIRouter(prefix="/v1", tags=["memberships"])

MEMBERSHIP_WRITE = (404, 409, 412, 413)

SponsorId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]


@router.post(
    "/memberships",
    summary="Enrol",
    **documented(StreamWritten, 201, 404, 409, 410, 413, etag=True),
)
def enrol(body: EnrolIn, ctx: Context, use_cases: UseCases) -> JSON:
    outcome = use_cases.memberships.enrol(
        ctx,
        patient_id=body.patient_id,
        plan=body.plan,
        sponsor_id=body.sponsor_id,
        annual_fee_cents=body.annual_fee_cents,
        starts_on=body.starts_on,
        ends_on=body.ends_on,
    )
    return written(outcome, 201)


@router.post(
    "/memberships/{membership_id}/renew",
    summary="Renew",
    **documented(StreamWritten, 200, *MEMBERSHIP_WRITE, etag=True),
)
def renew(
    membership_id: UUID,
    body: RenewIn,
    ctx: Context,
    use_cases: UseCases,
    expected: ExpectedVersion,
) -> JSON:
    outcome = use_cases.memberships.renew(
        ctx,
        membership_id,
        ends_on=body.ends_on,
        annual_fee_cents=body.annual_fee_cents,
        expected_version=expected,
    )
    return written(outcome, 200)


@router.post(
    "/memberships/{membership_id}/cancel",
    summary="Cancel",
    **documented(StreamWritten, 200, *MEMBERSHIP_WRITE, etag=True),
)
def cancel(
    membership_id: UUID,
    body: ReasonIn,
    ctx: Context,
    use_cases: UseCases,
    expected: ExpectedVersion,
) -> JSON:
    outcome = use_cases.memberships.cancel(
        ctx, membership_id, reason=body.reason, expected_version=expected
    )
    return written(outcome, 200)


@router.get(
    "/memberships",
    summary="List memberships by patient, sponsor and status",
    **documented(Memberships, 200, 404, 410),
)
def list_memberships(
    ctx: Context,
    use_cases: UseCases,
    patient_id: Annotated[UUID | None, Query()] = None,
    sponsor_id: Annotated[str | None, Query(max_length=128)] = None,
    status: Annotated[MembershipStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    min_position: MinPosition = None,
) -> JSON:
    """In (starts_on, id) order; pass `next_cursor` back as `cursor` for the next page."""
    return JSON(
        use_cases.memberships.roster_page(
            ctx,
            patient_id=patient_id,
            sponsor_id=sponsor_id,
            status=status,
            cursor=cursor,
            limit=limit,
            min_position=min_position,
        )
    )


@router.post(
    "/sponsors/{sponsor_id}/discontinue",
    summary="Discontinue a sponsor's programme; its memberships are terminated by a process",
    **documented(SponsorDiscontinued, 202, 409, 413, etag=True),
)
def discontinue_sponsor(
    sponsor_id: SponsorId, body: DiscontinueIn, ctx: Context, use_cases: UseCases
) -> JSON:
    outcome = use_cases.memberships.discontinue_sponsor(
        ctx, sponsor_id, effective_on=body.effective_on
    )
    return written(outcome, 202)
