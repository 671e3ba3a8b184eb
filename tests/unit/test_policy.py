"""The policy decision point, as a table: who, why, with what state, and the answer."""

from datetime import date
from uuid import UUID

import pytest

from application.access.policy import (
    AccessRequest,
    ConsentFacts,
    Content,
    MembershipFact,
    decide,
)
from application.context import Actor, Role
from domain.vocabulary import Purpose

PATIENT = UUID("00000000-0000-4000-8000-000000000001")
TODAY = date(2026, 6, 1)
ACTIVE = MembershipFact("m-active", "active", date(2026, 1, 1), date(2026, 12, 31), None, 1)
CANCELLED = MembershipFact(
    "m-gone", "cancelled", date(2025, 1, 1), date(2025, 12, 31), date(2025, 6, 1), 2
)


def directive(grantee: str, purposes: list[str], labels: list[str], **changes: object) -> dict:
    return {
        "grantee": grantee,
        "purposes": purposes,
        "labels": labels,
        "period": {"start": "2026-01-01", "end": None},
        "revoked_at": None,
        **changes,
    }


NO_CONSENT = ConsentFacts(1, {})
SUD_FOR_MAIN = ConsentFacts(3, {"d-sud": directive("org-main", ["TREAT"], ["substance_use"])})
MARKETING = ConsentFacts(4, {"d-mkt": directive("org:org-ads", ["HMARKT"], [])})
REVOKED_MARKETING = ConsentFacts(
    5, {"d-mkt": directive("org-ads", ["HMARKT"], [], revoked_at="2026-05-01T00:00:00+00:00")}
)
EXPIRED = ConsentFacts(
    6,
    {
        "d-old": directive(
            "org-ads", ["HMARKT"], [], period={"start": "2025-01-01", "end": "2026-01-01"}
        )
    },
)

CLINICIAN = Actor("dr-main", Role.CLINICIAN, "org-main")
OUTSIDER = Actor("dr-other", Role.CLINICIAN, "org-other")
MARKETER = Actor("svc-ads", Role.SERVICE, "org-ads")
ADMIN = Actor("admin-main", Role.ADMIN, "org-main")
AUDITOR = Actor("auditor-main", Role.AUDITOR, "org-main")
SELF = Actor("patient-self", Role.PATIENT, "org-main", PATIENT)
OTHER_PATIENT = Actor("patient-other", Role.PATIENT, "org-main", UUID(int=99))
GLASS = "unconscious in the emergency department"

