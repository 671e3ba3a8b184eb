"""FHIR Bulk Data export at /fhir: kick-off, status, cancel and the NDJSON files.

Installed before the FHIR reads (``api.app``), so that ``/fhir/Patient/$export`` is
this kick-off, not a read of a patient whose id is ``$export``. What an export holds
and how it is kept is ``application.fhir.export_jobs`` (docs/fhir.md, Bulk Data).
"""

from collections.abc import Iterator
from email.utils import format_datetime
from uuid import UUID

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from api.dependencies import Context, UseCases
from api.routers.fhir import FHIR_JSON, base_of, params_of
from application.access.access_log import render
from application.context import RequestContext
from application.errors import NotFound
from application.fhir.export_jobs import BulkExports
from application.fhir.resources import operation_outcome

NDJSON = "application/fhir+ndjson"
# How long a client should wait before polling again, in seconds.
POLL_SECONDS = "2"

router = APIRouter(prefix="/fhir", include_in_schema=False)


def exports(use_cases: UseCases) -> BulkExports:
    found = use_cases.exports
    assert found is not None, "the composition root builds the exports"
    return found


def _kick_off(
    request: Request, ctx: RequestContext, use_cases: UseCases, group: str | None
) -> Response:
    prefer = [p.split(";")[0].strip().lower() for p in request.headers.get("prefer", "").split(",")]
    if "respond-async" not in prefer:
        outcome = operation_outcome("required", "Prefer: respond-async is required")
        return Response(render(outcome), status_code=400, media_type=FHIR_JSON)
    base = base_of(request)
    job = exports(use_cases).kick_off(
        ctx, base=base, request=str(request.url), params=params_of(request), group=group
    )
    accepted = operation_outcome("informational", "export accepted: poll Content-Location")
    accepted["issue"][0]["severity"] = "information"
    return Response(
        render(accepted),
        status_code=202,
        media_type=FHIR_JSON,
        headers={"Content-Location": f"{base}/$export-status/{job.id}"},
    )


@router.get("/$export")
def export_system(request: Request, ctx: Context, use_cases: UseCases) -> Response:
    return _kick_off(request, ctx, use_cases, None)


@router.get("/Patient/$export")
def export_patients(request: Request, ctx: Context, use_cases: UseCases) -> Response:
    return _kick_off(request, ctx, use_cases, None)


@router.get("/Group/{group_id}/$export")
def export_group(group_id: str, request: Request, ctx: Context, use_cases: UseCases) -> Response:
    return _kick_off(request, ctx, use_cases, group_id)


def _export_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise NotFound("export") from None


@router.get("/$export-status/{export_id}")
def export_status(export_id: str, ctx: Context, use_cases: UseCases) -> Response:
    service = exports(use_cases)
    status = service.status(ctx, _export_id(export_id))
    if status.manifest is None:
        assert status.progress is not None
        headers = {"X-Progress": status.progress, "Retry-After": POLL_SECONDS}
        return Response(status_code=202, headers=headers)
    headers = {}
    expires = service.expires_at(_export_id(export_id))
    if expires is not None:
        headers["Expires"] = format_datetime(expires, usegmt=True)
    return Response(render(status.manifest), media_type="application/json", headers=headers)


@router.delete("/$export-status/{export_id}")
def export_cancel(export_id: str, ctx: Context, use_cases: UseCases) -> Response:
    exports(use_cases).cancel(ctx, _export_id(export_id))
    done = operation_outcome("informational", "export cancelled; its files are removed")
    done["issue"][0]["severity"] = "information"
    return Response(render(done), status_code=202, media_type=FHIR_JSON)


@router.get("/$export-file/{export_id}/{name}")
def export_file(export_id: str, name: str, ctx: Context, use_cases: UseCases) -> Response:
    chunks: Iterator[bytes] = exports(use_cases).download(ctx, _export_id(export_id), name)
    return StreamingResponse(chunks, media_type=NDJSON)
