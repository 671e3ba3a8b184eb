"""The patient's own views of the audit."""

from typing import Annotated

from fastapi import APIRouter, Query

from api.dependencies import Context, MinPosition, UseCases
from api.openapi_document import documented
from api.openapi_models_audit import AccessPage
from api.responses import JSON

router = APIRouter(prefix="/v1/me", tags=["patients"])


@router.get(
    "/access-log",
    summary="Who accessed my record, when and why (patient)",
    **documented(AccessPage, 200, 404, 410),
)
def access_log(
    ctx: Context,
    use_cases: UseCases,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    min_position: MinPosition = None,
) -> JSON:
    return JSON(
        use_cases.audit.my_access_log(ctx, cursor=cursor, limit=limit, min_position=min_position)
    )
