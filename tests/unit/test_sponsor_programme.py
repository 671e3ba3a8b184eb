"""Stories of a sponsor's programme: members enlisted until it is discontinued."""

from datetime import date
from uuid import uuid4

import pytest

from domain.errors import InvalidValue, SponsorProgrammeDiscontinued
from domain.sponsor import SponsorProgramme
from tests.unit.stories import ORG, at, given, then

ACME = "acme"


def started() -> SponsorProgramme:
    return SponsorProgramme.start(organisation_id=ORG, sponsor_id=ACME, by=at(0))


def discontinued() -> SponsorProgramme:
    programme = started()
    programme.enlist(membership_id=uuid4(), by=at(1))
    programme.discontinue(effective_on=date(2026, 6, 30), by=at(30))
    return given(programme)


def test_starting_records_started_under_the_sponsors_stream() -> None:
    programme = started()

    [start] = then(programme)
    assert type(start) is SponsorProgramme.Started
    assert (start.organisation_id, start.sponsor_id) == (ORG, ACME)
    assert programme.id == SponsorProgramme.stream_id(ORG, ACME)
    assert programme.id != SponsorProgramme.stream_id(ORG, "globex")
    assert (programme.member_ids, programme.discontinued_on) == ([], None)


def test_a_programme_needs_a_sponsor() -> None:
    with pytest.raises(InvalidValue) as refused:
        SponsorProgramme.start(organisation_id=ORG, sponsor_id="  ", by=at(0))
    assert refused.value.field == "sponsor_id"


def test_enlisting_a_member_records_member_enlisted() -> None:
    programme = given(started())
    membership_id = uuid4()

    programme.enlist(membership_id=membership_id, by=at(1))

    [enlisted] = then(programme)
    assert type(enlisted) is SponsorProgramme.MemberEnlisted
    assert enlisted.membership_id == membership_id
    assert programme.member_ids == [membership_id]


def test_discontinuing_records_discontinued_as_of_a_date() -> None:
    programme = started()
    programme.enlist(membership_id=uuid4(), by=at(1))
    programme = given(programme)

    programme.discontinue(effective_on=date(2026, 6, 30), by=at(30, actor="account-manager"))

    [discontinuation] = then(programme)
    assert type(discontinuation) is SponsorProgramme.Discontinued
    assert discontinuation.effective_on == date(2026, 6, 30)
    assert discontinuation.actor_id == "account-manager"
    assert programme.discontinued_on == date(2026, 6, 30)
    assert len(programme.member_ids) == 1


def test_no_member_is_enlisted_after_discontinuation() -> None:
    programme = discontinued()

    with pytest.raises(SponsorProgrammeDiscontinued):
        programme.enlist(membership_id=uuid4(), by=at(31))

    assert then(programme) == []
    assert len(programme.member_ids) == 1


def test_a_programme_cannot_be_discontinued_twice() -> None:
    programme = discontinued()

    with pytest.raises(SponsorProgrammeDiscontinued):
        programme.discontinue(effective_on=date(2026, 7, 31), by=at(31))

    assert then(programme) == []
    assert programme.discontinued_on == date(2026, 6, 30)
