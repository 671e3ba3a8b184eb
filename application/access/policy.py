"""The policy decision point: may this actor see this patient's data, for this purpose?

Pure: every input is passed in (the actor, the purpose, the patient's care
organisation, the labels present in the data, the time, and the consent and
membership state as of known stream versions), so a decision can be recomputed
exactly when an access is replayed. The default policy (docs/security.md) is:

- a patient reads their own record, all of it;
- clinicians of the patient's care organisation read the chart's clinical content,
  for any purpose of treatment, payment or operations, only within a care
  relationship: an active membership (demographics, the directory and consent, which
  registration and enrolment need, do not wait for one);
- a clinician of that organisation may break the glass (ETREAT) without membership or
  consent, all labels included, with a justification of substance (``substantive``);
- public-health reporting by the care organisation (a clinician's report, or deliveries
  to a registry subscribed for PUBHLTH) needs no authorisation (it is required by law)
  but is accounted for to the patient;
- a subscriber of the care organisation (its pharmacy, say) receives deliveries for
  TPO as a clinician would read them, within an active membership for TREAT;
- anyone else (another organisation, a service, marketing, research) needs an active
  directive naming their qualified identity (``domain.grantee``) for that purpose;
- a subscriber discloses only the patients of the organisation that registered it;
- admins never read clinical content; auditors see it only through replay, and only
  of their own organisation's patients;
- writes (``AccessRequest.write``) are decided here too: clinical content and consent
  by clinicians of the care organisation, consent by the patient, memberships and
  erasure by its administrators;
- sensitive labels are hidden unless a directive allows the label for that grantee
  (break-glass and the patient themself excepted). Hidden entries are left out.
"""

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum
from typing import Any

from application.context import Actor, Role
from domain.grantee import Grantee
from domain.membership import membership_active_on
from domain.vocabulary import Purpose

# The rules decisions are made by; an access record names it, so that replay rebuilds
# what an earlier version disclosed by that version's rules (``policy_v1``).
POLICY_VERSION = 2
BREAK_GLASS_MIN_CHARS = 20
BREAK_GLASS_MIN_WORDS = 3  # distinct words of three letters or more
TPO = frozenset({Purpose.TREAT, Purpose.HPAYMT, Purpose.HOPERAT})


class Content(StrEnum):
    """What the response would disclose."""

    DEMOGRAPHICS = "demographics"
    CLINICAL = "clinical"  # entries: the timeline, a clinical write's echo
    CONSENT = "consent"
    DIRECTORY = "directory"  # search hits: ids, names, birth dates
    MEMBERSHIP = "membership"  # enrolment, renewal, cancellation (writes)
    ERASURE = "erasure"  # crypto-shredding (a write)


@dataclass(frozen=True)
class MembershipFact:
    """A membership as of a stream version (from the roster view or the log)."""

    membership_id: str
    status: str
    starts_on: date
    ends_on: date
    ended_on: date | None
    version: int

    def active_on(self, day: date) -> bool:
        return membership_active_on(self.status, self.starts_on, self.ends_on, self.ended_on, day)


@dataclass(frozen=True)
class ConsentFacts:
    """The consent stream's directives (in the consent-state view's JSON shape)."""

    version: int
    directives: Mapping[str, Mapping[str, Any]]

    def in_force(self, day: date) -> Iterable[tuple[str, Mapping[str, Any]]]:
        today = day.isoformat()
        for directive_id, d in sorted(self.directives.items()):
            period = d["period"]
            started = period["start"] <= today
            not_ended = period["end"] is None or today < period["end"]
            if started and not_ended and d["revoked_at"] is None:
                yield directive_id, d


@dataclass(frozen=True)
class AccessRequest:
    actor: Actor
    purpose: Purpose
    patient_id: str
    care_organisation: str
    content: Content
    day: date
    break_glass: str | None = None
    replay: bool = False  # an auditor rebuilding a recorded response
    delivery: bool = False  # an event delivered to a registered subscriber
    write: bool = False  # a change to the chart, consent or memberships, not a read
    # A delivery's discloser: the organisation that registered the subscriber. It
    # discloses only its own patients, whoever the recipient is.
    discloser: str | None = None


