"""Patients: registration, demographics and clinical entries."""

import functools
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.dependencies import Context, ExpectedVersion, MinPosition, UseCases
from api.openapi_document import documented
from api.openapi_models import (
    Demographics,
    EntryWritten,
    Erased,
    SearchResults,
    StreamWritten,
    Timeline,
)
from api.openapi_models_audit import Accounting
from api.rendering import disclosed_write, written
from api.responses import JSON, disclosed
from api.schemas import (
    AmendEntryIn,
    DeceasedIn,
    EraseIn,
    ReasonIn,
    RecordEntryIn,
    RegisterPatientIn,
    UpdateDemographicsIn,
    value_to_domain,
)
from application.charts.patients import Patients
from application.context import RequestContext
from domain.errors import InvalidValue
from domain.identifiers import MRN_SYSTEM_MAX_LENGTH
from domain.vocabulary import EntryKind

router = APIRouter(prefix="/v1/patients", tags=["patients"])

# A clinical write: the chart is addressed, may be erased, is versioned (If-Match).
CHART_WRITE = (404, 409, 410, 412, 413)


def moment(field: str, text: str | None, *, end_of_day: bool) -> datetime | None:
    """A date means the whole day (``until`` includes it); a date-time needs a zone."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime.combine(day, time(0), tzinfo=UTC)
            if end_of_day and day == date.max:
                return datetime.max.replace(tzinfo=UTC)  # the last day has no next day
            return start + timedelta(days=1) if end_of_day else start
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidValue(field, "must be a date or an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        raise InvalidValue(field, "must carry a time zone")
    return parsed


@router.post(
    "",
    summary="Register a patient",
    **documented(StreamWritten, 201, 409, 413, disclosed=True, etag=True),
)
def register_patient(body: RegisterPatientIn, ctx: Context, use_cases: UseCases) -> Response:
    registered = use_cases.patients.register(
        ctx,
        mrn=body.mrn,
        name=body.name.to_domain(),
        birth_date=body.birth_date,
        sex=body.sex,
        contact=body.contact.to_domain() if body.contact else None,
    )
    return disclosed_write(registered, 201)


@router.get(
    "",
    summary="Find patients by MRN, or by family name and birth date",
    **documented(SearchResults, 200, disclosed=True),
)
def search_patients(
    ctx: Context,
    use_cases: UseCases,
    min_position: MinPosition = None,
    mrn: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    mrn_system: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=MRN_SYSTEM_MAX_LENGTH,
            description="Narrows `mrn` to one identifier system; without it, any system",
        ),
    ] = None,
    family: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    birth_date: Annotated[date | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Exact match through blind indexes, within the actor's organisation, in pages of
    `limit` (pass `next_cursor` back as `cursor`)."""
    return disclosed(
        use_cases.charts.search(
            ctx,
            mrn=mrn,
            mrn_system=mrn_system,
            family=family,
            birth_date=birth_date,
            limit=limit,
            min_position=min_position,
            cursor=cursor,
        )
    )


