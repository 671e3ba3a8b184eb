"""FHIR R4B create and update at /fhir: ``POST``/``PUT`` of Patient and the entry types.

Each maps onto the /v1 command through ``application.fhir.writes``, so the policy,
the write's access record, ``If-Match`` and ``Idempotency-Key`` are /v1's. Answers
are ``Location`` and ``ETag`` without a body (``return=minimal``), or with
``Prefer: return=representation`` the new version read as ``_history/{vid}`` is; a
conditional create that finds its patient answers the Patient read (docs/fhir.md).
"""

import json
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.dependencies import Context, ExpectedVersion, UseCases
from api.routers.fhir import FHIR_JSON, base_of, fhir, media_type
from application.access.access_log import Disclosed, render
from application.errors import Forbidden, NotFound
from application.fhir.capability import ENTRY_TYPES
from application.fhir.history import entry_history, patient_history
from application.fhir.intake import addressed_patient
from application.fhir.reads import FhirReads
from application.fhir.resources import operation_outcome
from application.fhir.writes import FhirWrites, Found, Written

router = APIRouter(prefix="/fhir", include_in_schema=False)
BODY_TYPES = ("application/fhir+json", "application/json")


def writes(use_cases: UseCases) -> FhirWrites:
    return FhirWrites(use_cases.patients, use_cases.charts, fhir(use_cases))


async def resource_of(request: Request, resource_type: str) -> dict[str, Any] | Response:
    """The body as a resource of ``resource_type``; decimals stay exact (a quantity's
    value is kept as written)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in BODY_TYPES:
        return _refused(415, "not-supported", "Content-Type must be application/fhir+json")
    try:
        body = json.loads(await request.body(), parse_float=Decimal)
    except ValueError:
        return _refused(400, "invalid", "the body is not JSON")
    if not isinstance(body, dict) or body.get("resourceType") != resource_type:
        return _refused(400, "invalid", f"the body must be a {resource_type} resource")
    return body


def _refused(status: int, code: str, diagnostics: str) -> Response:
    body = render(operation_outcome(code, diagnostics))
    return Response(body, status_code=status, media_type=FHIR_JSON)


def answer(
    request: Request, outcome: Written | Found, status: int, reads: FhirReads | None = None
) -> Response:
    kind = media_type(request)
    if isinstance(kind, Response):
        return kind
    if isinstance(outcome, Found):
        disclosure = outcome.disclosure
        headers = {
            "X-Access-Id": str(disclosure.access_id),
            "Location": f"{base_of(request)}/Patient/{outcome.patient_id}",
        }
        if disclosure.version is not None:
            headers["ETag"] = f'W/"{disclosure.version}"'
        return Response(disclosure.body, status_code=200, media_type=kind, headers=headers)
    write = outcome.write
    disclosed = write.disclose()  # a repeated answer is recorded again, before it leaves
    location = f"{base_of(request)}/{outcome.resource_type}/{outcome.resource_id}"
    headers = {
        "Location": f"{location}/_history/{outcome.version}",
        "ETag": f'W/"{outcome.version}"',
        "X-Access-Id": str(disclosed.access_id),
    }
    if write.replayed:
        headers["Idempotent-Replayed"] = "true"
    body = representation(request, outcome, reads) if reads is not None else None
    if body is None:
        return Response(status_code=status, headers=headers)
    headers["X-Access-Id"] = str(body.access_id)  # the disclosure of the body sent
    return Response(body.body, status_code=status, media_type=kind, headers=headers)


def representation(request: Request, outcome: Written, reads: FhirReads) -> Disclosed | None:
    """``Prefer: return=representation``: the new version, read as ``_history/{vid}``
    is (its own access record, replayed byte for byte). A writer the policy does not
    let read it (no care relationship yet) is answered minimally."""
    if "return=representation" not in request.headers.get("prefer", ""):
        return None
    ctx, base, vid = request.state.context, base_of(request), str(outcome.version)
    try:
        if outcome.resource_type == "Patient":
            return patient_history(reads, ctx, UUID(outcome.resource_id), base, [], vid)
        kind = outcome.resource_type
        return entry_history(reads, ctx, kind, base, outcome.resource_id, [], vid)
    except (Forbidden, NotFound):
        return None


@router.post("/Patient")
async def create_patient(
    request: Request,
    ctx: Context,
    use_cases: UseCases,
    if_none_exist: Annotated[str | None, Header()] = None,
) -> Response:
    resource = await resource_of(request, "Patient")
    if isinstance(resource, Response):
        return resource
    base = base_of(request)

    def create() -> Response:
        created = writes(use_cases).create_patient(ctx, resource, base, if_none_exist)
        return answer(request, created, 201, fhir(use_cases))

    return await run_in_threadpool(create)


@router.put("/Patient/{patient_id}")
async def update_patient(
    patient_id: str, request: Request, ctx: Context, use_cases: UseCases, expected: ExpectedVersion
) -> Response:
    try:
        found = UUID(patient_id)
    except ValueError:
        raise NotFound("patient") from None
    resource = await resource_of(request, "Patient")
    if isinstance(resource, Response):
        return resource
    return await run_in_threadpool(
        lambda: answer(
            request,
            writes(use_cases).update_patient(ctx, found, resource, expected),
            200,
            fhir(use_cases),
        )
    )


def _create(resource_type: str) -> Any:
    async def create(request: Request, ctx: Context, use_cases: UseCases) -> Response:
        resource = await resource_of(request, resource_type)
        if isinstance(resource, Response):
            return resource
        request.state.fhir_patient = addressed_patient(resource_type, resource)
        return await run_in_threadpool(
            lambda: answer(
                request,
                writes(use_cases).create_entry(ctx, resource_type, resource),
                201,
                fhir(use_cases),
            )
        )

    return create


def _update(resource_type: str) -> Any:
    async def update(
        resource_id: str,
        request: Request,
        ctx: Context,
        use_cases: UseCases,
        expected: ExpectedVersion,
    ) -> Response:
        resource = await resource_of(request, resource_type)
        if isinstance(resource, Response):
            return resource

        def update() -> Response:
            updated = writes(use_cases).update_entry(
                ctx, resource_type, resource_id, resource, expected
            )
            return answer(request, updated, 200, fhir(use_cases))

        return await run_in_threadpool(update)

    return update


for _type in ENTRY_TYPES:
    router.add_api_route(f"/{_type}", _create(_type), methods=["POST"])
    router.add_api_route(f"/{_type}/{{resource_id}}", _update(_type), methods=["PUT"])
