"""FHIR R4B at /fhir: reads and searches over the same use cases' policy and audit.

FHIR describes itself by its CapabilityStatement (``/fhir/metadata``), so these
routes stay out of the /v1 OpenAPI document. Errors become OperationOutcomes in
``api.problems``; what maps to what is in docs/fhir.md.
"""

from collections.abc import Callable
from uuid import UUID

from fastapi import APIRouter, Request
from starlette.responses import Response

from api.dependencies import AppSettings, Context, UseCases
from application.access.access_log import Disclosed, render
from application.context import RequestContext
from application.errors import NotFound
from application.fhir.capability import ENTRY_TYPES, capability_statement
from application.fhir.consents import consents
from application.fhir.coverage import coverages
from application.fhir.everything import everything
from application.fhir.history import entry_history, patient_history
from application.fhir.reads import FhirReads
from application.fhir.resources import operation_outcome, parse_resource_id

FHIR_JSON = "application/fhir+json"
# _format values this server honours, and the media type each answers with.
FORMATS = {
    "json": FHIR_JSON,
    "application/fhir+json": FHIR_JSON,
    "fhir+json": FHIR_JSON,
    "application/json": "application/json",
}

router = APIRouter(prefix="/fhir", include_in_schema=False)


def base_of(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"


def params_of(request: Request) -> list[tuple[str, str]]:
    return list(request.query_params.multi_items())


def patient_addressed(request: Request) -> UUID | None:
    """The patient a FHIR request names (its ``patient``, ``_id`` or ``beneficiary``, a
    Patient id, or an entry's id), so that a refusal is recorded where that patient's
    auditors see it."""
    in_body = getattr(request.state, "fhir_patient", None)  # a create's subject
    if in_body is not None:
        return UUID(str(in_body))
    entry = parse_resource_id(str(request.path_params.get("resource_id", "")))
    if entry is not None:
        return entry[0]
    query = request.query_params
    named = query.get("patient") or query.get("_id") or query.get("beneficiary")
    for text in (request.path_params.get("patient_id"), named):
        try:
            return UUID(str(text).removeprefix("Patient/"))
        except ValueError:
            continue
    return None


def media_type(request: Request) -> str | Response:
    """The media type ``_format`` asks for; an unsupported one is 406, before any read."""
    wanted = request.query_params.get("_format")
    if wanted is None:
        return FHIR_JSON
    found = FORMATS.get(wanted.split(";")[0].strip().lower())
    if found is None:
        outcome = operation_outcome("not-supported", "_format: this server speaks JSON only")
        return Response(render(outcome), status_code=406, media_type=FHIR_JSON)
    return found


def fhir(use_cases: UseCases) -> FhirReads:
    return FhirReads(use_cases.ledger, use_cases.charts)


def answer(request: Request, read: Callable[[], Disclosed]) -> Response:
    kind = media_type(request)
    if isinstance(kind, Response):
        return kind
    disclosure = read()
    headers = {"X-Access-Id": str(disclosure.access_id)}
    if disclosure.version is not None:
        headers["ETag"] = f'W/"{disclosure.version}"'
    return Response(disclosure.body, media_type=kind, headers=headers)


@router.get("/metadata")
def metadata(request: Request, settings: AppSettings) -> Response:
    kind = media_type(request)
    if isinstance(kind, Response):
        return kind
    statement = capability_statement(
        base_of(request), settings.smart_authorization_endpoint, settings.smart_token_endpoint
    )
    return Response(render(statement), media_type=kind)


@router.get("/Patient")
def search_patients(request: Request, ctx: Context, use_cases: UseCases) -> Response:
    reads = fhir(use_cases)
    return answer(request, lambda: reads.search_patients(ctx, base_of(request), params_of(request)))


@router.get("/Patient/{patient_id}")
def read_patient(patient_id: str, request: Request, ctx: Context, use_cases: UseCases) -> Response:
    try:
        found = UUID(patient_id)
    except ValueError:
        raise NotFound("patient") from None
    reads = fhir(use_cases)
    return answer(request, lambda: reads.patient(ctx, found, base_of(request), []))


@router.get("/Patient/{patient_id}/$everything")
def patient_everything(
    patient_id: str, request: Request, ctx: Context, use_cases: UseCases
) -> Response:
    try:
        found = UUID(patient_id)
    except ValueError:
        raise NotFound("patient") from None
    reads = fhir(use_cases)
    base, params = base_of(request), params_of(request)
    return answer(request, lambda: everything(reads, ctx, found, base, params))


@router.get("/Consent")
def search_consents(request: Request, ctx: Context, use_cases: UseCases) -> Response:
    reads = fhir(use_cases)
    base, params = base_of(request), params_of(request)
    return answer(request, lambda: consents(reads, ctx, base, params))


@router.get("/Consent/{resource_id}")
def read_consent(resource_id: str, request: Request, ctx: Context, use_cases: UseCases) -> Response:
    reads = fhir(use_cases)
    base, params = base_of(request), params_of(request)
    return answer(request, lambda: consents(reads, ctx, base, params, resource_id))


@router.get("/Coverage")
def search_coverage(request: Request, ctx: Context, use_cases: UseCases) -> Response:
    reads = fhir(use_cases)
    base, params = base_of(request), params_of(request)
    return answer(request, lambda: coverages(reads, ctx, base, params))


@router.get("/Coverage/{resource_id}")
def read_coverage(
    resource_id: str, request: Request, ctx: Context, use_cases: UseCases
) -> Response:
    reads = fhir(use_cases)
    base, params = base_of(request), params_of(request)
    return answer(request, lambda: coverages(reads, ctx, base, params, resource_id))


def _patient_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise NotFound("patient") from None


@router.get("/Patient/{patient_id}/_history")
def patient_versions(
    patient_id: str, request: Request, ctx: Context, use_cases: UseCases
) -> Response:
    found, reads = _patient_id(patient_id), fhir(use_cases)
    base, params = base_of(request), params_of(request)
    return answer(request, lambda: patient_history(reads, ctx, found, base, params))


@router.get("/Patient/{patient_id}/_history/{vid}")
def patient_version(
    patient_id: str, vid: str, request: Request, ctx: Context, use_cases: UseCases
) -> Response:
    found, reads = _patient_id(patient_id), fhir(use_cases)
    base, params = base_of(request), params_of(request)
    return answer(request, lambda: patient_history(reads, ctx, found, base, params, vid))


def _history(resource_type: str) -> Callable[..., Response]:
    def history(resource_id: str, request: Request, ctx: Context, use_cases: UseCases) -> Response:
        return _versions(resource_type, resource_id, None, request, ctx, fhir(use_cases))

    return history


def _version(resource_type: str) -> Callable[..., Response]:
    def version(
        resource_id: str, vid: str, request: Request, ctx: Context, use_cases: UseCases
    ) -> Response:
        return _versions(resource_type, resource_id, vid, request, ctx, fhir(use_cases))

    return version


def _versions(
    resource_type: str,
    resource_id: str,
    vid: str | None,
    request: Request,
    ctx: RequestContext,
    reads: FhirReads,
) -> Response:
    base, params = base_of(request), params_of(request)
    return answer(
        request, lambda: entry_history(reads, ctx, resource_type, base, resource_id, params, vid)
    )


def _search(resource_type: str) -> Callable[..., Response]:
    def search(request: Request, ctx: Context, use_cases: UseCases) -> Response:
        reads = fhir(use_cases)
        base, params = base_of(request), params_of(request)
        return answer(request, lambda: reads.search_entries(ctx, resource_type, base, params))

    return search


def _read(resource_type: str) -> Callable[..., Response]:
    def read(resource_id: str, request: Request, ctx: Context, use_cases: UseCases) -> Response:
        reads = fhir(use_cases)
        base = base_of(request)
        return answer(request, lambda: reads.read_entry(ctx, resource_type, base, resource_id))

    return read


for _type in ENTRY_TYPES:
    router.add_api_route(f"/{_type}", _search(_type), methods=["GET"])
    router.add_api_route(f"/{_type}/{{resource_id}}", _read(_type), methods=["GET"])
    router.add_api_route(f"/{_type}/{{resource_id}}/_history", _history(_type), methods=["GET"])
    router.add_api_route(
        f"/{_type}/{{resource_id}}/_history/{{vid}}", _version(_type), methods=["GET"]
    )
