"""A sponsor's discontinuation terminates each of its members exactly once.

The terminations come from a process that follows the log, not from the request,
so these stories drive that process directly: crash it, restart it, race it.
"""

import threading
from datetime import UTC, date, datetime
from uuid import UUID

import pytest
from eventsourcing.utils import get_topic

from api.container import Container
from application.memberships.sponsor_discontinuation import SponsorDiscontinuation
from domain.errors import SponsorProgrammeDiscontinued
from domain.membership import Membership
from infrastructure.follower import LogFollower
from tests.contract.stories import ADMIN, enrol, register


def fixed_clock() -> datetime:
    return datetime(2026, 11, 23, 12, tzinfo=UTC)


def terminations(services: Container) -> list[UUID]:
    found = services.ledger.recorder.select_notifications(
        start=1, limit=100_000, topics=[get_topic(Membership.Terminated)]
    )
    return [UUID(str(n.originator_id)) for n in found]


def status(services: Container, membership_id: UUID) -> str:
    return services.ledger.load(Membership, membership_id, "membership").status


def given_two_sponsors(services: Container) -> tuple[list[UUID], list[UUID], UUID]:
    acme = [enrol(services, register(services, f"A{i}"), "acme-corp") for i in range(5)]
    globex = [enrol(services, register(services, f"G{i}"), "globex") for i in range(2)]
    individual = enrol(services, register(services, "I1"))
    services.memberships.cancel(ADMIN, acme[0], reason="moved away")
    return acme, globex, individual


def follower(services: Container, process: SponsorDiscontinuation) -> LogFollower:
    return LogFollower(services.ledger, process, batch_size=10)


def test_each_active_member_is_terminated_once_and_others_untouched(
    container: Container,
) -> None:
    acme, globex, individual = given_two_sponsors(container)

    container.memberships.discontinue_sponsor(ADMIN, "acme-corp", effective_on=date(2026, 12, 1))
    follower(container, SponsorDiscontinuation(container.ledger, fixed_clock)).run_until_idle()

    assert sorted(terminations(container)) == sorted(acme[1:])
    assert status(container, acme[0]) == "cancelled"
    assert {status(container, m) for m in [*globex, individual]} == {"active"}
    terminated = container.ledger.load(Membership, acme[1], "membership")
    assert terminated.ended_on == date(2026, 12, 1)


def test_no_one_joins_a_discontinued_programme(container: Container) -> None:
    given_two_sponsors(container)
    container.memberships.discontinue_sponsor(ADMIN, "acme-corp", effective_on=date(2026, 12, 1))

    with pytest.raises(SponsorProgrammeDiscontinued):
        enrol(container, register(container, "late"), "acme-corp")
    with pytest.raises(SponsorProgrammeDiscontinued):
        container.memberships.discontinue_sponsor(
            ADMIN, "acme-corp", effective_on=date(2026, 12, 2)
        )


def test_a_crash_before_commit_loses_nothing_and_a_restart_finishes_once(
    container: Container,
) -> None:
    acme, _, _ = given_two_sponsors(container)
    container.memberships.discontinue_sponsor(ADMIN, "acme-corp", effective_on=date(2026, 12, 1))

    def crash(_count: int) -> None:
        raise SystemExit("killed mid-way")

    crashing = SponsorDiscontinuation(container.ledger, fixed_clock, before_commit=crash)
    with pytest.raises(SystemExit):
        follower(container, crashing).run_once()
    assert terminations(container) == []
    assert crashing.position() == 0

    restarted = SponsorDiscontinuation(container.ledger, fixed_clock)
    follower(container, restarted).run_until_idle()
    follower(container, restarted).run_until_idle()  # a second pass changes nothing

    assert sorted(terminations(container)) == sorted(acme[1:])
    assert restarted.position() > 0


def test_two_racing_instances_terminate_each_member_once(container: Container) -> None:
    acme, _, _ = given_two_sponsors(container)
    container.memberships.discontinue_sponsor(ADMIN, "acme-corp", effective_on=date(2026, 12, 1))
    barrier = threading.Barrier(2)

    def hold_until_both_decided(_count: int) -> None:
        barrier.wait(timeout=10)

    errors: list[BaseException] = []

    def run() -> None:
        process = SponsorDiscontinuation(
            container.ledger, fixed_clock, before_commit=hold_until_both_decided
        )
        try:
            follower(container, process).run_until_idle()
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert sorted(terminations(container)) == sorted(acme[1:])


def test_the_served_process_terminates_members_in_the_background(
    container: Container,
) -> None:
    acme, _, _ = given_two_sponsors(container)
    container.start_followers()

    container.memberships.discontinue_sponsor(ADMIN, "acme-corp", effective_on=date(2026, 12, 1))

    deadline = datetime.now(UTC).timestamp() + 10
    while len(terminations(container)) < 4 and datetime.now(UTC).timestamp() < deadline:
        threading.Event().wait(0.05)
    assert sorted(terminations(container)) == sorted(acme[1:])
