"""Which roles may ever ask for what: a 403 before anything is looked up.

Whether this actor may act on this chart (its organisation, the patient, consent,
memberships) is the policy decision point's, through ``ChartGate``, for reads and
writes alike.
"""

from enum import StrEnum

from application.context import RequestContext, Role
from application.errors import Forbidden


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
