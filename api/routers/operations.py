"""Health, readiness and metrics for operators."""

import logging
from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import PlainTextResponse, Response

from api.container import Container
from api.dependencies import container
from api.openapi_document import documented
from api.openapi_models_audit import Health, Readiness
from api.responses import JSON
from infrastructure.projections.delivery_reader import measure_backlog
from infrastructure.projections.live import LAG_EVENTS, LAG_SECONDS, measure_lag

log = logging.getLogger("careledger.api")

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up", **documented(Health, 200, authenticated=False))
def healthz() -> JSON:
    return JSON({"status": "ok"})


READY = documented(Readiness, 200, authenticated=False)
READY["responses"][503] = {
    "model": Readiness,
    "description": "The store is unreachable (`unavailable`), or a view lags past the "
    "bound (`lagging`)",
    "content": {"application/json": {"example": {"status": "unavailable", "store": "unreachable"}}},
}


@router.get("/readyz", summary="The store is reachable and processes are running", **READY)
def readyz(request: Request) -> JSON:
    """503 when the store is unreachable or a view lags more than the configured bound.
    With organisations in databases of their own, a token's organisation's store (with
    its position), or without a token every store (no position: each log has its own)."""
    organisations = request.app.state.organisations
    if organisations is None:
        return _readiness(request.app.state.container)
    if request.headers.get("authorization"):
        return _readiness(container(request))
    found = {_readiness_of(each)["status"] for each in organisations.containers.values()}
    for status in ("unavailable", "lagging"):
        if status in found:
            return JSON({"status": status}, status_code=503)
    return JSON({"status": "ok"})


def _readiness(use_cases: Container) -> JSON:
    body = _readiness_of(use_cases)
    return JSON(body, status_code=200 if body["status"] == "ok" else 503)


def _readiness_of(use_cases: Container) -> dict[str, Any]:
    try:
        position = use_cases.ledger.recorder.max_notification_id() or 0
        lags = measure_lag(use_cases.projectors)
    except Exception:
        return {"status": "unavailable", "store": "unreachable"}
    bound = use_cases.settings.max_projection_lag
    lagging = {name: events for name, (events, _) in lags.items() if events > bound}
    return {
        "status": "lagging" if lagging else "ok",
        "position": position,
        "projections": {
            name: {"lag_events": e, "lag_seconds": round(s, 3)} for name, (e, s) in lags.items()
        },
    }


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(request: Request) -> Response:
    organisations = request.app.state.organisations
    every = (
        [request.app.state.container]
        if organisations is None
        else list(organisations.containers.values())
    )
    worst: dict[str, tuple[int, float]] = {}
    for use_cases in every:
        try:
            for name, (events, seconds) in measure_lag(use_cases.projectors).items():
                known = worst.get(name, (0, 0.0))
                worst[name] = (max(known[0], events), max(known[1], seconds))
            measure_backlog(
                use_cases.subscriptions.view,  # type: ignore[arg-type]
                use_cases.ledger.recorder,
                relay=use_cases.settings.nats_url is not None,
            )
        except Exception:  # the metrics still answer; the store's state shows in /readyz
            log.warning("could not measure projection lag or subscriber backlog")
    for name, (events, seconds) in worst.items():  # routed: the most behind of the databases
        LAG_EVENTS.labels(name).set(events)
        LAG_SECONDS.labels(name).set(seconds)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
