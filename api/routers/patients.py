"""Patients: registration, demographics and clinical entries."""

from uuid import UUID

from fastapi import APIRouter

from api.dependencies import Context, ExpectedVersion, Services
from api.rendering import WRITE_RESPONSES, written
from api.responses import JSON
from api.schemas import (
    AmendEntryIn,
    DeceasedIn,
    EraseIn,
    ReasonIn,
    RecordEntryIn,
    RegisterPatientIn,
    UpdateDemographicsIn,
    Written,
    value_to_domain,
)

router = APIRouter(prefix="/v1/patients", tags=["patients"], responses=WRITE_RESPONSES)


@router.post("", status_code=201, response_model=Written, summary="Register a patient")
def register_patient(body: RegisterPatientIn, ctx: Context, services: Services) -> JSON:
    outcome = services.patients.register(
        ctx,
        mrn=body.mrn,
        name=body.name.to_domain(),
        birth_date=body.birth_date,
        sex=body.sex,
        contact=body.contact.to_domain() if body.contact else None,
    )
    return written(outcome, 201)


@router.get("/{patient_id}", summary="Read a patient's demographics")
def read_patient(patient_id: UUID, ctx: Context, services: Services) -> JSON:
    demographics = services.patients.demographics(ctx, patient_id)
    return JSON(demographics, headers={"ETag": f'"{demographics["version"]}"'})


@router.patch("/{patient_id}", response_model=Written, summary="Update demographics")
def update_demographics(
    patient_id: UUID,
    body: UpdateDemographicsIn,
    ctx: Context,
    services: Services,
    expected: ExpectedVersion,
) -> JSON:
    outcome = services.patients.update_demographics(
        ctx,
        patient_id,
        name=body.name.to_domain() if body.name else None,
        birth_date=body.birth_date,
        sex=body.sex,
        contact=body.contact.to_domain() if body.contact else None,
        expected_version=expected,
    )
    return written(outcome, 200)


@router.post("/{patient_id}/entries", status_code=201, summary="Record a clinical entry")
def record_entry(
    patient_id: UUID,
    body: RecordEntryIn,
    ctx: Context,
    services: Services,
    expected: ExpectedVersion,
) -> JSON:
    outcome = services.patients.record_entry(
        ctx,
        patient_id,
        kind=body.kind,
        code=body.code.to_domain(),
        value=value_to_domain(body.value),
        effective_at=body.effective_at,
        modality=body.modality,
        labels=frozenset(body.labels),
        expected_version=expected,
    )
    return written(outcome, 201)


@router.post(
    "/{patient_id}/entries/{entry_id}/amendments",
    status_code=201,
    summary="Amend an entry (supersedes it; the original stays in the log)",
)
def amend_entry(
    patient_id: UUID,
    entry_id: UUID,
    body: AmendEntryIn,
    ctx: Context,
    services: Services,
    expected: ExpectedVersion,
) -> JSON:
    outcome = services.patients.amend_entry(
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
    return written(outcome, 201)


@router.post(
    "/{patient_id}/entries/{entry_id}/entered-in-error",
    status_code=201,
    summary="Mark an entry as entered in error",
)
def mark_entered_in_error(
    patient_id: UUID,
    entry_id: UUID,
    body: ReasonIn,
    ctx: Context,
    services: Services,
    expected: ExpectedVersion,
) -> JSON:
    outcome = services.patients.mark_entered_in_error(
        ctx, patient_id, entry_id, reason=body.reason, expected_version=expected
    )
    return written(outcome, 201)


@router.post("/{patient_id}/death", status_code=201, summary="Record the patient's death")
def record_death(
    patient_id: UUID,
    body: DeceasedIn,
    ctx: Context,
    services: Services,
    expected: ExpectedVersion,
) -> JSON:
    outcome = services.patients.record_death(
        ctx, patient_id, deceased_at=body.deceased_at, expected_version=expected
    )
    return written(outcome, 201)


@router.post(
    "/{patient_id}/erase",
    status_code=202,
    summary="Erase a patient (crypto-shredding)",
    description=(
        "Admin only. Records a PHI-free `Erased` event, then destroys the patient's data "
        "key: every later read of the patient answers 410, and none of their events, "
        "snapshots or read-model rows can be decrypted. The hash chain still verifies."
    ),
)
def erase_patient(patient_id: UUID, body: EraseIn, ctx: Context, services: Services) -> JSON:
    outcome = services.erasure.erase(ctx, patient_id, legal_basis=body.legal_basis)
    return written(outcome, 202)
