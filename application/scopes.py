"""SMART App Launch v2 scopes: which resource types and interactions a token allows.

Scopes narrow and never widen. The policy decides what the actor's role and
organisation may do; a token's scopes then admit only the resource types and
interactions they name, and ``patient/`` scopes only for the token's launch patient.
A token without a ``scope`` claim is not narrowed (docs/security.md, "SMART scopes").

Grammar (SMART v2): ``patient|user|system`` ``/`` a FHIR type or ``*`` ``.`` a subset of
``cruds`` in that order; the v1 suffixes ``read`` (rs), ``write`` (cud) and ``*``
(cruds) are read as their v2 equivalents. A scope with a query (``?category=...``) or
one that does not parse grants nothing: honouring it in part would widen it. Other
scopes (``openid``, ``fhirUser``, ``launch/patient``, ``offline_access``) grant no data.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

INTERACTIONS = "cruds"
CONTEXTS = ("patient", "user", "system")
NAMES = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}
V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": "cruds"}
# Scopes a client may hold that grant no data here (identity, launch, refresh).
OTHER_SCOPES = frozenset(
    {"openid", "fhirUser", "profile", "launch", "launch/patient", "offline_access", "online_access"}
)


@dataclass(frozen=True)
class Scope:
    context: str  # patient, user or system
    resource: str  # a FHIR resource type, or "*"
    permissions: frozenset[str]  # letters of "cruds"


@dataclass(frozen=True)
class Need:
    """What a request does: one interaction on one resource type."""

    resource: str
    interaction: str  # one letter of "cruds"


def parse_scope(text: str) -> Scope | None:
    """The scope, or None for one that grants no data (or does not parse)."""
    context, slash, rest = text.partition("/")
    if not slash or context not in CONTEXTS or "?" in rest:
        return None
    resource, dot, permissions = rest.rpartition(".")
    if not dot or not (resource == "*" or (resource.isalpha() and resource[:1].isupper())):
        return None
    letters = V1_PERMISSIONS.get(permissions, permissions)
    in_order = "".join(p for p in INTERACTIONS if p in letters)
    if not letters or in_order != letters:
        return None  # v2 permissions are a subset of cruds, in that order, no repeats
    return Scope(context, resource, frozenset(letters))


@dataclass(frozen=True)
class Grant:
    """A token's scopes, and the patient its launch context pins ``patient/`` scopes to."""

    scopes: tuple[Scope, ...]
    launch_patient: UUID | None = None

    @classmethod
    def of(cls, texts: Iterable[str], launch_patient: UUID | None) -> "Grant":
        parsed = (parse_scope(t) for t in texts)
        return cls(tuple(s for s in parsed if s is not None), launch_patient)

    def refusal(self, needs: Iterable[Need], patient: UUID | None) -> str | None:
        """Why these scopes do not allow every need for this patient, or None."""
        for need in needs:
            fits = [
                s
                for s in self.scopes
                if s.resource in ("*", need.resource) and need.interaction in s.permissions
            ]
            if any(s.context != "patient" or self._pinned(patient) for s in fits):
                continue
            action = f"{NAMES[need.interaction]} of {need.resource}"
            if fits:
                return (
                    f"the token's patient/ scopes allow {action} only for its launch "
                    "patient, and this request does not name that patient"
                )
            return f"the token's scopes do not allow {action}"
        return None

    def _pinned(self, patient: UUID | None) -> bool:
        return self.launch_patient is not None and patient == self.launch_patient
