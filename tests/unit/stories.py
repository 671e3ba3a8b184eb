"""Given/When/Then helpers for the domain stories.

``given`` replays an aggregate's events into a fresh object, as a repository would, so
the "when" step always acts on state rebuilt from the log and never on leftovers of
the commands that set the scene. ``then`` returns only the events the "when" step
produced.
"""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate

from domain.patient import Patient
from domain.values import Coding, ContactDetails, HumanName, Provenance, Quantity
from domain.vocabulary import AdministrativeSex, EntryKind, SensitivityLabel

A = TypeVar("A", bound=Aggregate)

# Fixed instants: the domain never reads the clock, and neither do its tests.
T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
TODAY = T0.date()
CLINICIAN = "clinician-7"
ORG = "org-main"
HEART_RATE = Coding(system="http://loinc.org", code="8867-4", display="Heart rate")
NO_LABELS: frozenset[SensitivityLabel] = frozenset()


def at(days: int = 0, *, actor: str = CLINICIAN) -> Provenance:
    """Who acted and when, ``days`` after T0."""
    return Provenance(actor_id=actor, occurred_at=T0 + timedelta(days=days))


def replay(events: list[Any]) -> Any:
    aggregate = None
    for domain_event in events:
        aggregate = domain_event.mutate(aggregate)
    return aggregate


def given(aggregate: A) -> A:
    """The aggregate as rebuilt from the events it has produced so far."""
    rebuilt: A = replay(list(aggregate.collect_events()))
    assert rebuilt == aggregate
    return rebuilt


def then(aggregate: Aggregate) -> list[Any]:
    """The events the "when" step produced."""
    return list(aggregate.collect_events())


def fields(domain_event: Any, *names: str) -> dict[str, Any]:
    return {name: getattr(domain_event, name) for name in names}


def registered_patient(*, birth_date: date = date(1984, 7, 12)) -> Patient:
    return Patient.register(
        patient_id=uuid4(),
        consent_id=uuid4(),
        organisation_id=ORG,
        mrn="MRN-0001",
        name=HumanName(given="Ada", family="Example"),
        birth_date=birth_date,
        sex=AdministrativeSex.FEMALE,
        contact=ContactDetails(phone="+1-555-0100"),
        by=at(0, actor="registrar-1"),
    )


def record_observation(patient: Patient, entry_id: UUID, days: int = 1) -> None:
    patient.record_entry(
        entry_id=entry_id,
        kind=EntryKind.OBSERVATION,
        code=HEART_RATE,
        value=Quantity(Decimal(72), "/min"),
        effective_at=T0,
        modality=None,
        labels=NO_LABELS,
        by=at(days),
    )


def patient_with_entry() -> tuple[Patient, UUID]:
    """A registered patient with one observation; the scene is still to be given."""
    patient = registered_patient()
    entry_id = uuid4()
    record_observation(patient, entry_id)
    return patient, entry_id