@router.get(
    "/{patient_id}/timeline",
    summary="A page of the patient's timeline",
    **documented(Timeline, 200, 404, 410, disclosed=True),
)
def read_timeline(
    patient_id: UUID,
    ctx: Context,
    use_cases: UseCases,
    min_position: MinPosition = None,
    kind: Annotated[EntryKind | None, Query()] = None,
    since: Annotated[str | None, Query(description="a date or a date-time with zone")] = None,
    until: Annotated[str | None, Query(description="a date (inclusive) or a date-time")] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Response:
    """Entries ordered by effective time; amended entries show their latest version."""
    return disclosed(
        use_cases.charts.timeline(
            ctx,
            patient_id,
            kind=kind.value if kind else None,
            since=moment("since", since, end_of_day=False),
            until=moment("until", until, end_of_day=True),
            cursor=cursor,
            limit=limit,
            min_position=min_position,
        )
    )


@router.get(
    "/{patient_id}/disclosures",
    summary="Accounting of disclosures (HIPAA 164.528): auditor, or the patient",
    **documented(Accounting, 200, 404, 410),
)
def accounting_of_disclosures(
    patient_id: UUID,
    ctx: Context,
    use_cases: UseCases,
    min_position: MinPosition = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> JSON:
    return JSON(
        use_cases.audit.disclosures(ctx, patient_id, min_position, cursor=cursor, limit=limit)
    )


@router.get(
    "/{patient_id}",
    summary="Read a patient's demographics",
    **documented(Demographics, 200, 404, 410, disclosed=True, etag=True),
)
def read_patient(patient_id: UUID, ctx: Context, use_cases: UseCases) -> Response:
    return disclosed(use_cases.patients.demographics(ctx, patient_id))


@router.patch(
    "/{patient_id}",
    summary="Update demographics",
    **documented(StreamWritten, 200, *CHART_WRITE, disclosed=True, etag=True),
)
def update_demographics(
    patient_id: UUID,
    body: UpdateDemographicsIn,
    ctx: Context,
    use_cases: UseCases,
    expected: ExpectedVersion,
) -> Response:
    write = use_cases.patients.update_demographics(
        ctx,
        patient_id,
        name=body.name.to_domain() if body.name else None,
        birth_date=body.birth_date,
        sex=body.sex,
        contact=body.contact.to_domain() if body.contact else None,
        expected_version=expected,
    )
    return disclosed_write(write, 200)


@router.post(
    "/{patient_id}/entries",
    summary="Record a clinical entry",
    **documented(EntryWritten, 201, *CHART_WRITE, disclosed=True, etag=True),
)
async def record_entry(
    patient_id: UUID,
    body: RecordEntryIn,
    ctx: Context,
    use_cases: UseCases,
    expected: ExpectedVersion,
) -> Response:
    """On the event loop, awaiting its group commit, when nothing needs a store read
    first (``awaited_writes``); otherwise the blocking path, in a worker thread."""
    patients = use_cases.patients
    entry = {
        "kind": body.kind,
        "code": body.code.to_domain(),
        "value": value_to_domain(body.value),
        "effective_at": body.effective_at,
        "modality": body.modality,
        "labels": frozenset(body.labels),
        "expected_version": expected,
    }
    write = await patients.record_entry_awaited(ctx, patient_id, **entry)
    if write is not None:
        return disclosed_write(write, 201)  # its record committed with it: nothing waits
    # Rendered in the thread too: a repeated Idempotency-Key's answer records its
    # disclosure before it leaves, a group-commit wait the loop must not sit in.
    blocking = functools.partial(_recorded_entry, patients, ctx, patient_id, entry)
    return await run_in_threadpool(blocking)


def _recorded_entry(
    patients: Patients, ctx: RequestContext, patient_id: UUID, entry: dict[str, Any]
) -> Response:
    return disclosed_write(patients.record_entry(ctx, patient_id, **entry), 201)


@router.post(
    "/{patient_id}/entries/{entry_id}/amendments",
    summary="Amend an entry (supersedes it; the original stays in the log)",
    **documented(EntryWritten, 201, *CHART_WRITE, disclosed=True, etag=True),
)
def amend_entry(
    patient_id: UUID,
    entry_id: UUID,
    body: AmendEntryIn,
    ctx: Context,
    use_cases: UseCases,
    expected: ExpectedVersion,
) -> Response:
    write = use_cases.patients.amend_entry(
        ctx,
        patient_id,
        entry_id,
        reason=body.reason,
        code=body.code.to_domain() if body.code else None,
        value=value_to_domain(body.value),
        effective_at=body.effective_at,
        modality=body.modality,
        labels=frozenset(body.labels) if body.labels is not None else None,
        expected_version=expected,
    )
    return disclosed_write(write, 201)


@router.post(
    "/{patient_id}/entries/{entry_id}/entered-in-error",
    summary="Mark an entry as entered in error",
    **documented(EntryWritten, 201, *CHART_WRITE, disclosed=True, etag=True),
)
def mark_entered_in_error(
    patient_id: UUID,
    entry_id: UUID,
    body: ReasonIn,
    ctx: Context,
    use_cases: UseCases,
    expected: ExpectedVersion,
) -> Response:
    write = use_cases.patients.mark_entered_in_error(
        ctx, patient_id, entry_id, reason=body.reason, expected_version=expected
    )
    return disclosed_write(write, 201)


@router.post(
    "/{patient_id}/death",
    summary="Record the patient's death",
    **documented(StreamWritten, 201, *CHART_WRITE, disclosed=True, etag=True),
)
def record_death(
    patient_id: UUID,
    body: DeceasedIn,
    ctx: Context,
    use_cases: UseCases,
    expected: ExpectedVersion,
) -> Response:
    write = use_cases.patients.record_death(
        ctx, patient_id, deceased_at=body.deceased_at, expected_version=expected
    )
    return disclosed_write(write, 201)


@router.post(
    "/{patient_id}/erase",
    summary="Erase a patient (crypto-shredding)",
    **documented(Erased, 202, 404, 409, 410, 413),
    description=(
        "Admin only. Records a PHI-free `Erased` event, then destroys the patient's data "
        "key: every later read of the patient answers 410, and none of their events, "
        "snapshots or read-model rows can be decrypted. The hash chain still verifies."
    ),
)
def erase_patient(patient_id: UUID, body: EraseIn, ctx: Context, use_cases: UseCases) -> JSON:
    outcome = use_cases.erasure.erase(ctx, patient_id, legal_basis=body.legal_basis)
    return written(outcome, 202)
