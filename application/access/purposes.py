"""The purposes of use an actor may assert: from the token, else the role's defaults.

The identity provider decides which purposes a person may claim (the token's
``purpose_of_use``, after IHE IUA); the ``X-Purpose-Of-Use`` header only chooses among
them. Without the claim, each role has the defaults below. ETREAT is only ever reached
through ``X-Break-Glass``, whose justification the policy decision point checks.
"""

from application.context import Actor, RequestContext, Role
from application.errors import Forbidden
from domain.vocabulary import Purpose

ROLE_DEFAULTS: dict[Role, frozenset[Purpose]] = {
    Role.CLINICIAN: frozenset({Purpose.TREAT, Purpose.ETREAT, Purpose.PUBHLTH}),
    Role.PATIENT: frozenset({Purpose.PATRQT}),
    Role.ADMIN: frozenset({Purpose.HOPERAT}),
    Role.AUDITOR: frozenset({Purpose.HOPERAT}),
    Role.SERVICE: frozenset({Purpose.TREAT}),
}
DEFAULT_PURPOSE: dict[Role, Purpose] = {
    Role.CLINICIAN: Purpose.TREAT,
    Role.PATIENT: Purpose.PATRQT,
    Role.ADMIN: Purpose.HOPERAT,
    Role.AUDITOR: Purpose.HOPERAT,
    Role.SERVICE: Purpose.TREAT,
}


def allowed(actor: Actor) -> frozenset[Purpose]:
    return actor.purposes if actor.purposes is not None else ROLE_DEFAULTS[actor.role]


def default_purpose(actor: Actor) -> Purpose:
    """The role's usual purpose if the token allows it, else the token's first."""
    usual = DEFAULT_PURPOSE[actor.role]
    permitted = allowed(actor) - {Purpose.ETREAT}
    if usual in permitted or not permitted:
        return usual
    return sorted(permitted)[0]


def admit_purpose(ctx: RequestContext) -> None:
    """403 (recorded as a denial) for a purpose the actor's token does not allow."""
    if ctx.purpose not in allowed(ctx.actor):
        raise Forbidden(f"the token does not allow the purpose of use {ctx.purpose}")
    if ctx.purpose is Purpose.ETREAT and ctx.break_glass is None:
        raise Forbidden("ETREAT is asserted only through X-Break-Glass")
