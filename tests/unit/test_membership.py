"""Stories of a membership: enrolment, renewal, and the three ways it ends."""

from collections.abc import Callable
from datetime import date, timedelta
from uuid import UUID, uuid4

import pytest

from domain.errors import InvalidValue, MembershipNotActive, MembershipPeriodInvalid
from domain.membership import Membership, membership_status_on
from domain.vocabulary import MembershipStatus, Plan, TerminationReason
from tests.unit.stories import ORG, TODAY, at, fields, given, then

STARTS_ON = TODAY  # 2026-03-02
ENDS_ON = date(2027, 3, 2)
AFTER_THE_PERIOD = (ENDS_ON - TODAY).days + 1  # days after T0


def enrol(
    *,
    plan: Plan = Plan.INDIVIDUAL,
    sponsor_id: str | None = None,
    starts_on: date = STARTS_ON,
    ends_on: date = ENDS_ON,
    annual_fee_cents: int = 12_000,
    membership_id: UUID | None = None,
    patient_id: UUID | None = None,
) -> Membership:
    return Membership.enrol(
        membership_id=membership_id or uuid4(),
        patient_id=patient_id or uuid4(),
        organisation_id=ORG,
        plan=plan,
        sponsor_id=sponsor_id,
        annual_fee_cents=annual_fee_cents,
        starts_on=starts_on,
        ends_on=ends_on,
        by=at(0, actor="front-desk-1"),
    )


def cancelled() -> Membership:
    membership = enrol()
    membership.cancel(reason="moving away", by=at(10))
    return given(membership)


def terminated() -> Membership:
    membership = enrol()
    membership.terminate(
        reason=TerminationReason.NON_PAYMENT, effective_on=date(2026, 4, 1), by=at(30)
    )
    return given(membership)


# Enrolment ------------------------------------------------------------------------


def test_enrolling_records_enrolled_and_the_membership_is_active() -> None:
    membership_id, patient_id = uuid4(), uuid4()

    membership = enrol(membership_id=membership_id, patient_id=patient_id)

    [enrolled] = then(membership)
    assert type(enrolled) is Membership.Enrolled
    assert enrolled.originator_id == membership_id
    assert fields(
        enrolled, "patient_id", "plan", "sponsor_id", "annual_fee_cents", "starts_on", "ends_on"
    ) == {
        "patient_id": patient_id,
        "plan": "individual",
        "sponsor_id": None,
        "annual_fee_cents": 12_000,
        "starts_on": STARTS_ON,
        "ends_on": ENDS_ON,
    }
    assert enrolled.actor_id == "front-desk-1"
    assert membership.status == MembershipStatus.ACTIVE
    assert membership.is_active_on(STARTS_ON)
    assert not membership.is_active_on(date(2027, 3, 3))


def test_an_employer_plan_names_its_sponsor() -> None:
    membership = enrol(plan=Plan.EMPLOYER, sponsor_id="acme")
    [enrolled] = then(membership)
    assert (enrolled.plan, enrolled.sponsor_id) == ("employer", "acme")


def test_an_employer_plan_without_a_sponsor_is_refused() -> None:
    with pytest.raises(InvalidValue) as refused:
        enrol(plan=Plan.EMPLOYER, sponsor_id=None)
    assert refused.value.field == "sponsor_id"


def test_an_individual_plan_with_a_sponsor_is_refused() -> None:
    with pytest.raises(InvalidValue) as refused:
        enrol(plan=Plan.INDIVIDUAL, sponsor_id="acme")
    assert refused.value.field == "sponsor_id"


@pytest.mark.parametrize("ends_on", [STARTS_ON, date(2026, 3, 1)])
def test_a_period_must_end_after_it_starts(ends_on: date) -> None:
    with pytest.raises(MembershipPeriodInvalid):
        enrol(ends_on=ends_on)


def test_a_term_longer_than_three_years_is_refused() -> None:
    with pytest.raises(MembershipPeriodInvalid):
        enrol(ends_on=date(2029, 3, 5))


def test_a_negative_fee_is_refused() -> None:
    with pytest.raises(InvalidValue) as refused:
        enrol(annual_fee_cents=-1)
    assert refused.value.field == "annual_fee_cents"


# Renewal --------------------------------------------------------------------------


def test_renewing_extends_the_period() -> None:
    membership = given(enrol())

    membership.renew(ends_on=date(2028, 3, 2), annual_fee_cents=13_000, by=at(300))

    [renewed] = then(membership)
    assert type(renewed) is Membership.Renewed
    assert fields(renewed, "ends_on", "annual_fee_cents") == {
        "ends_on": date(2028, 3, 2),
        "annual_fee_cents": 13_000,
    }
    assert (membership.ends_on, membership.annual_fee_cents) == (date(2028, 3, 2), 13_000)
    assert membership.status == MembershipStatus.ACTIVE


def test_a_renewal_without_a_fee_keeps_the_current_fee() -> None:
    membership = given(enrol())
    membership.renew(ends_on=date(2028, 3, 2), by=at(300))
    [renewed] = then(membership)
    assert renewed.annual_fee_cents is None
    assert membership.annual_fee_cents == 12_000


@pytest.mark.parametrize("ends_on", [ENDS_ON, date(2027, 1, 1)])
def test_a_renewal_must_extend_the_period(ends_on: date) -> None:
    membership = given(enrol())

    with pytest.raises(MembershipPeriodInvalid):
        membership.renew(ends_on=ends_on, by=at(300))

    assert then(membership) == []


