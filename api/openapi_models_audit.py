"""The audit, subscriber and operations bodies, for the OpenAPI document only (the
chart's are in ``api.openapi_models``, which says why these models never serialise)."""

from typing import Any, Literal
from uuid import UUID

from pydantic import ConfigDict, Field

from api.openapi_models import (
    ACCESS,
    CURSOR,
    ENTRY,
    PATIENT,
    SHA,
    Action,
    Cursor,
    Instant,
    Model,
    Sha256,
    example,
)
from application.context import Role
from domain.vocabulary import EntryKind, Purpose, SensitivityLabel


class ActorRef(Model):
    id: str
    role: Role
    org: str


class Basis(Model):
    """Why a permit was given; further keys may appear as the policy grows."""

    model_config = ConfigDict(extra="allow")
    consent_version: int | None = None
    directive_id: UUID | None = None
    membership_id: UUID | None = None
    break_glass: str | None = Field(default=None, description="The justification given")


class Review(Model):
    outcome: Literal["justified", "unjustified", "needs_follow_up"]
    note: str
    by: str
    at: Instant


_ACCESS_EXAMPLE = {
    "access_id": ACCESS,
    "occurred_at": "2026-12-06T02:15:48.776551Z",
    "actor": {"id": "dr-main", "role": "clinician", "org": "org-main"},
    "purpose": "ETREAT",
    "action": "read",
    "patient_id": PATIENT,
    "entry_ids": [],
    "decision": "permit",
    "basis": {"break_glass": "unconscious patient arrived at emergency department"},
    "stream_versions": {PATIENT: 1},
    "response_sha256": SHA,
    "request_id": "7efccd6d-57b9-4b50-b7cb-ed0e81270bb8",
    "source": "203.0.113.7",
    "care_org": "org-main",
    "channel": "api",
    "reason": "break-glass",
    "review": None,
}


class AccessRecord(Model):
    """An access to PHI as the audit keeps it. A patient reading their own log does not
    see the staff's `request_id` and `source`."""

    model_config = example(_ACCESS_EXAMPLE)
    access_id: UUID
    occurred_at: Instant
    actor: ActorRef
    purpose: Purpose
    action: Action
    patient_id: UUID | None
    entry_ids: list[UUID]
    decision: Literal["permit", "deny"]
    basis: Basis
    stream_versions: dict[str, int] = Field(description="Stream id to the version disclosed")
    response_sha256: Sha256 | None = Field(description="SHA-256 of the body; null for a deny")
    request_id: str | None = Field(default=None, description="`X-Request-Id`; staff only")
    source: str | None = Field(default=None, description="Network source; staff only")
    care_org: str | None
    channel: Literal["api", "console"] = Field(
        default="api", description="Where it was shown: the API, or the web console"
    )
    reason: str
    review: Review | None


class AccessPage(Model):
    model_config = example({"items": [_ACCESS_EXAMPLE], "next_cursor": CURSOR})
    items: list[AccessRecord] = Field(description="Newest first")
    next_cursor: Cursor


class BreakGlassQueue(Model):
    model_config = example({"items": [_ACCESS_EXAMPLE], "next_cursor": None, "pending": 1})
    items: list[AccessRecord]
    next_cursor: Cursor
    pending: int = Field(description="Items of this page not yet reviewed")


class Replayed(Model):
    model_config = example(
        {
            "access_id": ACCESS,
            "body": {"patient_id": PATIENT, "entries": [], "next_cursor": None},
            "recorded_sha256": SHA,
            "replayed_sha256": SHA,
            "matches": True,
        }
    )
    access_id: UUID
    body: Any = Field(description="The response rebuilt as it was disclosed")
    recorded_sha256: Sha256
    replayed_sha256: Sha256
    matches: bool


class ChainHead(Model):
    position: int
    link: Sha256