@dataclass(frozen=True)
class Basis:
    consent_version: int | None = None
    directive_id: str | None = None
    membership_id: str | None = None
    break_glass: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class Decision:
    permit: bool
    reason: str
    basis: Basis = field(default_factory=Basis)
    allowed_labels: frozenset[str] | None = None  # None: every label; else the rest hidden
    # The patient's care organisation: whose auditors see the access record.
    care_organisation: str | None = None
    # A refusal that a membership or directive not yet in the views could turn.
    rests_on_views: bool = False

    def shows(self, labels: Iterable[str]) -> bool:
        return self.allowed_labels is None or set(labels) <= self.allowed_labels


def deny(reason: str, *, rests_on_views: bool = False) -> Decision:
    return Decision(False, reason, rests_on_views=rests_on_views)


def substantive(justification: str | None) -> bool:
    """A break-glass justification says something: 20 characters or more, with at
    least three different words of three letters or more (not ``"a" * 20``)."""
    text = (justification or "").strip()
    words = {w for w in re.findall(r"[^\W\d_]{3,}", text.lower())}
    return len(text) >= BREAK_GLASS_MIN_CHARS and len(words) >= BREAK_GLASS_MIN_WORDS


def decide(
    request: AccessRequest, consent: ConsentFacts, memberships: Sequence[MembershipFact]
) -> Decision:
    decision = _decide(request, consent, memberships)
    return replace(decision, care_organisation=request.care_organisation)


def _decide(
    request: AccessRequest, consent: ConsentFacts, memberships: Sequence[MembershipFact]
) -> Decision:
    actor = request.actor
    if actor.role is Role.PATIENT:
        return _patient(request)
    own_organisation = actor.org == request.care_organisation
    if request.write:
        return _write(request, own_organisation)
    if actor.role is Role.AUDITOR:
        if request.replay and own_organisation:
            return Decision(True, "an auditor's replay of a recorded access")
        return deny("auditors see clinical content only through replay, of their patients")
    if actor.role is Role.ADMIN:
        if not own_organisation:
            return deny("administrators act only within their own organisation")
        if request.content in (Content.CLINICAL, Content.DEMOGRAPHICS, Content.CONSENT):
            return deny("administrators never read clinical content")
        return Decision(True, "administration of the organisation's records")
    if request.delivery and request.discloser != request.care_organisation:
        return deny("a subscriber discloses only its registering organisation's patients")
    if request.purpose is Purpose.ETREAT:
        return _break_glass(request, own_organisation)
    if own_organisation and request.purpose in TPO and _acts_for_care(request):
        return _own_organisation(request, consent, memberships)
    reports = (own_organisation and actor.role is Role.CLINICIAN) or request.delivery
    if request.purpose is Purpose.PUBHLTH and reports:
        # Public-health reporting required by law (164.512(b)), by a clinician of the
        # organisation or to a registry its administrator subscribed: no authorisation
        # is needed, sensitive labels stay hidden, and it is in the patient's accounting.
        return Decision(
            True, "public-health reporting required by law", Basis(consent.version), frozenset()
        )
    return _by_directive(request, consent)


def _patient(request: AccessRequest) -> Decision:
    actor = request.actor
    own = actor.patient_id is not None and str(actor.patient_id) == request.patient_id
    if not own or actor.org != request.care_organisation:  # identities carry the org
        return deny("a patient may act only on their own record")
    if request.write and request.content is not Content.CONSENT:
        return deny("a patient changes only their consent")
    return Decision(True, "the patient's own record")


_WRITERS: dict[Content, Role] = {
    Content.CLINICAL: Role.CLINICIAN,
    Content.DEMOGRAPHICS: Role.CLINICIAN,
    Content.CONSENT: Role.CLINICIAN,
    Content.MEMBERSHIP: Role.ADMIN,
    Content.ERASURE: Role.ADMIN,
}


