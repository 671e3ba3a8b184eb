"""Health, readiness and metrics for operators."""

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from api.dependencies import Services
from api.responses import JSON

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up")
def healthz() -> JSON:
    return JSON({"status": "ok"})


@router.get("/readyz", summary="The store is reachable and processes are running")
def readyz(services: Services) -> JSON:
    try:
        position = services.ledger.recorder.max_notification_id() or 0
    except Exception:
        return JSON({"status": "unavailable", "store": "unreachable"}, status_code=503)
    return JSON({"status": "ok", "position": position})


@router.get("/metrics", summary="Prometheus metrics")
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
