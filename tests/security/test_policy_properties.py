"""Properties of the policy decision point (``application.access.policy.decide``), over random
actors, purposes, directives, memberships, labels and contents; and one property of the
HTTP interface over random tokens against a fixed two-organisation store.

The invariants (issue 18):
(a) a staff or service actor of an organisation other than the patient's care
    organisation is permitted nothing without an in-force directive whose grantee
    names the actor's qualified identity (``org:<org>``, a bare ``<org>``,
    ``practitioner:<org>/<sub>``, or ``subscriber:<sub>`` for a service) and lists the
    purpose;
(b) clinical content reaches no one but the patient without an active membership
    (of the care organisation, for its own staff) or such a directive, except for
    break-glass (ETREAT) and public-health reporting (PUBHLTH);
(c) a sensitive label is shown only to the patient themself, under break-glass, or
    under an in-force directive naming the actor that allows that label for that
    purpose;
(d) administrators never get clinical content, demographics or consent;
(e) a patient gets only their own record.
"""

from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from api.app import create_app
from api.bootstrap import build
from application.access.policy import AccessRequest, ConsentFacts, Content, MembershipFact, decide
from application.context import Actor, Role
from domain.vocabulary import Purpose
from tests.conftest import make_settings
from tests.security.two_orgs import (
    ORG_MAIN,
    ORG_PHARMACY,
    SENTENCE,
    World,
    build_world,
    directive_body,
    mint,
    settled,
)

ORGS = ["org-a", "org-b", "org-c"]
SUBS = ["dr-grey", "dr-house", "svc-1", "org-b", "clinician"]  # an org's and a role's names
ROLES = list(Role)
PURPOSES = list(Purpose)
LABELS = ["substance_use", "mental_health", "sexual_health", "genetic"]
CONTENTS = [Content.DEMOGRAPHICS, Content.CLINICAL, Content.CONSENT, Content.DIRECTORY]
PATIENTS = [UUID(int=1), UUID(int=2)]
DAY = date(2026, 6, 1)
STAFF = {Role.CLINICIAN, Role.ADMIN, Role.AUDITOR, Role.SERVICE}

grantees = st.one_of(
    st.sampled_from(ORGS).map(lambda org: f"org:{org}"),
    st.builds(
        lambda org, sub: f"practitioner:{org}/{sub}", st.sampled_from(ORGS), st.sampled_from(SUBS)
    ),
    st.sampled_from(SUBS).map(lambda sub: f"subscriber:{sub}"),
    st.sampled_from(ORGS),  # bare: an organisation id
    st.sampled_from(SUBS),  # bare: a subject, read as an organisation nobody has
    st.sampled_from([str(role) for role in Role]),  # a role name: nobody
)

directives = st.fixed_dictionaries(
    {
        "grantee": grantees,
        "purposes": st.lists(st.sampled_from(PURPOSES).map(str), min_size=1, unique=True),
        "labels": st.lists(st.sampled_from(LABELS), unique=True),
        "period": st.fixed_dictionaries(
            {
                "start": st.sampled_from(["2020-01-01", "2026-06-01", "2026-07-01"]),
                "end": st.sampled_from([None, "2026-06-01", "2027-01-01"]),
            }
        ),
        "revoked_at": st.sampled_from([None, None, "2026-05-01T00:00:00+00:00"]),
        "granted_at": st.just("2020-01-01T00:00:00+00:00"),
        "revocation_reason": st.none(),
        "evidence": st.just(
            {
                "form_id": "f",
                "form_version": "1",
                "text_sha256": "0" * 64,
                "method": "electronic",
                "recorded_by": "someone",
            }
        ),
    }
)

consents = st.builds(
    lambda version, ds: ConsentFacts(version, {f"{i:032x}": d for i, d in enumerate(ds)}),
    st.integers(min_value=1, max_value=50),
    st.lists(directives, max_size=4),
)

memberships = st.lists(
    st.builds(
        MembershipFact,
        membership_id=st.sampled_from(["m-1", "m-2", "m-3"]),
        status=st.sampled_from(["active", "cancelled", "lapsed", "terminated"]),
        starts_on=st.sampled_from([date(2025, 1, 1), date(2026, 6, 1), date(2026, 7, 1)]),
        ends_on=st.sampled_from([date(2026, 5, 31), date(2026, 6, 1), date(2026, 12, 31)]),
        ended_on=st.sampled_from([None, date(2026, 5, 1), date(2026, 6, 2)]),
        version=st.integers(min_value=1, max_value=9),
    ),
    max_size=2,
)


