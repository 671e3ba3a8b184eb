"""The policy decision point: may this actor see this patient's data, for this purpose?

Pure: every input is passed in (the actor, the purpose, the patient's care
organisation, the labels present in the data, the time, and the consent and
membership state as of known stream versions), so a decision can be recomputed
exactly when an access is replayed. The default policy is DESIGN.md §2:

- a patient reads their own record, all of it;
- clinicians of the patient's care organisation read the chart's clinical content for
  TREAT only while a membership is active (demographics, the directory and consent,
  which registration and enrolment need, do not wait for one); payment and operations
  by that organisation need no directive (TPO);
- a clinician of that organisation may break the glass (ETREAT) without membership or
  consent, all labels included, with a justification of 20 characters or more;
- public-health reporting by the care organisation (a clinician's report, or deliveries
  to a registry subscribed for PUBHLTH) needs no authorisation (it is required by law)
  but is accounted for to the patient;
- a subscriber of the care organisation (its pharmacy, say) receives deliveries for
  TPO as a clinician would read them, within an active membership for TREAT;
- anyone else (another organisation, a service, marketing, research) needs an active
  directive naming them as grantee for that purpose;
- admins never read clinical content; auditors see it only through replay;
- sensitive labels are hidden unless a directive allows the label for that grantee
  (break-glass and the patient themself excepted). Hidden entries are left out.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from application.context import Actor, Role
from domain.membership import membership_active_on
from domain.vocabulary import Purpose

BREAK_GLASS_MIN_CHARS = 20
TPO = frozenset({Purpose.TREAT, Purpose.HPAYMT, Purpose.HOPERAT})


class Content(StrEnum):
    """What the response would disclose."""

    DEMOGRAPHICS = "demographics"
    CLINICAL = "clinical"  # entries: the timeline, a clinical write's echo
    CONSENT = "consent"
    DIRECTORY = "directory"  # search hits: ids, names, birth dates


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

    def shows(self, labels: Iterable[str]) -> bool:
        return self.allowed_labels is None or set(labels) <= self.allowed_labels


def deny(reason: str) -> Decision:
    return Decision(False, reason)


def decide(
    request: AccessRequest, consent: ConsentFacts, memberships: Sequence[MembershipFact]
) -> Decision:
    actor = request.actor
    if actor.role is Role.PATIENT:
        if actor.patient_id is not None and str(actor.patient_id) == request.patient_id:
            return Decision(True, "the patient's own record")
        return deny("a patient may read only their own record")
    if actor.role is Role.AUDITOR:
        if request.replay:
            return Decision(True, "an auditor's replay of a recorded access")
        return deny("auditors see clinical content only through replay")
    if actor.role is Role.ADMIN:
        if request.content in (Content.CLINICAL, Content.DEMOGRAPHICS, Content.CONSENT):
            return deny("administrators never read clinical content")
        return Decision(True, "administration of the organisation's records")
    own_organisation = actor.org == request.care_organisation
    if request.purpose is Purpose.ETREAT:
        return _break_glass(request, own_organisation)
    if own_organisation and request.purpose in TPO and _acts_for_care(request):
        return _own_organisation(request, consent, memberships)
    reports = (own_organisation and actor.role is Role.CLINICIAN) or request.delivery
    if request.purpose is Purpose.PUBHLTH and reports:
        # Public-health reporting required by law (164.512(b)), by a clinician of the
        # organisation or to a registry an administrator subscribed: no authorisation
        # is needed, sensitive labels stay hidden, and it is in the patient's accounting.
        return Decision(
            True, "public-health reporting required by law", Basis(consent.version), frozenset()
        )
    return _by_directive(request, consent)


def _acts_for_care(request: AccessRequest) -> bool:
    role = request.actor.role
    return role is Role.CLINICIAN or (role is Role.SERVICE and request.delivery)


def _break_glass(request: AccessRequest, own_organisation: bool) -> Decision:
    justification = (request.break_glass or "").strip()
    if request.actor.role is not Role.CLINICIAN or not own_organisation:
        return deny("only a clinician of the patient's organisation may break the glass")
    if len(justification) < BREAK_GLASS_MIN_CHARS:
        return deny(f"break-glass needs a justification of {BREAK_GLASS_MIN_CHARS}+ characters")
    return Decision(True, "break-glass", Basis(break_glass=justification))


def _own_organisation(
    request: AccessRequest, consent: ConsentFacts, memberships: Sequence[MembershipFact]
) -> Decision:
    labels, directive_id = _labels_allowed(request, consent, request.purpose)
    if request.purpose is Purpose.TREAT and request.content is Content.CLINICAL:
        active = sorted(
            (m for m in memberships if m.active_on(request.day)), key=lambda m: m.membership_id
        )
        if not active:
            return deny("no active membership: treatment access needs a care relationship")
        basis = Basis(consent.version, directive_id, active[0].membership_id)
        return Decision(True, "treatment within an active membership", basis, labels)
    basis = Basis(consent.version, directive_id)
    return Decision(True, "payment or operations of the care organisation", basis, labels)


def _by_directive(request: AccessRequest, consent: ConsentFacts) -> Decision:
    grantees = _identities(request.actor)
    for directive_id, d in consent.in_force(request.day):
        if d["grantee"] in grantees and request.purpose in d["purposes"]:
            basis = Basis(consent.version, directive_id)
            return Decision(True, "an active directive", basis, frozenset(d["labels"]))
    return deny(f"no active directive allows {request.purpose} for this recipient")


def _labels_allowed(
    request: AccessRequest, consent: ConsentFacts, purpose: Purpose
) -> tuple[frozenset[str], str | None]:
    """Labels some in-force directive allows this actor; the first such directive."""
    grantees = _identities(request.actor)
    allowed: set[str] = set()
    first: str | None = None
    for directive_id, d in consent.in_force(request.day):
        if d["grantee"] in grantees and purpose in d["purposes"] and d["labels"]:
            allowed |= set(d["labels"])
            first = first or directive_id
    return frozenset(allowed), first


def _identities(actor: Actor) -> set[str]:
    return {actor.org, actor.id, str(actor.role)}
