"""Downstream subscribers: registration (admin) and the consent-filtered pull feed."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from starlette.responses import Response

from api.dependencies import Context, UseCases
from api.openapi_document import documented
from api.openapi_models import SubscriberRegistered
from api.openapi_models_audit import Feed, Subscribers
from api.responses import JSON
from api.schemas import SubscriberIn
from domain.subscriber import ContentLevel

router = APIRouter(prefix="/v1/subscribers", tags=["subscribers"])


@router.post(
    "",
    summary="Register a subscriber",
    **documented(SubscriberRegistered, 201, 409, 413),
)
def register(body: SubscriberIn, ctx: Context, use_cases: UseCases) -> JSON:
    outcome = use_cases.subscriptions.register(
        ctx,
        name=body.name,
        recipient_org=body.recipient_org,
        purpose=body.purpose,
        kinds=body.kinds,
        labels=body.labels,
        content=ContentLevel(body.content),
    )
    return JSON(outcome.body(), status_code=201)


@router.get("", summary="List subscribers (admin)", **documented(Subscribers, 200))
def listing(ctx: Context, use_cases: UseCases) -> JSON:
    """The organisation's whole list, on one page: ``next_cursor`` is always null."""
    return JSON({**use_cases.subscriptions.listing(ctx), "next_cursor": None})


@router.get(
    "/{subscriber_id}/feed",
    summary="The subscriber's feed (its own service token)",
    description=(
        "Items after `after` in log order, each decided against the patient's consent as "
        "of the event and again now, and each an access record (action `deliver`) whose "
        "`response_sha256` is over that item's bytes; `access_ids` lists them in order. "
        "Passing `after` acknowledges everything up to it (the durable cursor); without "
        "it the page starts at the last acknowledged position. With `wait` (seconds, up "
        "to 30) an empty page is held open until something arrives. Delivery is at "
        "least once: read again from an earlier `after` and the same `event_id`s return."
    ),
    **documented(Feed, 200, 404),
)
def feed(
    subscriber_id: UUID,
    ctx: Context,
    use_cases: UseCases,
    after: Annotated[
        int | None,
        Query(
            ge=0,
            description="The `next_after` of the last page read. Passing it acknowledges "
            "every item up to it (the durable cursor); without it the page starts at the "
            "last acknowledged position",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    wait: Annotated[float, Query(ge=0, le=30)] = 0,
) -> Response:
    body = use_cases.subscriptions.feed(ctx, subscriber_id, after=after, limit=limit, wait=wait)
    return Response(content=body, media_type="application/json")
