"""Stories of a patient's consent record: directives granted, revoked, restrictions asked."""

import hashlib
from datetime import date
from uuid import UUID, uuid4

import pytest

from domain.consent import Consent
from domain.errors import DirectiveNotActive, DirectiveNotFound, InvalidValue
from domain.values import ConsentEvidence, Period
from domain.vocabulary import Purpose, SensitivityLabel, SigningMethod
from tests.unit.stories import T0, TODAY, at, fields, given, then

FORM_TEXT_SHA256 = hashlib.sha256(b"I allow Research Org to read my genetic results.").hexdigest()
THIS_YEAR = Period(start=TODAY, end=date(2027, 3, 2))
RESEARCH_ORG = "org:research-1"


def evidence(text_sha256: str = FORM_TEXT_SHA256) -> ConsentEvidence:
    return ConsentEvidence(
        form_id="research-consent",
        form_version="3",
        text_sha256=text_sha256,
        method=SigningMethod.ELECTRONIC,
        recorded_by="registrar-1",
    )


def opened(patient_id: UUID | None = None) -> Consent:
    return Consent.open(consent_id=uuid4(), patient_id=patient_id or uuid4(), by=at(0))


def grant(
    consent: Consent,
    directive_id: UUID,
    *,
    purposes: frozenset[Purpose] = frozenset({Purpose.HRESCH}),
    period: Period = THIS_YEAR,
    days: int = 1,
) -> None:
    consent.grant_directive(
        directive_id=directive_id,
        grantee=RESEARCH_ORG,
        purposes=purposes,
        labels=frozenset({SensitivityLabel.GENETIC}),
        period=period,
        evidence=evidence(),
        by=at(days),
    )


def with_directive(period: Period = THIS_YEAR) -> tuple[Consent, UUID]:
    consent = opened()
    directive_id = uuid4()
    grant(consent, directive_id, period=period)
    return consent, directive_id


def test_opening_records_opened_with_no_directives() -> None:
    consent_id, patient_id = uuid4(), uuid4()

    consent = Consent.open(consent_id=consent_id, patient_id=patient_id, by=at(0))

    [opening] = then(consent)
    assert type(opening) is Consent.Opened
    assert (opening.originator_id, opening.patient_id) == (consent_id, patient_id)
    assert (consent.directives, consent.restrictions) == ({}, {})


# Granting -------------------------------------------------------------------------


def test_granting_records_the_directive_and_its_evidence() -> None:
    consent = given(opened())
    directive_id = uuid4()

    grant(consent, directive_id, purposes=frozenset({Purpose.HRESCH, Purpose.HPAYMT}))

    [granted] = then(consent)
    assert type(granted) is Consent.DirectiveGranted
    assert fields(granted, "directive_id", "grantee", "purposes", "labels", "period") == {
        "directive_id": directive_id,
        "grantee": RESEARCH_ORG,
        "purposes": ["HPAYMT", "HRESCH"],
        "labels": ["genetic"],
        "period": THIS_YEAR,
    }
    assert granted.evidence.text_sha256 == FORM_TEXT_SHA256
    assert consent.is_directive_active(directive_id, T0)
    assert not consent.is_directive_active(directive_id, T0.replace(year=2027, month=3))


def test_a_directive_must_name_a_purpose() -> None:
    consent = given(opened())

    with pytest.raises(InvalidValue) as refused:
        grant(consent, uuid4(), purposes=frozenset())

    assert refused.value.field == "purposes"
    assert then(consent) == []


def test_break_glass_needs_no_directive_so_etreat_is_refused() -> None:
    consent = given(opened())

    with pytest.raises(InvalidValue) as refused:
        grant(consent, uuid4(), purposes=frozenset({Purpose.TREAT, Purpose.ETREAT}))

    assert refused.value.field == "purposes"
    assert then(consent) == []


@pytest.mark.parametrize("end", [TODAY, date(2026, 1, 1)])
def test_a_period_must_end_after_it_starts(end: date) -> None:
    with pytest.raises(InvalidValue) as refused:
        Period(start=TODAY, end=end)
    assert refused.value.field == "period.end"


def test_an_open_ended_period_is_accepted() -> None:
    consent = given(opened())
    directive_id = uuid4()
    grant(consent, directive_id, period=Period(start=TODAY))
    assert consent.is_directive_active(directive_id, T0.replace(year=2090))


