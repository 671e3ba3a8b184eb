"""The consent and membership bodies /v1 sends, for the OpenAPI document only (as in
``api.openapi_models``, which says why these models never serialise)."""

from datetime import date
from typing import Literal
from uuid import UUID

from pydantic import Field

from api.openapi_models import (
    DIRECTIVE,
    MEMBERSHIP,
    PATIENT,
    SHA,
    Cursor,
    Instant,
    Model,
    Sha256,
    example,
)
from domain.vocabulary import MembershipStatus, Plan, Purpose, SensitivityLabel, SigningMethod

# --- consent ----------------------------------------------------------------------------


class Period(Model):
    start: date
    end: date | None


class Evidence(Model):
    form_id: str
    form_version: str
    text_sha256: Sha256
    method: SigningMethod
    recorded_by: str | None = None


class Directive(Model):
    directive_id: UUID
    grantee: str = Field(description="`org:<org>`, `practitioner:<org>/<sub>`, `subscriber:<id>`")
    purposes: list[Purpose]
    labels: list[SensitivityLabel]
    period: Period
    evidence: Evidence
    status: Literal["active", "revoked", "inactive"]
    granted_at: Instant
    revoked_at: Instant | None
    revocation_reason: str | None


class Restriction(Model):
    restriction_id: UUID
    purposes: list[Purpose]
    labels: list[SensitivityLabel]
    recipient: str | None
    requested_at: Instant


class Consents(Model):
    model_config = example(
        {
            "patient_id": PATIENT,
            "consent_version": 2,
            "directives": [
                {
                    "directive_id": DIRECTIVE,
                    "grantee": "org:org-pharmacy",
                    "purposes": ["TREAT"],
                    "labels": ["substance_use"],
                    "period": {"start": "2026-01-01", "end": None},
                    "evidence": {
                        "form_id": "consent-42cfr2",
                        "form_version": "3",
                        "text_sha256": SHA,
                        "method": "electronic",
                        "recorded_by": "dr-main",
                    },
                    "status": "active",
                    "granted_at": "2026-12-06T02:15:48.682072Z",
                    "revoked_at": None,
                    "revocation_reason": None,
                }
            ],
            "restrictions": [],
        }
    )
    patient_id: UUID
    consent_version: int
    directives: list[Directive]
    restrictions: list[Restriction]


# --- memberships ------------------------------------------------------------------------


class MembershipRow(Model):
    id: UUID
    patient_id: UUID
    plan: Plan
    sponsor_id: str | None
    status: MembershipStatus
    starts_on: date
    ends_on: date
    version: int
    active_today: bool


class Memberships(Model):
    model_config = example(
        {
            "items": [
                {
                    "id": MEMBERSHIP,
                    "patient_id": PATIENT,
                    "plan": "employer",
                    "sponsor_id": "acme-corp",
                    "status": "active",
                    "starts_on": "2026-01-01",
                    "ends_on": "2026-12-31",
                    "version": 1,
                    "active_today": True,
                }
            ],
            "next_cursor": None,
        }
    )
    items: list[MembershipRow]
    next_cursor: Cursor