# actor, purpose, consent, memberships, break-glass, replay
#   -> permit?, allowed labels (None = all), basis keys
CASES = [
    ("patient reads own", SELF, Purpose.PATRQT, NO_CONSENT, [], None, False, True, None, set()),
    (
        "patient reads another",
        OTHER_PATIENT,
        Purpose.PATRQT,
        NO_CONSENT,
        [],
        None,
        False,
        False,
        None,
        set(),
    ),
    (
        "treating with active membership",
        CLINICIAN,
        Purpose.TREAT,
        NO_CONSENT,
        [ACTIVE],
        None,
        False,
        True,
        frozenset(),
        {"consent_version", "membership_id"},
    ),
    (
        "treating, no membership",
        CLINICIAN,
        Purpose.TREAT,
        NO_CONSENT,
        [],
        None,
        False,
        False,
        None,
        set(),
    ),
    (
        "treating, membership ended",
        CLINICIAN,
        Purpose.TREAT,
        NO_CONSENT,
        [CANCELLED],
        None,
        False,
        False,
        None,
        set(),
    ),
    (
        "treating, SUD directive shows the label",
        CLINICIAN,
        Purpose.TREAT,
        SUD_FOR_MAIN,
        [ACTIVE],
        None,
        False,
        True,
        frozenset({"substance_use"}),
        {"consent_version", "membership_id", "directive_id"},
    ),
    (
        "payment by own organisation, member (TPO)",
        CLINICIAN,
        Purpose.HPAYMT,
        NO_CONSENT,
        [ACTIVE],
        None,
        False,
        True,
        frozenset(),
        {"consent_version", "membership_id"},
    ),
    (
        "payment by own organisation, no care relationship",
        CLINICIAN,
        Purpose.HPAYMT,
        NO_CONSENT,
        [],
        None,
        False,
        False,
        None,
        set(),
    ),
    (
        "operations by own organisation, no care relationship",
        CLINICIAN,
        Purpose.HOPERAT,
        NO_CONSENT,
        [],
        None,
        False,
        False,
        None,
        set(),
    ),
    (
        "public-health report by own organisation",
        CLINICIAN,
        Purpose.PUBHLTH,
        NO_CONSENT,
        [],
        None,
        False,
        True,
        frozenset(),
        {"consent_version"},
    ),
    (
        "public-health report by another organisation",
        OUTSIDER,
        Purpose.PUBHLTH,
        NO_CONSENT,
        [],
        None,
        False,
        False,
        None,
        set(),
    ),
    (
        "break-glass, no membership",
        CLINICIAN,
        Purpose.ETREAT,
        NO_CONSENT,
        [],
        GLASS,
        False,
        True,
        None,
        {"break_glass"},
    ),
    (
        "break-glass, justification too short",
        CLINICIAN,
        Purpose.ETREAT,
        NO_CONSENT,
        [],
        "urgent",
        False,
        False,
        None,
        set(),
    ),
    (
        "break-glass, justification without substance",
        CLINICIAN,
        Purpose.ETREAT,
        NO_CONSENT,
        [],
        "a" * 40,
        False,
        False,
        None,
        set(),
    ),
    (
        "break-glass by another organisation",
        OUTSIDER,
        Purpose.ETREAT,
        NO_CONSENT,
        [],
        GLASS,
        False,
        False,
        None,
        set(),
    ),
    (
        "other organisation treating",
        OUTSIDER,
        Purpose.TREAT,
        NO_CONSENT,
        [ACTIVE],
        None,
        False,
        False,
        None,
        set(),
    ),
    (
        "marketing without directive",
        MARKETER,
        Purpose.HMARKT,
        NO_CONSENT,
        [ACTIVE],
        None,
        False,
        False,
        None,
        set(),
    ),
    (
        "marketing with directive",
        MARKETER,
        Purpose.HMARKT,
        MARKETING,
        [],
        None,
        False,
        True,
        frozenset(),
        {"consent_version", "directive_id"},
    ),
    (
        "marketing after revocation",
        MARKETER,
        Purpose.HMARKT,
        REVOKED_MARKETING,
        [],
        None,
        False,
        False,
        None,
        set(),
    ),
    (
        "marketing after the period",
        MARKETER,
        Purpose.HMARKT,
        EXPIRED,
        [],
        None,
        False,
        False,
        None,
        set(),
    ),
    (
        "research under a marketing directive",
        MARKETER,
        Purpose.HRESCH,
        MARKETING,
        [],
        None,
        False,
        False,
        None,
        set(),
    ),
    (
        "admin reads clinical content",
        ADMIN,
        Purpose.HOPERAT,
        NO_CONSENT,
        [ACTIVE],
        None,
        False,
        False,
        None,
        set(),
    ),
    (
        "auditor reads directly",
        AUDITOR,
        Purpose.HOPERAT,
        NO_CONSENT,
        [ACTIVE],
        None,
        False,
        False,
        None,
        set(),
    ),
    ("auditor replays", AUDITOR, Purpose.HOPERAT, NO_CONSENT, [], None, True, True, None, set()),
]


