"""Small builders shared by the contract stories."""

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID

from api.container import Container
from application.context import Actor, RequestContext, Role
from domain.values import Coding, ContactDetails, HumanName, Quantity
from domain.vocabulary import AdministrativeSex, EntryKind, Plan, Purpose
from tests.conftest import ORG

HEART_RATE = Coding("http://loinc.org", "8867-4", "Heart rate")


def ctx(
    role: Role,
    actor_id: str = "actor-1",
    org: str = ORG,
    patient: UUID | None = None,
    key: str | None = None,
    fingerprint: str = "",
) -> RequestContext:
    return RequestContext(
        actor=Actor(actor_id, role, org, patient),
        purpose=Purpose.TREAT,
        request_id=uuid.uuid4().hex,
        idempotency_key=key,
        request_fingerprint=fingerprint,
    )


CLINICIAN = ctx(Role.CLINICIAN, "dr-who")
ADMIN = ctx(Role.ADMIN, "admin-1")


def register(services: Container, mrn: str = "MRN-1") -> UUID:
    outcome = services.patients.register(
        CLINICIAN,
        mrn=mrn,
        name=HumanName("Ada", "Example"),
        birth_date=date(1984, 7, 12),
        sex=AdministrativeSex.FEMALE,
        contact=ContactDetails(phone="+1-555-0100"),
    )
    return UUID(outcome.result["id"])


def record_heart_rate(services: Container, patient_id: UUID, bpm: int = 72) -> UUID:
    outcome = services.patients.record_entry(
        CLINICIAN,
        patient_id,
        kind=EntryKind.OBSERVATION,
        code=HEART_RATE,
        value=Quantity(Decimal(bpm), "/min"),
        effective_at=datetime(2026, 11, 20, 9, 30, tzinfo=UTC),
        modality=None,
        labels=frozenset(),
    )
    return UUID(outcome.result["entry_id"])


def enrol(services: Container, patient_id: UUID, sponsor: str | None = None) -> UUID:
    outcome = services.memberships.enrol(
        ADMIN,
        patient_id=patient_id,
        plan=Plan.EMPLOYER if sponsor else Plan.INDIVIDUAL,
        sponsor_id=sponsor,
        annual_fee_cents=0 if sponsor else 19900,
        starts_on=date(2026, 1, 1),
        ends_on=date(2026, 12, 31),
    )
    return UUID(outcome.result["id"])