def test_a_lapsed_membership_may_be_renewed() -> None:
    membership = given(enrol())
    five_days_late = ENDS_ON + timedelta(days=5)
    assert membership_status_on(membership.status, membership.ends_on, five_days_late) == "lapsed"

    membership.renew(ends_on=date(2028, 3, 2), by=at(AFTER_THE_PERIOD + 5))

    [renewed] = then(membership)
    assert type(renewed) is Membership.Renewed
    assert membership_status_on(membership.status, membership.ends_on, five_days_late) == "active"
    assert membership.is_active_on(five_days_late)


@pytest.mark.parametrize(
    ("ended", "status"), [(cancelled, "cancelled"), (terminated, "terminated")]
)
def test_an_ended_membership_cannot_be_renewed(
    ended: Callable[[], Membership], status: str
) -> None:
    membership = ended()

    with pytest.raises(MembershipNotActive) as refused:
        membership.renew(ends_on=date(2028, 3, 2), by=at(300))

    assert refused.value.status == status
    assert then(membership) == []


# Cancellation ---------------------------------------------------------------------


def test_the_member_cancels_with_a_reason() -> None:
    membership = given(enrol())

    membership.cancel(reason="moving away", by=at(10, actor="patient-portal"))

    [cancellation] = then(membership)
    assert type(cancellation) is Membership.Cancelled
    assert fields(cancellation, "reason", "cancelled_on", "actor_id") == {
        "reason": "moving away",
        "cancelled_on": date(2026, 3, 12),
        "actor_id": "patient-portal",
    }
    assert membership.status == MembershipStatus.CANCELLED
    assert membership.is_active_on(date(2026, 3, 11))
    assert not membership.is_active_on(date(2026, 3, 12))


def test_a_cancellation_must_give_a_reason() -> None:
    membership = given(enrol())
    with pytest.raises(InvalidValue) as refused:
        membership.cancel(reason=" ", by=at(10))
    assert refused.value.field == "reason"


def test_a_cancelled_membership_cannot_be_cancelled_again() -> None:
    membership = cancelled()
    with pytest.raises(MembershipNotActive):
        membership.cancel(reason="again", by=at(11))
    assert then(membership) == []


# Lapse ----------------------------------------------------------------------------


def test_a_membership_lapses_the_day_after_its_term_with_nothing_recorded() -> None:
    # Given a membership nobody renews
    membership = given(enrol())
    day_after = ENDS_ON + timedelta(days=1)

    # Then it is active through its last day, and lapsed (no care relationship) after
    assert membership_status_on(membership.status, membership.ends_on, ENDS_ON) == "active"
    assert membership.is_active_on(ENDS_ON)
    assert membership_status_on(membership.status, membership.ends_on, day_after) == "lapsed"
    assert not membership.is_active_on(day_after)
    # And no one had to record it: the stream is as it was
    assert then(membership) == []
    assert membership.status == MembershipStatus.ACTIVE


@pytest.mark.parametrize("status", ["cancelled", "terminated"])
def test_an_ended_membership_never_reads_as_lapsed(status: str) -> None:
    assert membership_status_on(status, ENDS_ON, ENDS_ON + timedelta(days=400)) == status


def test_a_termination_effective_after_the_term_does_not_extend_it() -> None:
    # Given a membership whose sponsor's programme ends three months after its term
    membership = given(enrol())

    membership.terminate(
        reason=TerminationReason.SPONSOR_PROGRAM_ENDED,
        effective_on=ENDS_ON + timedelta(days=90),
        by=at(100),
    )

    # Then it gives care up to its last day, and none in the three months after
    assert membership.is_active_on(ENDS_ON)
    assert not membership.is_active_on(ENDS_ON + timedelta(days=1))
    assert not membership.is_active_on(ENDS_ON + timedelta(days=89))


# Termination ----------------------------------------------------------------------


def test_the_organisation_terminates_an_active_membership() -> None:
    membership = given(enrol())

    membership.terminate(
        reason=TerminationReason.SPONSOR_PROGRAM_ENDED,
        effective_on=date(2026, 6, 30),
        by=at(100, actor="sponsor-process"),
    )

    [termination] = then(membership)
    assert type(termination) is Membership.Terminated
    assert fields(termination, "reason", "effective_on", "actor_id") == {
        "reason": "sponsor_program_ended",
        "effective_on": date(2026, 6, 30),
        "actor_id": "sponsor-process",
    }
    assert membership.status == MembershipStatus.TERMINATED
    assert membership.ended_on == date(2026, 6, 30)


def test_a_termination_before_the_start_takes_effect_at_the_start() -> None:
    membership = given(enrol())
    membership.terminate(
        reason=TerminationReason.SERVICE_DISCONTINUED, effective_on=date(2026, 1, 1), by=at(1)
    )
    [termination] = then(membership)
    assert termination.effective_on == STARTS_ON


@pytest.mark.parametrize(
    ("ended", "status"),
    [(cancelled, "cancelled"), (terminated, "terminated")],
)
def test_only_an_active_membership_can_be_terminated(
    ended: Callable[[], Membership], status: str
) -> None:
    membership = ended()

    with pytest.raises(MembershipNotActive) as refused:
        membership.terminate(
            reason=TerminationReason.SERVICE_DISCONTINUED,
            effective_on=date(2026, 6, 30),
            by=at(AFTER_THE_PERIOD + 1),
        )

    assert refused.value.status == status
    assert then(membership) == []