@pytest.mark.parametrize(
    ("actor", "purpose", "consent", "memberships", "glass", "replay", "permit", "labels", "basis"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_the_default_policy(
    actor: Actor,
    purpose: Purpose,
    consent: ConsentFacts,
    memberships: list[MembershipFact],
    glass: str | None,
    replay: bool,
    permit: bool,
    labels: frozenset[str] | None,
    basis: set[str],
) -> None:
    request = AccessRequest(
        actor, purpose, str(PATIENT), "org-main", Content.CLINICAL, TODAY, glass, replay
    )
    decision = decide(request, consent, memberships)
    assert decision.permit is permit, decision.reason
    if permit:
        assert decision.allowed_labels == labels
        assert set(decision.basis.as_json()) == basis
    else:
        assert decision.basis.as_json() == {}


PHARMACY = Actor("sub-pharmacy", Role.SERVICE, "org-main")
REGISTRY = Actor("sub-registry", Role.SERVICE, "org-state-registry")

# Deliveries to subscribers (AccessRequest.delivery): actor, purpose, consent,
# memberships -> permit?, allowed labels, basis keys
DELIVERIES = [
    (
        "the organisation's pharmacy, member",
        PHARMACY,
        Purpose.TREAT,
        NO_CONSENT,
        [ACTIVE],
        True,
        frozenset(),
        {"consent_version", "membership_id"},
    ),
    (
        "the organisation's pharmacy, no membership",
        PHARMACY,
        Purpose.TREAT,
        NO_CONSENT,
        [],
        False,
        None,
        set(),
    ),
    (
        "the organisation's pharmacy, membership ended",
        PHARMACY,
        Purpose.TREAT,
        NO_CONSENT,
        [CANCELLED],
        False,
        None,
        set(),
    ),
    (
        "a public-health registry",
        REGISTRY,
        Purpose.PUBHLTH,
        NO_CONSENT,
        [],
        True,
        frozenset(),
        {"consent_version"},
    ),
    (
        "marketing without directive",
        MARKETER,
        Purpose.HMARKT,
        NO_CONSENT,
        [ACTIVE],
        False,
        None,
        set(),
    ),
    (
        "marketing with directive",
        MARKETER,
        Purpose.HMARKT,
        MARKETING,
        [],
        True,
        frozenset(),
        {"consent_version", "directive_id"},
    ),
    (
        "another organisation's service, treatment",
        REGISTRY,
        Purpose.TREAT,
        NO_CONSENT,
        [ACTIVE],
        False,
        None,
        set(),
    ),
]


@pytest.mark.parametrize(
    ("actor", "purpose", "consent", "memberships", "permit", "labels", "basis"),
    [case[1:] for case in DELIVERIES],
    ids=[case[0] for case in DELIVERIES],
)
def test_deliveries_to_subscribers(
    actor: Actor,
    purpose: Purpose,
    consent: ConsentFacts,
    memberships: list[MembershipFact],
    permit: bool,
    labels: frozenset[str] | None,
    basis: set[str],
) -> None:
    request = AccessRequest(
        actor,
        purpose,
        str(PATIENT),
        "org-main",
        Content.CLINICAL,
        TODAY,
        delivery=True,
        discloser="org-main",
    )
    decision = decide(request, consent, memberships)
    assert decision.permit is permit, decision.reason
    if permit:
        assert decision.allowed_labels == labels
        assert set(decision.basis.as_json()) == basis


def test_a_service_token_is_not_a_subscription() -> None:
    # The same service, reading rather than being delivered to, gets nothing.
    for purpose in (Purpose.TREAT, Purpose.PUBHLTH):
        request = AccessRequest(
            PHARMACY, purpose, str(PATIENT), "org-main", Content.CLINICAL, TODAY
        )
        assert not decide(request, NO_CONSENT, [ACTIVE]).permit


def test_demographics_do_not_wait_for_a_membership() -> None:
    # Registration and enrolment need the demographics before any membership exists.
    request = AccessRequest(
        CLINICIAN, Purpose.TREAT, str(PATIENT), "org-main", Content.DEMOGRAPHICS, TODAY
    )
    assert decide(request, NO_CONSENT, []).permit
    clinical = AccessRequest(
        CLINICIAN, Purpose.TREAT, str(PATIENT), "org-main", Content.CLINICAL, TODAY
    )
    assert not decide(clinical, NO_CONSENT, []).permit


def test_hidden_labels_leave_entries_out() -> None:
    request = AccessRequest(
        CLINICIAN, Purpose.TREAT, str(PATIENT), "org-main", Content.CLINICAL, TODAY
    )
    decision = decide(request, NO_CONSENT, [ACTIVE])
    assert decision.shows([]) and not decision.shows(["substance_use"])
    opened = decide(request, SUD_FOR_MAIN, [ACTIVE])
    assert opened.shows(["substance_use"]) and not opened.shows(["substance_use", "genetic"])


def test_a_decision_is_a_function_of_its_inputs() -> None:
    # Replay recomputes decisions: the same inputs must give the same decision.
    request = AccessRequest(
        CLINICIAN, Purpose.TREAT, str(PATIENT), "org-main", Content.CLINICAL, TODAY
    )
    assert decide(request, SUD_FOR_MAIN, [ACTIVE, CANCELLED]) == decide(
        request, SUD_FOR_MAIN, [CANCELLED, ACTIVE]
    )


def test_a_subscriber_discloses_only_its_registering_organisations_patients() -> None:
    # An admin of org-other registered a subscriber for org-main's own pharmacy: it is
    # org-other disclosing, and org-main's patient is not org-other's to disclose.
    for purpose in (Purpose.TREAT, Purpose.PUBHLTH):
        request = AccessRequest(
            PHARMACY,
            purpose,
            str(PATIENT),
            "org-main",
            Content.CLINICAL,
            TODAY,
            delivery=True,
            discloser="org-other",
        )
        assert not decide(request, NO_CONSENT, [ACTIVE]).permit


GREY_MAIN = Actor("dr-grey", Role.CLINICIAN, "org-main")
GREY_OTHER = Actor("dr-grey", Role.CLINICIAN, "org-other")


@pytest.mark.parametrize(
    ("grantee", "admits"),
    [
        ("practitioner:org-other/dr-grey", {GREY_OTHER}),
        ("org:org-other", {GREY_OTHER, OUTSIDER}),
        ("org-other", {GREY_OTHER, OUTSIDER}),  # a bare text is an organisation id
        ("dr-grey", set()),  # a bare subject names an organisation nobody belongs to
        ("clinician", set()),  # never a role
        ("practitioner:org-main/dr-grey", set()),  # org-main's dr-grey, not org-other's
        ("not a grantee!", set()),
    ],
)
def test_a_grantee_names_a_qualified_identity(grantee: str, admits: set[Actor]) -> None:
    consent = ConsentFacts(7, {"d": directive(grantee, ["TREAT"], ["mental_health"])})
    for actor in (GREY_OTHER, OUTSIDER):
        request = AccessRequest(
            actor, Purpose.TREAT, str(PATIENT), "org-main", Content.CLINICAL, TODAY
        )
        decision = decide(request, consent, [ACTIVE])
        assert decision.permit is (actor in admits), (grantee, actor)
        if decision.permit:
            assert decision.shows(["mental_health"])