def _write(request: AccessRequest, own_organisation: bool) -> Decision:
    """Staff change only their own organisation's records, each role its own part."""
    if not own_organisation:
        return deny("staff change only their own organisation's records")
    if _WRITERS.get(request.content) is not request.actor.role:
        return deny(f"the {request.actor.role} role may not change {request.content}")
    clinical = request.content in (Content.CLINICAL, Content.DEMOGRAPHICS)
    if clinical and request.purpose not in (Purpose.TREAT, Purpose.ETREAT):
        return deny(f"clinical data is written for treatment, not {request.purpose}")
    return Decision(True, f"a change to the {request.content} by its organisation")


def _acts_for_care(request: AccessRequest) -> bool:
    role = request.actor.role
    return role is Role.CLINICIAN or (role is Role.SERVICE and request.delivery)


def _break_glass(request: AccessRequest, own_organisation: bool) -> Decision:
    justification = (request.break_glass or "").strip()
    if request.actor.role is not Role.CLINICIAN or not own_organisation:
        return deny("only a clinician of the patient's organisation may break the glass")
    if not substantive(justification):
        return deny("break-glass needs a justification of substance")
    return Decision(True, "break-glass", Basis(break_glass=justification))


def _own_organisation(
    request: AccessRequest, consent: ConsentFacts, memberships: Sequence[MembershipFact]
) -> Decision:
    labels, directive_id = _labels_allowed(request, consent, request.purpose)
    if request.content is Content.CLINICAL:
        # Treatment, payment and operations alike: clinical content only within a care
        # relationship, so a self-chosen purpose cannot reach a stranger's chart.
        active = sorted(
            (m for m in memberships if m.active_on(request.day)), key=lambda m: m.membership_id
        )
        if not active:
            return deny(
                "no active membership: clinical content needs a care relationship",
                rests_on_views=True,
            )
        basis = Basis(consent.version, directive_id, active[0].membership_id)
        return Decision(True, "care within an active membership", basis, labels)
    basis = Basis(consent.version, directive_id)
    return Decision(True, "payment or operations of the care organisation", basis, labels)


def _by_directive(request: AccessRequest, consent: ConsentFacts) -> Decision:
    grantees = identities(request.actor, delivery=request.delivery)
    for directive_id, d in consent.in_force(request.day):
        if _grantee(d) in grantees and request.purpose in d["purposes"]:
            basis = Basis(consent.version, directive_id)
            return Decision(True, "an active directive", basis, frozenset(d["labels"]))
    return deny(
        f"no active directive allows {request.purpose} for this recipient", rests_on_views=True
    )


def _labels_allowed(
    request: AccessRequest, consent: ConsentFacts, purpose: Purpose
) -> tuple[frozenset[str], str | None]:
    """Labels some in-force directive allows this actor; the first such directive."""
    grantees = identities(request.actor, delivery=request.delivery)
    allowed: set[str] = set()
    first: str | None = None
    for directive_id, d in consent.in_force(request.day):
        if _grantee(d) in grantees and purpose in d["purposes"] and d["labels"]:
            allowed |= set(d["labels"])
            first = first or directive_id
    return frozenset(allowed), first


def identities(actor: Actor, *, delivery: bool = False) -> set[str]:
    """The grantee references that name this actor: their organisation, and themself
    as a practitioner of it, or (a delivery) as the subscriber. Never a role."""
    named = {f"org:{actor.org}"}
    if actor.role is Role.SERVICE:
        if delivery:
            named.add(f"subscriber:{actor.id}")
    elif actor.role is not Role.PATIENT:
        named.add(f"practitioner:{actor.org}/{actor.id}")
    return named


def _grantee(directive: Mapping[str, Any]) -> str:
    """The directive's typed reference; a view row from before typed grantees holds
    only the text, read by the same rule as the event's upcast."""
    reference = directive.get("grantee_ref")
    if reference is None:
        found = Grantee.read(directive["grantee"])
        reference = str(found) if found is not None else ""
    return str(reference)
