"""Audit: integrity of the log. (Access records and replay arrive with the audit issue.)"""

from typing import Annotated

from fastapi import APIRouter, Query

from api.dependencies import Context, Services
from api.responses import JSON

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get(
    "/verify",
    summary="Recompute the tamper-evident chain",
    description=(
        "Auditor or admin. Recomputes every link of the chain over the stored records and "
        "names the first bad position. Pass the `head_position` and `head_link` exported "
        "earlier (GET /v1/audit/head, `careledger audit head`) to detect a truncated tail."
    ),
)
def verify(
    ctx: Context,
    services: Services,
    head_position: Annotated[int | None, Query(ge=1)] = None,
    head_link: Annotated[str | None, Query(pattern="^[0-9a-f]{64}$")] = None,
) -> JSON:
    anchored = None
    if head_position is not None and head_link is not None:
        anchored = {"position": head_position, "link": head_link}
    return JSON(services.integrity.verify(ctx, anchored))


@router.get("/head", summary="The chain's current head, for anchoring elsewhere")
def head(ctx: Context, services: Services) -> JSON:
    return JSON({"head": services.integrity.head(ctx)})