@st.composite
def actors(draw: st.DrawFn) -> Actor:
    role = draw(st.sampled_from(ROLES))
    patient = draw(st.sampled_from(PATIENTS)) if role is Role.PATIENT else None
    return Actor(
        id=draw(st.sampled_from(SUBS)),
        role=role,
        org=draw(st.sampled_from(ORGS)),
        patient_id=patient,
    )


@st.composite
def requests(draw: st.DrawFn) -> AccessRequest:
    return AccessRequest(
        actor=draw(actors()),
        purpose=draw(st.sampled_from(PURPOSES)),
        patient_id=str(draw(st.sampled_from(PATIENTS))),
        care_organisation=draw(st.sampled_from(ORGS)),
        content=draw(st.sampled_from(CONTENTS)),
        day=DAY,
        break_glass=draw(st.sampled_from([None, SENTENCE, "a" * 20])),
    )


# The rules, written independently of the implementation ---------------------------------


def names(grantee: str, actor: Actor) -> bool:
    """Whether a grantee text names this actor's qualified identity."""
    kind, colon, rest = grantee.partition(":")
    if colon and kind == "org":
        return rest == actor.org
    if colon and kind == "practitioner":
        org, _, sub = rest.partition("/")
        return actor.role is not Role.PATIENT and (org, sub) == (actor.org, actor.id)
    if colon and kind == "subscriber":
        return actor.role is Role.SERVICE and rest == actor.id
    return grantee == actor.org  # a bare string is an organisation id


def in_force(directive: Mapping[str, Any], day: date) -> bool:
    period = directive["period"]
    today = day.isoformat()
    started = period["start"] <= today
    not_ended = period["end"] is None or today < period["end"]
    return started and not_ended and directive["revoked_at"] is None


def qualifying(consent: ConsentFacts, request: AccessRequest, label: str | None = None) -> bool:
    """An in-force directive names the actor and lists the purpose (and the label)."""
    return any(
        in_force(d, request.day)
        and names(d["grantee"], request.actor)
        and str(request.purpose) in d["purposes"]
        and (label is None or label in d["labels"])
        for d in consent.directives.values()
    )


def self_patient(request: AccessRequest) -> bool:
    actor = request.actor
    return actor.role is Role.PATIENT and str(actor.patient_id) == request.patient_id


@settings(max_examples=300, deadline=None)
@given(request=requests(), consent=consents, facts=memberships)
def test_the_policy_never_permits_beyond_the_rules(
    request: AccessRequest, consent: ConsentFacts, facts: list[MembershipFact]
) -> None:
    decision = decide(request, consent, facts)
    actor = request.actor
    if not decision.permit:
        return
    # (e) a patient only their own record
    if actor.role is Role.PATIENT:
        assert self_patient(request), decision
    # (d) administrators never get clinical content, demographics or consent
    if actor.role is Role.ADMIN:
        assert request.content not in (Content.CLINICAL, Content.DEMOGRAPHICS, Content.CONSENT)
    # (a) another organisation's staff and services: only through a directive naming them
    if actor.role in STAFF and actor.org != request.care_organisation:
        assert qualifying(consent, request), decision
    # (b) clinical content needs the care relationship or a directive
    if request.content is Content.CLINICAL and actor.role is not Role.PATIENT:
        cared_for = actor.org == request.care_organisation and any(
            m.active_on(request.day) for m in facts
        )
        exempt = request.purpose in (Purpose.ETREAT, Purpose.PUBHLTH)
        assert cared_for or exempt or qualifying(consent, request), decision
    # (c) a sensitive label is shown to the patient, under break-glass, or by a directive
    if request.content is Content.CLINICAL:
        for label in LABELS:
            if decision.shows({label}):
                assert (
                    self_patient(request)
                    or request.purpose is Purpose.ETREAT
                    or qualifying(consent, request, label)
                ), (label, decision)


@settings(max_examples=100, deadline=None)
@given(
    actor=actors(),
    care=st.sampled_from(ORGS),
    consent=consents,
    content=st.sampled_from(CONTENTS),
    patient=st.sampled_from(PATIENTS),
)
def test_the_policy_still_serves_the_patient_and_their_clinicians(
    actor: Actor, care: str, consent: ConsentFacts, content: Content, patient: UUID
) -> None:
    """Not vacuous: the patient reads their own record, and a clinician of the care
    organisation treats a member, whatever the directives say."""
    own = Actor(id="patient-x", role=Role.PATIENT, org=care, patient_id=patient)
    mine = AccessRequest(own, Purpose.PATRQT, str(patient), care, content, DAY)
    decision = decide(mine, consent, [])
    assert decision.permit and all(decision.shows({label}) for label in LABELS), decision
    member = MembershipFact("m-1", "active", date(2026, 1, 1), date(2026, 12, 31), None, 1)
    clinician = Actor(id=actor.id, role=Role.CLINICIAN, org=care)
    treat = AccessRequest(clinician, Purpose.TREAT, str(patient), care, Content.CLINICAL, DAY)
    decision = decide(treat, consent, [member])
    assert decision.permit and decision.shows(()), decision


