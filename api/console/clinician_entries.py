"""The clinician's forms: record an entry in the open chart, and amend one.

Both write through the API's use cases (``Patients.record_entry`` and ``amend_entry``)
with the chart's version as the form was shown as If-Match: a form left open while a
colleague changed the chart is refused (412) with what happened, and nothing is saved.
The amend form shows the entry as a timeline read discloses it now (its own access
record), never from a copy kept in the session.
"""

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from api.console.clinician import (
    BASE,
    KINDS,
    LABELS,
    charted,
    clinician,
    open_patient,
    read_timeline,
)
from api.console.sessions import Session
from api.console.web import checked_form, page, use_cases
from application.errors import PreconditionFailed
from domain.errors import InvalidValue
from domain.values import Coding, EntryValue, Quantity, TextValue
from domain.vocabulary import EntryKind, SensitivityLabel

router = APIRouter(prefix=BASE, include_in_schema=False)

SYSTEMS = {
    "loinc": "http://loinc.org",
    "snomed": "http://snomed.info/sct",
    "rxnorm": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "icd10": "http://hl7.org/fhir/sid/icd-10",
}


def _text(form: dict[str, str], name: str, label: str, most: int) -> str:
    value = form.get(name, "").strip()
    if len(value) > most:
        raise InvalidValue(label, f"must be at most {most} characters")
    return value


def form_code(form: dict[str, str], *, required: bool) -> Coding | None:
    system = SYSTEMS.get(form.get("system", ""), "")
    code = _text(form, "code", "code", 64)
    display = _text(form, "display", "name", 500)
    if not (system or code or display) and not required:
        return None
    if not (system and code and display):
        raise InvalidValue("code", "choose a code system, and give the code and its name")
    return Coding(system, code, display)


def form_value(form: dict[str, str]) -> EntryValue | None:
    quantity, unit = form.get("quantity", "").strip(), _text(form, "unit", "unit", 64)
    text = _text(form, "text", "text", 10_000)
    if quantity and text:
        raise InvalidValue("value", "give a number with its unit, or a text, not both")
    if quantity:
        try:
            number = Decimal(quantity)
        except InvalidOperation:
            raise InvalidValue("number", "must be a number such as 72 or 5.4") from None
        if not number.is_finite() or not unit:
            raise InvalidValue("number", "needs a finite value and its unit")
        return Quantity(number, unit)
    return TextValue(text) if text else None


def form_time(form: dict[str, str], *, required: bool) -> datetime | None:
    """A datetime-local field, read as UTC (the console shows UTC throughout)."""
    text = form.get("effective_at", "").strip()
    if not text:
        if required:
            raise InvalidValue("when", "give the date and time (UTC)")
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidValue("when", "must be a date and time such as 2026-11-20T09:30") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def form_labels(form: dict[str, str], names: list[str]) -> frozenset[SensitivityLabel]:
    return frozenset(SensitivityLabel(name) for name in names if name in LABELS)


def form_version(form: dict[str, str]) -> int:
    try:
        return int(form.get("version", ""))
    except ValueError:
        raise InvalidValue("form", "has no chart version; reload the chart") from None


def stale(request: Request, session: Session, error: PreconditionFailed) -> Response:
    return page(
        "clinician/stale.html",
        request,
        session,
        412,
        expected=error.expected,
        actual=error.actual,
        who=session.clinician.get("who"),
    )


@router.get("/entries/new")
async def new_entry(request: Request) -> Response:
    async def show(session: Session) -> Response:
        clinician(request, session)
        open_patient(session)
        return page(
            "clinician/record.html",
            request,
            session,
            who=session.clinician.get("who"),
            version=session.clinician.get("version"),
            kinds=KINDS,
            labels=LABELS,
            systems=SYSTEMS,
        )

    return await charted(request, show)


@router.post("/entries")
async def record(request: Request) -> Response:
    async def write(session: Session) -> Response:
        form = await checked_form(request, session)
        labels = (await request.form()).getlist("labels")
        ctx = clinician(request, session)
        patient = open_patient(session)
        kind = form.get("kind", "")
        if kind not in KINDS:
            raise InvalidValue("kind", f"must be one of {', '.join(KINDS)}")
        code = form_code(form, required=True)
        assert code is not None
        version = form_version(form)
        try:
            done = await run_in_threadpool(
                lambda: use_cases(request).patients.record_entry(
                    ctx,
                    patient,
                    kind=EntryKind(kind),
                    code=code,
                    value=form_value(form),
                    effective_at=form_time(form, required=True) or datetime.now(UTC),
                    modality=None,
                    labels=form_labels(form, [str(v) for v in labels]),
                    expected_version=version,
                )
            )
        except PreconditionFailed as error:
            return stale(request, session, error)
        return _written(session, done.disclose().access_id, done.result, done.position, "recorded")

    return await charted(request, write)


def _written(
    session: Session, access_id: UUID, result: dict[str, Any], position: int, what: str
) -> Response:
    session.position = max(session.position or 0, position)
    session.clinician["version"] = int(result["version"])
    session.clinician["cursors"] = [None]
    session.notice = f"Entry {what} (access record {access_id})."
    return RedirectResponse(f"{BASE}/timeline", status_code=303)


@router.get("/entries/{entry_id}/amend")
async def amend_form(
    request: Request,
    entry_id: UUID,
    number: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
) -> Response:
    """The entry as the timeline page it was on discloses it now, in a form to amend."""

    async def show(session: Session) -> Response:
        body, access_id = await run_in_threadpool(read_timeline, request, session, number)
        found = [entry for entry in body["entries"] if entry["entry_id"] == str(entry_id)]
        if not found:
            raise InvalidValue("entry", "is no longer on that page of the timeline; reload it")
        entry = found[0]
        value = entry.get("value") or {}
        return page(
            "clinician/amend.html",
            request,
            session,
            entry=entry,
            value=value,
            system=next((k for k, v in SYSTEMS.items() if v == entry["code"]["system"]), ""),
            when=entry["effective_at"][:16],
            access_id=access_id,
            who=session.clinician.get("who"),
            version=session.clinician.get("version"),
            labels=LABELS,
            systems=SYSTEMS,
            number=number,
        )

    return await charted(request, show)


@router.post("/entries/{entry_id}/amend")
async def amend(request: Request, entry_id: UUID) -> Response:
    async def write(session: Session) -> Response:
        form = await checked_form(request, session)
        labels = [str(v) for v in (await request.form()).getlist("labels")]
        ctx = clinician(request, session)
        patient = open_patient(session)
        reason = _text(form, "reason", "reason", 2000)
        if not reason:
            raise InvalidValue("reason", "say why the entry is amended")
        version = form_version(form)
        try:
            done = await run_in_threadpool(
                lambda: use_cases(request).patients.amend_entry(
                    ctx,
                    patient,
                    entry_id,
                    reason=reason,
                    code=form_code(form, required=False),
                    value=form_value(form),
                    effective_at=form_time(form, required=False),
                    modality=None,
                    labels=form_labels(form, labels),
                    expected_version=version,
                )
            )
        except PreconditionFailed as error:
            return stale(request, session, error)
        return _written(session, done.disclose().access_id, done.result, done.position, "amended")

    return await charted(request, write)
