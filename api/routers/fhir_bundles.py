"""``POST /fhir``: transaction and batch Bundles (docs/fhir.md, "Transactions").

A transaction is one commit (``application.fhir.transactions``); a refusal is one
OperationOutcome naming the entry, and nothing is written. A batch runs each entry as
its own FHIR write (``application.fhir.writes``) and answers each entry's outcome.
"""

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.dependencies import Context, UseCases
from api.routers.fhir import media_type
from api.routers.fhir_writes import resource_of, writes
from application import errors
from application.access.access_log import render
from application.context import RequestContext
from application.fhir.bundles import MISTYPED, READ_BACK_AS, bundle_kind
from application.fhir.imports import NOT_HELD, not_held, note_of, trimmed
from application.fhir.intake import addressed_patient
from application.fhir.mapped import as_held
from application.fhir.medications import resolved
from application.fhir.resources import operation_outcome
from application.fhir.transaction_answers import not_kept_outcome
from application.fhir.transactions import Transactions
from application.fhir.writes import FhirWrites, Found
from domain import errors as domain_errors
from domain.errors import InvalidValue
from domain.identifiers import MrnInUse

router = APIRouter(prefix="/fhir", include_in_schema=False)

# A batch entry's failure as its HTTP status, as api.problems answers a request.
STATUS_OF = (
    (errors.NotFound, "404 Not Found"),
    (errors.Gone, "410 Gone"),
    (errors.PreconditionFailed, "412 Precondition Failed"),
    (errors.VersionConflict, "409 Conflict"),
    (MrnInUse, "409 Conflict"),
    (domain_errors.InvalidValue, "422 Unprocessable Entity"),
    (domain_errors.DomainError, "422 Unprocessable Entity"),
)


@router.post("")
async def bundle(request: Request, ctx: Context, use_cases: UseCases) -> Response:
    kind = media_type(request)
    if isinstance(kind, Response):
        return kind
    body = await resource_of(request, "Bundle")
    if isinstance(body, Response):
        return body
    if bundle_kind(body) == "transaction":
        request.state.fhir_patient = _addressed(body)
        transactions = Transactions(use_cases.patients)
        disclosed = await run_in_threadpool(transactions.transaction, ctx, body)
        headers = {"X-Access-Id": str(disclosed.access_id)} if disclosed.access_id else {}
        return Response(disclosed.body, media_type=kind, headers=headers)
    if ctx.idempotency_key:
        raise InvalidValue("Idempotency-Key", "a batch's entries are writes of their own")
    fhir = writes(use_cases)
    entries = [
        await run_in_threadpool(batch_entry, ctx, fhir, index, entry)
        for index, entry in enumerate(body.get("entry", []))
    ]
    answer: dict[str, Any] = {"resourceType": "Bundle", "type": "batch-response"}
    if entries:
        answer["entry"] = entries
    return Response(render(answer), media_type=kind)


def _addressed(body: dict[str, Any]) -> UUID | None:
    """The existing patient a transaction writes to, for the record of a refusal."""
    for entry in body.get("entry", []):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict):
            found = addressed_patient(str(resource.get("resourceType")), resource)
            if found is not None:
                return found
    return None


def batch_entry(ctx: RequestContext, fhir: FhirWrites, index: int, entry: Any) -> dict[str, Any]:
    """One entry's write, and its outcome; a refusal is recorded as a request's is."""
    resource = entry.get("resource") if isinstance(entry, dict) else None
    try:
        return _write(ctx, fhir, index, entry)
    except errors.Forbidden as refused:
        if not refused.recorded:
            kind = resource.get("resourceType", "") if isinstance(resource, dict) else ""
            patient = addressed_patient(str(kind), resource) if isinstance(resource, dict) else None
            fhir.charts.gate.refuse_addressed(
                ctx, str(refused), patient, "write", {"route": "/fhir", "entry": index}
            )
        return _failed("403 Forbidden", "forbidden", str(refused))
    except errors.StoreUnavailable:
        raise
    except (errors.ApplicationError, domain_errors.DomainError) as error:
        return _refused(index, error)
    except MISTYPED:  # read as FHIR, an element of another JSON type is the entry's error
        return _refused(index, InvalidValue("resource", "an element is not of its FHIR type"))


