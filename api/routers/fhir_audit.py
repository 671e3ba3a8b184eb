"""FHIR ``AuditEvent`` (the auditors' access log, IHE BALP) and ``Provenance`` (entry
authorship) at /fhir, beside ``api.routers.fhir``; docs/fhir.md says what maps to what.

An AuditEvent answer is access-log metadata, as ``GET /v1/audit/accesses`` is: not
itself recorded, so it names no access record. A Provenance answer discloses the
chart, so it is one access record, as any FHIR read.
"""

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from api.dependencies import Context, UseCases
from api.routers.fhir import answer, base_of, fhir, media_type, params_of
from application.access.access_log import render
from application.fhir.audit_search import read_audit_event, search_audit_events
from application.fhir.provenance import provenance

router = APIRouter(prefix="/fhir", include_in_schema=False)


def metadata_answer(request: Request, read: Callable[[], Any]) -> Response:
    """An answer of access-log metadata: no access record names it (as on /v1)."""
    kind = media_type(request)  # an unsupported _format is 406 before anything is read
    if isinstance(kind, Response):
        return kind
    return Response(render(read()), media_type=kind)


@router.get("/AuditEvent")
def search_audit(request: Request, ctx: Context, use_cases: UseCases) -> Response:
    base, params = base_of(request), params_of(request)
    return metadata_answer(request, lambda: search_audit_events(use_cases.audit, ctx, base, params))


@router.get("/AuditEvent/{resource_id}")
def read_audit(resource_id: str, request: Request, ctx: Context, use_cases: UseCases) -> Response:
    params = params_of(request)
    return metadata_answer(
        request, lambda: read_audit_event(use_cases.audit, ctx, resource_id, params)
    )


@router.get("/Provenance")
def search_provenance(request: Request, ctx: Context, use_cases: UseCases) -> Response:
    reads = fhir(use_cases)
    base, params = base_of(request), params_of(request)
    return answer(request, lambda: provenance(reads, ctx, base, params))


@router.get("/Provenance/{resource_id}")
def read_provenance(
    resource_id: str, request: Request, ctx: Context, use_cases: UseCases
) -> Response:
    reads = fhir(use_cases)
    base, params = base_of(request), params_of(request)
    return answer(request, lambda: provenance(reads, ctx, base, params, resource_id))