# Over HTTP: random tokens against a fixed two-organisation store ------------------------


@pytest.fixture(scope="module")
def sqlite_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The two-organisation store on SQLite, built once for the property's examples
    (which only read: their access records are all they add)."""
    root: Path = tmp_path_factory.mktemp("two-orgs")
    container = build(
        make_settings(f"sqlite:///{root / 'careledger.db'}", root / "var"), run_processes=True
    )
    try:
        with TestClient(create_app(container), raise_server_exceptions=False) as client:
            world = build_world(client)
            # Directives that name nobody: a role, and a bare subject (an organisation
            # id no one has). Only org-pharmacy's directive (TREAT) names anyone.
            for grantee in ("clinician", "service", "dr-grey"):
                granted = client.post(
                    f"/v1/patients/{world.main.patient_id}/consents",
                    json=directive_body(grantee, ["TREAT", "HOPERAT"], ["mental_health"]),
                    headers=world.main.patient,
                )
                assert granted.status_code == 201, granted.text
            yield world
    finally:
        container.close()


@st.composite
def tokens(draw: st.DrawFn) -> tuple[str, str, str, list[str] | None, dict[str, str]]:
    """An organisation, role and subject ("subscriber": our subscriber's id), the token's
    purpose_of_use claim if any, and the purpose or break-glass headers if any."""
    org = draw(st.sampled_from([ORG_MAIN, "org-other", "org-third", ORG_PHARMACY]))
    role = draw(st.sampled_from(["clinician", "admin", "auditor", "service"]))
    sub = draw(st.sampled_from(["dr-grey", "admin-1", "auditor-1", ORG_MAIN, "subscriber"]))
    claimed = draw(
        st.one_of(st.none(), st.lists(st.sampled_from(PURPOSES).map(str), unique=True, max_size=4))
    )
    extra: dict[str, str] = {}
    purpose = draw(st.one_of(st.none(), st.sampled_from(PURPOSES).map(str)))
    if purpose is not None:
        extra["X-Purpose-Of-Use"] = purpose
    if draw(st.booleans()):
        extra["X-Break-Glass"] = SENTENCE
    return org, role, sub, claimed, extra


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(drawn=tokens(), view=st.sampled_from(["/timeline", "", "/consents"]))
@example(drawn=("org-other", "clinician", "dr-grey", None, {}), view="/timeline")
@example(drawn=("org-other", "service", "subscriber", None, {}), view="/timeline")
@example(
    drawn=("org-other", "clinician", "dr-grey", ["HOPERAT"], {"X-Purpose-Of-Use": "HOPERAT"}),
    view="",
)
@example(drawn=(ORG_PHARMACY, "clinician", "dr-grey", None, {}), view="/timeline")
def test_no_cross_organisation_read_without_a_directive_over_http(
    sqlite_world: World,
    drawn: tuple[str, str, str, list[str] | None, dict[str, str]],
    view: str,
) -> None:
    org, role, sub, claimed, extra = drawn
    world, main = sqlite_world, sqlite_world.main
    sub = main.subscriber_id if sub == "subscriber" else sub
    token = mint(role, sub=sub, org=org, purpose_of_use=claimed)
    response = world.client.get(
        f"/v1/patients/{main.patient_id}{view}",
        params=settled(world.client),
        headers={**token, **extra},
    )
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        assert main.mrn not in response.text and main.displays["plain"] not in response.text
        return
    # Only our own clinicians read, or org-pharmacy under the patient's TREAT directive
    purpose = "ETREAT" if "X-Break-Glass" in extra else extra.get("X-Purpose-Of-Use", "TREAT")
    by_directive = org == ORG_PHARMACY and purpose == "TREAT" and role != "admin"
    assert role not in ("admin", "auditor"), (org, role, purpose, view, response.text)
    assert (org == ORG_MAIN and role == "clinician") or by_directive, (
        org,
        role,
        purpose,
        view,
        response.text,
    )
    if org != ORG_MAIN:
        assert main.displays["mental"] not in response.text  # the directive has no such label
