"""Consent directives and restriction requests of a patient."""

from uuid import UUID

from fastapi import APIRouter
from starlette.responses import Response

from api.dependencies import Context, ExpectedVersion, MinPosition, UseCases
from api.openapi_document import documented
from api.openapi_models import DirectiveWritten, RestrictionWritten
from api.openapi_models_consent import Consents
from api.rendering import written
from api.responses import JSON, disclosed
from api.schemas import GrantDirectiveIn, ReasonIn, RestrictionIn

router = APIRouter(prefix="/v1/patients", tags=["consent"])

CONSENT_WRITE = (404, 409, 410, 412, 413)


@router.post(
    "/{patient_id}/consents",
    summary="Grant a consent directive",
    **documented(DirectiveWritten, 201, *CONSENT_WRITE, etag=True),
)
def grant_directive(
    patient_id: UUID,
    body: GrantDirectiveIn,
    ctx: Context,
    use_cases: UseCases,
    expected: ExpectedVersion,
) -> JSON:
    outcome = use_cases.consents.grant_directive(
        ctx,
        patient_id,
        grantee=body.grantee,
        purposes=frozenset(body.purposes),
        labels=frozenset(body.labels),
        period=body.period.to_domain(),
        form_id=body.evidence.form_id,
        form_version=body.evidence.form_version,
        text_sha256=body.evidence.text_sha256,
        method=body.evidence.method,
        expected_version=expected,
    )
    return written(outcome, 201)


@router.post(
    "/{patient_id}/consents/{directive_id}/revoke",
    summary="Revoke a directive",
    **documented(DirectiveWritten, 200, *CONSENT_WRITE, etag=True),
)
def revoke_directive(
    patient_id: UUID,
    directive_id: UUID,
    body: ReasonIn,
    ctx: Context,
    use_cases: UseCases,
    expected: ExpectedVersion,
) -> JSON:
    outcome = use_cases.consents.revoke_directive(
        ctx, patient_id, directive_id, reason=body.reason, expected_version=expected
    )
    return written(outcome, 200)


@router.get(
    "/{patient_id}/consents",
    summary="The patient's directives and consent version",
    **documented(Consents, 200, 404, 410, disclosed=True, etag=True),
)
def read_consents(
    patient_id: UUID, ctx: Context, use_cases: UseCases, min_position: MinPosition = None
) -> Response:
    return disclosed(use_cases.consents.current(ctx, patient_id, min_position))


@router.post(
    "/{patient_id}/restrictions",
    summary="Request a restriction (164.522)",
    **documented(RestrictionWritten, 201, 404, 409, 410, 413, etag=True),
)
def request_restriction(
    patient_id: UUID, body: RestrictionIn, ctx: Context, use_cases: UseCases
) -> JSON:
    outcome = use_cases.consents.request_restriction(
        ctx,
        patient_id,
        purposes=frozenset(body.purposes),
        labels=frozenset(body.labels),
        recipient=body.recipient,
    )
    return written(outcome, 201)
