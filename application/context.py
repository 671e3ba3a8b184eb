"""Who is asking, for what purpose: the one request-scoped context every use case takes."""

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING
from uuid import UUID

from domain.vocabulary import Purpose

if TYPE_CHECKING:
    from application.scopes import Grant


class Role(StrEnum):
    CLINICIAN = "clinician"
    AUDITOR = "auditor"
    PATIENT = "patient"
    ADMIN = "admin"
    SERVICE = "service"


@dataclass(frozen=True)
class Actor:
    """A person or service, qualified: (organisation, role, subject) together name them."""

    id: str
    role: Role
    org: str
    patient_id: UUID | None = None
    # The purposes of use the identity provider allows (the token's ``purpose_of_use``);
    # None: the role's defaults (``application.access.purposes``).
    purposes: frozenset[Purpose] | None = None
    # The token's SMART scopes (``application.scopes``), which narrow what the
    # policy permits; None: the token has no ``scope`` claim and is not narrowed.
    scopes: "Grant | None" = None


@dataclass(frozen=True)
class RequestContext:
    """Built once per request by the API; the seam for authorization and audit."""

    actor: Actor
    purpose: Purpose
    request_id: str
    source: str = ""
    break_glass: str | None = None
    idempotency_key: str | None = None
    request_fingerprint: str = ""  # sha256 of method, path and body, for idempotency
    channel: str = "api"  # where disclosures are shown: "api" or "console" (the web pages)