class Verified(Model):
    model_config = example(
        {"ok": True, "records_checked": 33, "head": {"position": 33, "link": SHA}}
    )
    ok: bool
    records_checked: int
    head: ChainHead | None
    first_bad_position: int | None = None
    problem: str | None = None


class Head(Model):
    model_config = example({"head": {"position": 33, "link": SHA}})
    head: ChainHead | None = Field(description="null on an empty store")


class AccountedDisclosure(Model):
    date: Instant = Field(description="When it was disclosed")
    recipient: str = Field(description="The recipient organisation")
    recipient_actor: str
    description: str
    purpose: Purpose
    access_id: UUID


class Accounting(Model):
    model_config = example(
        {
            "patient_id": PATIENT,
            "since": "2020-12-01T02:15:48.838626Z",
            "items": [
                {
                    "date": "2026-12-06T02:15:48.776551Z",
                    "recipient": "org-research",
                    "recipient_actor": "researcher-7",
                    "description": "read of the record (3 entries)",
                    "purpose": "HRESCH",
                    "access_id": ACCESS,
                }
            ],
            "next_cursor": None,
        }
    )
    patient_id: UUID
    since: Instant = Field(description="The start of the six years accounted for")
    items: list[AccountedDisclosure] = Field(description="Newest first")
    next_cursor: Cursor


# --- subscribers ------------------------------------------------------------------------


class Subscriber(Model):
    id: UUID
    name: str
    registering_org: str | None
    recipient_org: str
    purpose: Purpose
    kinds: list[EntryKind]
    labels: list[SensitivityLabel]
    content: Literal["id-only", "summary", "full"]


class Subscribers(Model):
    model_config = example(
        {
            "items": [
                {
                    "id": "6375d72b-0826-423c-8448-07f574664d4e",
                    "name": "Main St pharmacy",
                    "registering_org": "org-main",
                    "recipient_org": "org-pharmacy",
                    "purpose": "TREAT",
                    "kinds": ["medication"],
                    "labels": [],
                    "content": "summary",
                }
            ],
            "next_cursor": None,
        }
    )
    items: list[Subscriber]
    next_cursor: None = Field(description="Always null: the whole list is one page")


class FeedPayload(Model):
    """The entry, minimised to the subscriber's content level: `id-only` is the
    `entry_id` alone; `summary` adds kind, status, a code without display text and the
    effective time; `full` is the entry as the timeline shows it."""

    model_config = ConfigDict(extra="allow")
    entry_id: UUID


class FeedItem(Model):
    event_id: UUID = Field(description="Stable per delivery: deduplicate on it")
    position: int
    patient_id: UUID
    type: Literal["EntryRecorded", "EntryAmended", "EntryEnteredInError"]
    occurred_at: Instant
    payload: FeedPayload


class Feed(Model):
    model_config = example(
        {
            "items": [
                {
                    "event_id": "6186507f-2035-500c-a739-bacd65abe95c",
                    "position": 35,
                    "patient_id": PATIENT,
                    "type": "EntryRecorded",
                    "occurred_at": "2026-12-06T02:15:48.857091Z",
                    "payload": {"entry_id": ENTRY},
                }
            ],
            "access_ids": [ACCESS],
            "next_after": 35,
        }
    )
    items: list[FeedItem]
    access_ids: list[UUID] = Field(description="The access record of each item, in order")
    next_after: int = Field(
        description="Pass as `after` for the next page; doing so acknowledges every item up to it"
    )


# --- operations -------------------------------------------------------------------------


class Health(Model):
    model_config = example({"status": "ok"})
    status: Literal["ok"]


class Readiness(Model):
    model_config = example(
        {
            "status": "ok",
            "position": 40,
            "projections": {"timeline": {"lag_events": 0, "lag_seconds": 0.0}},
        }
    )
    status: Literal["ok", "lagging", "unavailable"]
    position: int | None = None
    store: str | None = None
    projections: dict[str, dict[str, float]] | None = None
