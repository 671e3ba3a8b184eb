"""The label rule of the first policy, frozen, so that replay rebuilds a timeline page
disclosed under it exactly as it was sent.

Version 1 (before issue 18) matched a directive's grantee, a bare text, against the
actor's organisation, subject or role name, and showed break-glass every label. Its
decisions are history: nothing decides a new access by them, only replay of a record
whose request carries no ``policy`` version.
"""

from collections.abc import Mapping
from datetime import date
from typing import Any

from application.access.policy import TPO, ConsentFacts
from application.context import Actor, Role
from domain.vocabulary import Purpose


def labels_shown(
    actor: Actor,
    purpose: Purpose,
    care_organisation: str,
    consent: ConsentFacts,
    day: date,
    basis: Mapping[str, Any],
) -> frozenset[str] | None:
    """The labels a version 1 permit showed (None: all of them)."""
    if actor.role is Role.PATIENT or "break_glass" in basis:
        return None
    names = {actor.org, actor.id, str(actor.role)}
    in_force = dict(consent.in_force(day))
    own = actor.org == care_organisation
    if own and purpose in TPO:  # every directive naming them, for that purpose
        return frozenset(
            label
            for d in in_force.values()
            if d["grantee"] in names and purpose in d["purposes"]
            for label in d["labels"]
        )
    directive = in_force.get(basis.get("directive_id", ""))
    if directive is None:  # public health, or nothing named: no label shown
        return frozenset()
    return frozenset(directive["labels"])
