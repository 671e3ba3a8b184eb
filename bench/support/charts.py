"""The benchmarks' workload, written through the domain: patients, their entries,
corrections, directives and memberships, as the service records them.
"""

import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate
from rich.console import Console
from rich.progress import (
    Progress,
)

from application.context import Actor, RequestContext, Role
from application.ledger.ledger import CareLedger
from domain.consent import Consent
from domain.membership import Membership
from domain.patient import Patient
from domain.values import (
    CodedValue,
    Coding,
    ConsentEvidence,
    ContactDetails,
    HumanName,
    Period,
    Provenance,
    Quantity,
    TextValue,
)
from domain.vocabulary import (
    AdministrativeSex,
    EntryKind,
    Modality,
    Plan,
    Purpose,
    SensitivityLabel,
    SigningMethod,
)

ORG = "org-main"
HEART_RATE = Coding(system="http://loinc.org", code="8867-4", display="Heart rate")
DIAGNOSIS = Coding(system="http://snomed.info/sct", code="38341003", display="Hypertension")
FINDING = Coding(system="http://snomed.info/sct", code="271737000", display="Anaemia")
NOTE = Coding(system="http://loinc.org", code="11506-3", display="Progress note")
VISIT = Coding(system="http://snomed.info/sct", code="185349003", display="Encounter")
NO_LABELS: frozenset[SensitivityLabel] = frozenset()
CLINICIAN = RequestContext(
    actor=Actor(id="clinician-7", role=Role.CLINICIAN, org=ORG),
    purpose=Purpose.TREAT,
    request_id="bench-projections",
)
ADMIN = RequestContext(
    actor=Actor(id="admin-7", role=Role.ADMIN, org=ORG),
    purpose=Purpose.TREAT,
    request_id="bench-projections",
)

stderr = Console(stderr=True)


def now() -> datetime:
    return datetime.now(UTC)


class Serial:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> int:
        self.n += 1
        return self.n


def new_patient(n: int, by: Provenance) -> tuple[Patient, Consent]:
    patient = Patient.register(
        patient_id=uuid4(),
        consent_id=uuid4(),
        organisation_id=ORG,
        mrn=f"MRN-{n:07d}",
        name=HumanName(given="Ada", family=f"Example{n % 97}"),
        birth_date=date(1950 + n % 50, 1 + n % 12, 1 + n % 28),
        sex=AdministrativeSex.FEMALE if n % 2 else AdministrativeSex.MALE,
        contact=ContactDetails(phone="+1-555-0100"),
        by=by,
    )
    return patient, Consent.open(consent_id=patient.consent_id, patient_id=patient.id, by=by)


def record_entry(patient: Patient, n: int, by: Provenance) -> UUID:
    """One of five kinds of entry, in turn; every 9th is labelled."""
    entry_id = uuid4()
    kind, code, value, modality = [
        (EntryKind.OBSERVATION, HEART_RATE, Quantity(Decimal(60 + n % 40), "/min"), None),
        (EntryKind.CONDITION, DIAGNOSIS, CodedValue(DIAGNOSIS), None),
        (EntryKind.NOTE, NOTE, TextValue(f"Seen today, plan reviewed ({n})."), None),
        (EntryKind.ENCOUNTER, VISIT, None, Modality.IN_OFFICE),
        (EntryKind.LAB_RESULT, FINDING, Quantity(Decimal("13.1"), "g/dL"), None),
    ][n % 5]
    patient.record_entry(
        entry_id=entry_id,
        kind=kind,
        code=code,
        value=value,
        effective_at=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=7 * n),
        modality=modality,
        labels=frozenset({SensitivityLabel.MENTAL_HEALTH}) if n % 9 == 0 else NO_LABELS,
        by=by,
    )
    return entry_id


def patient_story(
    n: int, serial: Serial, entries: int, by: Provenance
) -> tuple[list[Aggregate], Patient]:
    """A registration with its consent record, entries, corrections, a directive and
    (every other patient) a membership: about 15 events."""
    patient, consent = new_patient(n, by)
    entry_ids = [record_entry(patient, serial(), by) for _ in range(entries)]
    patient.amend_entry(
        entry_id=entry_ids[0],
        reason="transcription error",
        value=Quantity(Decimal(72), "/min"),
        labels=NO_LABELS,
        by=by,
    )
    if n % 3 == 0:
        patient.mark_entered_in_error(entry_id=entry_ids[-1], reason="wrong patient", by=by)
    consent.grant_directive(
        directive_id=uuid4(),
        grantee=ORG,
        purposes=frozenset({Purpose.TREAT}),
        labels=frozenset({SensitivityLabel.MENTAL_HEALTH}),
        period=Period(start=date(2024, 1, 1)),
        evidence=ConsentEvidence(
            form_id="consent-form-1",
            form_version="2024-01",
            text_sha256="0" * 64,
            method=SigningMethod.ELECTRONIC,
            recorded_by=by.actor_id,
        ),
        by=by,
    )
    aggregates: list[Aggregate] = [patient, consent]
    if n % 2 == 0:
        aggregates.append(
            Membership.enrol(
                membership_id=uuid4(),
                patient_id=patient.id,
                organisation_id=ORG,
                plan=Plan.INDIVIDUAL,
                sponsor_id=None,
                annual_fee_cents=12_000,
                starts_on=date(2026, 1, 1),
                ends_on=date(2027, 1, 1),
                by=by,
            )
        )
    return aggregates, patient


