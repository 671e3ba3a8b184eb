"""A membership whose term runs out unrenewed lapses on the roster, with nothing recorded."""

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from api.bootstrap import build
from api.container import Container
from domain.vocabulary import MembershipStatus, Plan
from tests.conftest import make_settings
from tests.contract.stories import ADMIN, register

MID_TERM = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
AFTER_THE_TERM = datetime(2027, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def now() -> list[datetime]:
    return [MID_TERM]


@pytest.fixture
def services(database_url: str, tmp_path: Path, now: list[datetime]) -> Iterator[Container]:
    built = build(make_settings(database_url, tmp_path / "var"), clock=lambda: now[0])
    try:
        yield built
    finally:
        built.close()


def enrol(services: Container, patient_id: UUID, ends_on: date) -> UUID:
    outcome = services.memberships.enrol(
        ADMIN,
        patient_id=patient_id,
        plan=Plan.INDIVIDUAL,
        sponsor_id=None,
        annual_fee_cents=19900,
        starts_on=date(2026, 1, 1),
        ends_on=ends_on,
    )
    return UUID(outcome.result["id"])


def roster(services: Container, **query: Any) -> dict[UUID, dict[str, Any]]:
    services.catch_up()
    return {UUID(item["id"]): item for item in services.memberships.roster(ADMIN, **query)}


def test_a_term_that_runs_out_unrenewed_lapses_and_a_renewal_revives_it(
    services: Container, now: list[datetime]
) -> None:
    # Given one membership ending this year and one ending next year
    this_year = enrol(services, register(services, "MRN-L1"), date(2026, 12, 31))
    next_year = enrol(services, register(services, "MRN-L2"), date(2027, 12, 31))
    assert {m["status"] for m in roster(services).values()} == {"active"}
    head = services.ledger.recorder.max_notification_id()

    # When the first term runs out and nobody renews it
    now[0] = AFTER_THE_TERM

    # Then the roster shows it lapsed, with no care relationship, and filters by it
    listed = roster(services)
    assert listed[this_year]["status"] == "lapsed"
    assert not listed[this_year]["active_today"]
    assert listed[next_year]["status"] == "active" and listed[next_year]["active_today"]
    assert set(roster(services, status=MembershipStatus.LAPSED)) == {this_year}
    assert set(roster(services, status=MembershipStatus.ACTIVE)) == {next_year}
    # And nothing was written for it: a lapse is the date, not an event
    assert services.ledger.recorder.max_notification_id() == head

    # When the member renews late
    services.memberships.renew(ADMIN, this_year, ends_on=date(2027, 12, 31))

    # Then the membership is active again, and nothing lapsed remains
    revived = roster(services)[this_year]
    assert revived["status"] == "active" and revived["active_today"]
    assert roster(services, status=MembershipStatus.LAPSED) == {}