def _refused(index: int, error: Exception) -> dict[str, Any]:
    for cls, status in STATUS_OF:
        if isinstance(error, cls):
            return _failed(status, "processing", f"Bundle.entry[{index}]: {error}")
    raise error


def _write(ctx: RequestContext, fhir: FhirWrites, index: int, entry: Any) -> dict[str, Any]:
    where = f"Bundle.entry[{index}]"
    if not isinstance(entry, dict) or set(entry) - {"fullUrl", "resource", "request"}:
        raise InvalidValue(where, "takes fullUrl, resource and request")
    resource, call = entry.get("resource"), entry.get("request")
    if not isinstance(resource, dict) or not isinstance(call, dict):
        raise InvalidValue(where, "needs a resource and a request")
    resource_type = str(resource.get("resourceType"))
    if (unkept := _not_kept(resource_type, resource)) is not None:
        return unkept
    if resource_type not in READ_BACK_AS:
        raise InvalidValue(f"{where}.resource", f"{resource_type} is not held by this server")
    # A batch's entries stand alone: a Medication is resolved only when contained.
    resource, named = resolved(resource_type, resource, {})
    resource, notes = trimmed(resource_type, resource)
    notes = named + notes
    method, url = call.get("method"), str(call.get("url", ""))
    read_as = READ_BACK_AS[resource_type]
    if method == "POST" and url == resource_type:
        # A Bundle's POST is a create whatever id it carries (FHIR ignores it there).
        resource = {k: v for k, v in resource.items() if k != "id"}
        if resource_type == "Patient":
            created = fhir.create_patient(ctx, resource, "", None)
            assert not isinstance(created, Found)
        else:
            created = fhir.create_entry(ctx, read_as, as_held(resource_type, resource))
        status = "201 Created"
    elif method == "PUT" and url.startswith(f"{resource_type}/") and url.count("/") == 1:
        created = _update(ctx, fhir, resource_type, url.partition("/")[2], resource)
        status = "200 OK"
    else:
        raise InvalidValue(
            f"{where}.request", f"must be POST {resource_type} or PUT {resource_type}/id"
        )
    created.write.disclose()  # a repeated answer is recorded again, as on its own
    location = f"{created.resource_type}/{created.resource_id}/_history/{created.version}"
    response: dict[str, Any] = {
        "status": status,
        "location": location,
        "etag": f'W/"{created.version}"',
    }
    if notes:
        response["outcome"] = not_kept_outcome(note_of(notes) or "", held=True)
    return {"response": response}


def _update(
    ctx: RequestContext, fhir: FhirWrites, resource_type: str, target: str, resource: Any
) -> Any:
    if resource_type == "Patient":
        try:
            patient_id = UUID(target)
        except ValueError:
            raise errors.NotFound("patient") from None
        return fhir.update_patient(ctx, patient_id, resource, None)
    held = as_held(resource_type, resource)
    return fhir.update_entry(ctx, READ_BACK_AS[resource_type], target, held, None)


def _not_kept(resource_type: str, resource: dict[str, Any]) -> dict[str, Any] | None:
    """An entry accepted and not kept, as in a transaction (docs/fhir.md, "Import")."""
    why = NOT_HELD.get(resource_type) or (
        not_held(resource_type, resource) if resource_type in READ_BACK_AS else None
    )
    if why is None:
        return None
    note = f"{resource_type} is not kept: {why}"
    return {"response": {"status": "200 OK", "outcome": not_kept_outcome(note, held=False)}}


def _failed(status: str, code: str, diagnostics: str) -> dict[str, Any]:
    return {"response": {"status": status, "outcome": operation_outcome(code, diagnostics)}}