def head(ledger: CareLedger) -> int:
    return ledger.recorder.max_notification_id() or 0


def fill(
    ledger: CareLedger, target: int, progress: Progress, serial: Serial
) -> tuple[dict[str, Any], list[UUID]]:
    """Patients' stories, ~10 patients per save, until the log holds ``target`` events."""
    task = progress.add_task("P1: writing the log", total=target)
    patient_ids: list[UUID] = []
    started = time.perf_counter()
    while (have := head(ledger)) < target:
        by = Provenance("clinician-7", now())
        batch: list[Aggregate] = []
        for _ in range(10):
            aggregates, patient = patient_story(serial(), serial, 10, by)
            batch += aggregates
            patient_ids.append(patient.id)
        ledger.save(*batch)
        progress.update(task, completed=min(head(ledger), target))
    seconds = time.perf_counter() - started
    progress.remove_task(task)
    have = head(ledger)
    return {
        "events_in_log": have,
        "patients": len(patient_ids),
        "write_events_per_s": round(have / seconds, 1),
    }, patient_ids


def chart_of_100(n: int) -> Patient:
    by = Provenance("importer", datetime.now(UTC))
    patient = Patient.register(
        patient_id=uuid4(),
        consent_id=uuid4(),
        organisation_id=ORG,
        mrn=f"MRN-W2-{n}",
        name=HumanName("Ada", f"Import{n}"),
        birth_date=date(1960, 1, 1 + n % 28),
        sex=AdministrativeSex.FEMALE,
        contact=None,
        by=by,
    )
    heart_rate = Coding("http://loinc.org", "8867-4", "Heart rate")
    for i in range(99):
        patient.record_entry(
            entry_id=uuid4(),
            kind=EntryKind.OBSERVATION,
            code=heart_rate,
            value=Quantity(Decimal(60 + i % 40), "/min"),
            effective_at=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=i),
            modality=None,
            labels=frozenset(),
            by=by,
        )
    return patient


def write_chart(ledger: CareLedger, entries: int, serial: Serial, progress: Progress) -> UUID:
    by = Provenance("clinician-7", now())
    patient, consent = new_patient(serial(), by)
    ledger.save(patient, consent)
    task = progress.add_task(f"R2: chart of {entries:,} entries", total=entries)
    written = 0
    while written < entries:
        chunk = min(500, entries - written)
        by = Provenance("clinician-7", now())
        for _ in range(chunk):
            n = serial()
            patient.record_entry(
                entry_id=uuid4(),
                kind=EntryKind.OBSERVATION,
                code=HEART_RATE,
                value=Quantity(Decimal(60 + n % 40), "/min"),
                effective_at=datetime(2020, 1, 1, tzinfo=UTC) + timedelta(minutes=n),
                modality=None,
                labels=NO_LABELS,
                by=by,
            )
        ledger.save(patient)
        written += chunk
        progress.update(task, completed=written)
    progress.remove_task(task)
    return patient.id


T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def registration(n: int, patient_id: UUID) -> Patient:
    return Patient.register(
        patient_id=patient_id,
        consent_id=uuid4(),
        organisation_id="org-main",
        mrn=f"MRN-{n:07d}",
        name=HumanName(given="Ada", family="Example"),
        birth_date=date(1984, 7, 12),
        sex=AdministrativeSex.FEMALE,
        contact=ContactDetails(phone="+1-555-0100"),
        by=Provenance("registrar-1", T0),
    )


def record_heart_rate(patient: Patient, n: int) -> None:
    patient.record_entry(
        entry_id=uuid4(),
        kind=EntryKind.OBSERVATION,
        code=HEART_RATE,
        value=Quantity(Decimal(60 + n % 40), "/min"),
        effective_at=T0 + timedelta(minutes=n),
        modality=None,
        labels=NO_LABELS,
        by=Provenance("clinician-7", T0 + timedelta(minutes=n)),
    )


def under_care(container: Any, patient_id: UUID) -> None:
    """An active membership from yesterday for a year: clinicians read within one."""
    today = datetime.now(UTC).date()
    container.memberships.enrol(
        ADMIN,
        patient_id=patient_id,
        plan=Plan.INDIVIDUAL,
        sponsor_id=None,
        annual_fee_cents=0,
        starts_on=today - timedelta(days=1),
        ends_on=today + timedelta(days=365),
    )
