"""A patient's medical record number: a value in a numbering system, unique per system
within an organisation (docs/events.md, Identifiers).

Uniqueness is a fact of the log, not of one chart: registering a patient also creates
the ``MrnClaim`` stream of their (organisation, system, MRN), and a stream's first
version can be written once only, so of two registrations with one MRN, concurrent or
not, the second is refused. The claim's id is a keyed hash of what it claims, so that
neither ids nor the database hold an MRN in clear.
"""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.chart_rules import check_mrn
from domain.errors import DomainError, InvalidValue
from domain.events import AttributedEvent
from domain.values import Provenance

MRN_SYSTEM_MAX_LENGTH = 200


def default_mrn_system(organisation_id: str) -> str:
    """The system of an MRN given without one: the organisation's own numbering. Every
    MRN registered before systems existed (``Patient.Registered`` v1) is read in it."""
    return f"urn:careledger:{organisation_id}:mrn"


@dataclass(frozen=True)
class MedicalRecordNumber:
    system: str
    value: str

    def __post_init__(self) -> None:
        check_mrn(self.value)
        system = self.system
        if not system or system != system.strip() or len(system) > MRN_SYSTEM_MAX_LENGTH:
            raise InvalidValue(
                "mrn.system",
                f"must be 1 to {MRN_SYSTEM_MAX_LENGTH} characters, without surrounding spaces",
            )

    @classmethod
    def in_organisation(cls, organisation_id: str, value: str) -> "MedicalRecordNumber":
        """A bare MRN, in the organisation's default system."""
        return cls(default_mrn_system(organisation_id), value)


class MrnInUse(DomainError):
    def __init__(self) -> None:
        super().__init__("mrn: another patient of this organisation has this MRN in this system")


class MrnClaim(Aggregate):
    """The claim of one (organisation, system, MRN) by one patient. Its id comes from the
    caller (a keyed hash); its events name the patient, so they are sealed under the
    patient's key, and hold no MRN."""

    id: UUID

    class Event(AttributedEvent):
        pass

    class Claimed(Event, Aggregate.Created):
        patient_id: UUID
        organisation_id: str

    @staticmethod
    def claim(
        *, claim_id: UUID, patient_id: UUID, organisation_id: str, by: Provenance
    ) -> "MrnClaim":
        # The metaclass accepts ``id`` because of the ``id: UUID`` annotation.
        return MrnClaim(  # type: ignore[call-arg]
            id=claim_id,
            patient_id=patient_id,
            organisation_id=organisation_id,
            actor_id=by.actor_id,
            timestamp=by.occurred_at,
        )

    @event(Claimed)
    def __init__(
        self, *, patient_id: UUID, organisation_id: str, actor_id: str, timestamp: datetime
    ) -> None:
        self.patient_id = patient_id
        self.organisation_id = organisation_id
