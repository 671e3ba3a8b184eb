"""Who may do what to a chart.

These are the role and organisation rules of the foundation. The consent- and
membership-aware policy decision point replaces ``authorise`` without changing
its callers.
"""

from enum import StrEnum

from application.context import RequestContext, Role
from application.errors import Forbidden, Gone, NotFound
from domain.patient import Patient
from domain.vocabulary import Purpose


class ChartAction(StrEnum):
    READ_DEMOGRAPHICS = "read_demographics"
    READ_CLINICAL = "read_clinical"
    SEARCH = "search"
    REGISTER = "register"
    WRITE_CLINICAL = "write_clinical"
    READ_CONSENT = "read_consent"
    MANAGE_CONSENT = "manage_consent"
    MANAGE_MEMBERSHIP = "manage_membership"
    ERASE = "erase"
    VERIFY_LOG = "verify_log"


_ROLES: dict[ChartAction, frozenset[Role]] = {
    ChartAction.READ_DEMOGRAPHICS: frozenset({Role.CLINICIAN, Role.PATIENT}),
    ChartAction.READ_CLINICAL: frozenset({Role.CLINICIAN, Role.PATIENT}),
    ChartAction.SEARCH: frozenset({Role.CLINICIAN}),
    ChartAction.REGISTER: frozenset({Role.CLINICIAN}),
    ChartAction.WRITE_CLINICAL: frozenset({Role.CLINICIAN}),
    ChartAction.READ_CONSENT: frozenset({Role.CLINICIAN, Role.PATIENT}),
    ChartAction.MANAGE_CONSENT: frozenset({Role.CLINICIAN, Role.PATIENT}),
    ChartAction.MANAGE_MEMBERSHIP: frozenset({Role.ADMIN}),
    ChartAction.ERASE: frozenset({Role.ADMIN}),
    ChartAction.VERIFY_LOG: frozenset({Role.AUDITOR, Role.ADMIN}),
}


def require_role(ctx: RequestContext, action: ChartAction) -> None:
    """403 for a role that may never do this, before anything is looked up."""
    if ctx.actor.role not in _ROLES[action]:
        raise Forbidden(f"the {ctx.actor.role} role may not {action.replace('_', ' ')}")


TREATMENT = frozenset({Purpose.TREAT, Purpose.ETREAT})


def require_treatment(ctx: RequestContext) -> None:
    """Clinical data is written in the course of treatment, never for another purpose."""
    if ctx.purpose not in TREATMENT:
        raise Forbidden(f"clinical data is written for treatment, not {ctx.purpose}")


def authorise(ctx: RequestContext, action: ChartAction, patient: Patient) -> None:
    """Raise unless the actor may do ``action`` on this patient's chart.

    A chart outside the actor's reach is reported as not found, so that its
    existence does not leak (404, not 403).
    """
    require_role(ctx, action)
    actor = ctx.actor
    if actor.role is Role.PATIENT:
        if actor.patient_id != patient.id:
            raise NotFound("patient")
    elif actor.org != patient.organisation_id:
        raise NotFound("patient")
    if patient.erased:
        raise Gone("the patient's record has been erased")
