"""An employer's sponsorship programme: who it enrolled, and whether it has ended."""

from datetime import date, datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidValue, SponsorProgrammeDiscontinued
from domain.events import AttributedEvent
from domain.values import Provenance


class SponsorProgramme(Aggregate):
    """The consistency boundary for 'no enrolment after discontinuation'.

    Its stream id is derived from the sponsor's organisation id, which is not PHI,
    so that enrolment can find it without an index.
    """

    id: UUID  # passed in: derived by stream_id() from the sponsor, which is not PHI

    class Event(AttributedEvent):
        pass

    class Started(Event, Aggregate.Created):
        organisation_id: str
        sponsor_id: str

    class MemberEnlisted(Event):
        membership_id: UUID

    class Discontinued(Event):
        """A process terminates every enlisted membership once, as of ``effective_on``."""

        effective_on: date

    @staticmethod
    def stream_id(organisation_id: str, sponsor_id: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"careledger:sponsor:{organisation_id}:{sponsor_id}")

    @staticmethod
    def start(*, organisation_id: str, sponsor_id: str, by: Provenance) -> "SponsorProgramme":
        if not sponsor_id.strip():
            raise InvalidValue("sponsor_id", "must not be blank")
        # The metaclass accepts ``id`` because of the ``id: UUID`` annotation; mypy only
        # sees ``__init__``, which must not take it.
        return SponsorProgramme(  # type: ignore[call-arg]
            id=SponsorProgramme.stream_id(organisation_id, sponsor_id),
            organisation_id=organisation_id,
            sponsor_id=sponsor_id,
            actor_id=by.actor_id,
            timestamp=by.occurred_at,
        )

    @event(Started)
    def __init__(
        self, *, organisation_id: str, sponsor_id: str, actor_id: str, timestamp: datetime
    ) -> None:
        self.organisation_id = organisation_id
        self.sponsor_id = sponsor_id
        self.member_ids: list[UUID] = []
        self.discontinued_on: date | None = None

    def enlist(self, *, membership_id: UUID, by: Provenance) -> None:
        if self.discontinued_on is not None:
            raise SponsorProgrammeDiscontinued()
        self._member_enlisted(
            membership_id=membership_id, actor_id=by.actor_id, timestamp=by.occurred_at
        )

    @event(MemberEnlisted)
    def _member_enlisted(self, *, membership_id: UUID, actor_id: str, timestamp: datetime) -> None:
        self.member_ids.append(membership_id)

    def discontinue(self, *, effective_on: date, by: Provenance) -> None:
        """End the programme. A process then terminates each membership once."""
        if self.discontinued_on is not None:
            raise SponsorProgrammeDiscontinued()
        self._discontinued(
            effective_on=effective_on, actor_id=by.actor_id, timestamp=by.occurred_at
        )

    @event(Discontinued)
    def _discontinued(self, *, effective_on: date, actor_id: str, timestamp: datetime) -> None:
        self.discontinued_on = effective_on
