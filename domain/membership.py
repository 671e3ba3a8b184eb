"""A paid membership: the care relationship that lets clinicians treat a patient."""

from datetime import date, datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidValue, MembershipNotActive, MembershipPeriodInvalid
from domain.events import AttributedEvent
from domain.values import Provenance
from domain.vocabulary import MembershipStatus, Plan, TerminationReason

MAX_TERM_DAYS = 3 * 366


class Membership(Aggregate):
    """One stream per membership: Enrolled, then Renewed or an ending event."""

    id: UUID  # ids are passed in (uuid4 from the caller), never minted here

    class Event(AttributedEvent):
        pass

    class Enrolled(Event, Aggregate.Created):
        patient_id: UUID
        organisation_id: str
        plan: str
        sponsor_id: str | None
        annual_fee_cents: int
        starts_on: date
        ends_on: date

    class Renewed(Event):
        """The period now ends on ``ends_on``; a fee of None keeps the current fee."""

        ends_on: date
        annual_fee_cents: int | None

    class Cancelled(Event):
        """Ended by the member."""

        reason: str
        cancelled_on: date

    class Terminated(Event):
        """Ended by the organisation, for example when a sponsor's programme ends."""

        reason: str
        effective_on: date

    @staticmethod
    def enrol(
        *,
        membership_id: UUID,
        patient_id: UUID,
        organisation_id: str,
        plan: Plan,
        sponsor_id: str | None,
        annual_fee_cents: int,
        starts_on: date,
        ends_on: date,
        by: Provenance,
    ) -> "Membership":
        if plan is Plan.EMPLOYER and not sponsor_id:
            raise InvalidValue("sponsor_id", "is required for an employer plan")
        if plan is Plan.INDIVIDUAL and sponsor_id:
            raise InvalidValue("sponsor_id", "applies to employer plans only")
        if annual_fee_cents < 0:
            raise InvalidValue("annual_fee_cents", "must not be negative")
        _check_term(starts_on, ends_on)
        # The metaclass accepts ``id`` because of the ``id: UUID`` annotation; mypy only
        # sees ``__init__``, which must not take it.
        return Membership(  # type: ignore[call-arg]
            id=membership_id,
            patient_id=patient_id,
            organisation_id=organisation_id,
            plan=plan.value,
            sponsor_id=sponsor_id,
            annual_fee_cents=annual_fee_cents,
            starts_on=starts_on,
            ends_on=ends_on,
            actor_id=by.actor_id,
            timestamp=by.occurred_at,
        )

    @event(Enrolled)
    def __init__(
        self,
        *,
        patient_id: UUID,
        organisation_id: str,
        plan: str,
        sponsor_id: str | None,
        annual_fee_cents: int,
        starts_on: date,
        ends_on: date,
        actor_id: str,
        timestamp: datetime,
    ) -> None:
        self.patient_id = patient_id
        self.organisation_id = organisation_id
        self.plan = plan
        self.sponsor_id = sponsor_id
        self.annual_fee_cents = annual_fee_cents
        self.starts_on = starts_on
        self.ends_on = ends_on
        self.status = MembershipStatus.ACTIVE.value
        self.ended_on: date | None = None

    def renew(self, *, ends_on: date, annual_fee_cents: int | None = None, by: Provenance) -> None:
        """Extend the period, also after it ran out (lapsed); an ended membership not."""
        self._check_active()
        if ends_on <= self.ends_on:
            raise MembershipPeriodInvalid("a renewal must end after the current period")
        _check_term(self.ends_on, ends_on)
        if annual_fee_cents is not None and annual_fee_cents < 0:
            raise InvalidValue("annual_fee_cents", "must not be negative")
        self._renewed(
            ends_on=ends_on,
            annual_fee_cents=annual_fee_cents,
            actor_id=by.actor_id,
            timestamp=by.occurred_at,
        )

    @event(Renewed)
    def _renewed(
        self, *, ends_on: date, annual_fee_cents: int | None, actor_id: str, timestamp: datetime
    ) -> None:
        self.ends_on = ends_on
        if annual_fee_cents is not None:
            self.annual_fee_cents = annual_fee_cents
        self.status = MembershipStatus.ACTIVE.value

    def cancel(self, *, reason: str, by: Provenance) -> None:
        """The member ends the membership."""
        self._check_active()
        if not reason.strip():
            raise InvalidValue("reason", "must not be blank")
        self._cancelled(
            reason=reason,
            cancelled_on=by.occurred_at.date(),
            actor_id=by.actor_id,
            timestamp=by.occurred_at,
        )

    @event(Cancelled)
    def _cancelled(
        self, *, reason: str, cancelled_on: date, actor_id: str, timestamp: datetime
    ) -> None:
        self.status = MembershipStatus.CANCELLED.value
        self.ended_on = cancelled_on

    def terminate(self, *, reason: TerminationReason, effective_on: date, by: Provenance) -> None:
        """The organisation ends the membership."""
        self._check_active()
        self._terminated(
            reason=reason.value,
            effective_on=max(effective_on, self.starts_on),
            actor_id=by.actor_id,
            timestamp=by.occurred_at,
        )

    @event(Terminated)
    def _terminated(
        self, *, reason: str, effective_on: date, actor_id: str, timestamp: datetime
    ) -> None:
        self.status = MembershipStatus.TERMINATED.value
        self.ended_on = effective_on

    def is_active_on(self, day: date) -> bool:
        """Whether the membership gives a care relationship on that day."""
        return membership_active_on(self.status, self.starts_on, self.ends_on, self.ended_on, day)

    def _check_active(self) -> None:
        if self.status != MembershipStatus.ACTIVE:
            raise MembershipNotActive(self.status)


def _check_term(starts_on: date, ends_on: date) -> None:
    if ends_on <= starts_on:
        raise MembershipPeriodInvalid("ends_on must be after starts_on")
    if (ends_on - starts_on).days > MAX_TERM_DAYS:
        raise MembershipPeriodInvalid("a membership term may not exceed three years")


def membership_status_on(status: str, ends_on: date, day: date) -> str:
    """The status on that day: an active membership whose term ran out unrenewed is
    lapsed, which no event records, because nobody decides it: the date does."""
    if status == MembershipStatus.ACTIVE and day > ends_on:
        return MembershipStatus.LAPSED.value
    return status


def membership_active_on(
    status: str, starts_on: date, ends_on: date, ended_on: date | None, day: date
) -> bool:
    """The care-relationship rule, also applied by the roster view's readers."""
    if status == MembershipStatus.ACTIVE:
        return starts_on <= day <= ends_on
    if status == MembershipStatus.LAPSED:
        return False
    # Ending a membership after its term, or with effect after it, never extends it.
    return ended_on is not None and starts_on <= day <= ends_on and day < ended_on