@pytest.mark.parametrize(
    "text_sha256",
    [
        FORM_TEXT_SHA256.upper(),
        FORM_TEXT_SHA256[:63],
        FORM_TEXT_SHA256 + "0",
        "g" * 64,
        "",
    ],
    ids=["uppercase", "63 characters", "65 characters", "not hex", "empty"],
)
def test_the_evidence_must_carry_a_lowercase_hex_sha256(text_sha256: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        evidence(text_sha256)
    assert refused.value.field == "evidence.text_sha256"


def test_a_directive_id_is_used_once_per_consent_record() -> None:
    consent, directive_id = with_directive()
    consent = given(consent)

    with pytest.raises(InvalidValue) as refused:
        grant(consent, directive_id, days=2)

    assert refused.value.field == "directive_id"


# Revoking -------------------------------------------------------------------------


def test_revoking_an_active_directive_records_directive_revoked() -> None:
    consent, directive_id = with_directive()
    consent = given(consent)

    consent.revoke_directive(directive_id=directive_id, reason="changed my mind", by=at(5))

    [revoked] = then(consent)
    assert type(revoked) is Consent.DirectiveRevoked
    assert fields(revoked, "directive_id", "reason", "effective_at") == {
        "directive_id": directive_id,
        "reason": "changed my mind",
        "effective_at": at(5).occurred_at,
    }
    assert not consent.is_directive_active(directive_id, at(6).occurred_at)


def test_a_revoked_directive_cannot_be_revoked_again() -> None:
    consent, directive_id = with_directive()
    consent.revoke_directive(directive_id=directive_id, reason="changed my mind", by=at(5))
    consent = given(consent)

    with pytest.raises(DirectiveNotActive):
        consent.revoke_directive(directive_id=directive_id, reason="again", by=at(6))

    assert then(consent) == []


def test_a_directive_whose_period_has_ended_cannot_be_revoked() -> None:
    consent, directive_id = with_directive(Period(start=TODAY, end=date(2026, 3, 10)))
    consent = given(consent)

    with pytest.raises(DirectiveNotActive):
        consent.revoke_directive(directive_id=directive_id, reason="too late", by=at(8))

    assert then(consent) == []


def test_a_directive_yet_to_start_can_be_withdrawn_before_it_takes_effect() -> None:
    consent, directive_id = with_directive(Period(start=date(2027, 1, 1)))
    consent = given(consent)

    consent.revoke_directive(directive_id=directive_id, reason="never mind", by=at(5))

    [revoked] = then(consent)
    assert type(revoked) is Consent.DirectiveRevoked
    assert not consent.is_directive_revocable(directive_id, at(6).occurred_at)


def test_an_unknown_directive_cannot_be_revoked() -> None:
    consent, _ = with_directive()
    consent = given(consent)

    with pytest.raises(DirectiveNotFound):
        consent.revoke_directive(directive_id=uuid4(), reason="changed my mind", by=at(5))

    assert then(consent) == []


def test_a_revocation_must_give_a_reason() -> None:
    consent, directive_id = with_directive()
    with pytest.raises(InvalidValue) as refused:
        consent.revoke_directive(directive_id=directive_id, reason="", by=at(5))
    assert refused.value.field == "reason"


# Restrictions ---------------------------------------------------------------------


def test_the_patient_requests_a_restriction() -> None:
    consent = given(opened())
    restriction_id = uuid4()

    consent.request_restriction(
        restriction_id=restriction_id,
        purposes=frozenset({Purpose.HMARKT}),
        labels=frozenset({SensitivityLabel.MENTAL_HEALTH}),
        recipient=None,
        by=at(3),
    )

    [requested] = then(consent)
    assert type(requested) is Consent.RestrictionRequested
    assert fields(requested, "restriction_id", "purposes", "labels", "recipient") == {
        "restriction_id": restriction_id,
        "purposes": ["HMARKT"],
        "labels": ["mental_health"],
        "recipient": None,
    }


def test_a_restriction_must_say_what_it_restricts() -> None:
    consent = given(opened())
    with pytest.raises(InvalidValue):
        consent.request_restriction(
            restriction_id=uuid4(),
            purposes=frozenset(),
            labels=frozenset(),
            recipient=None,
            by=at(3),
        )
    assert then(consent) == []
