"""Reading charts from the read models: the timeline, and the directory search.

Authorisation looks the patient up in the directory (O(1)), not in the event-sourced
chart, whose load grows with the chart. A patient the directory does not know yet, or
no longer knows (erased), is looked up in the log instead, which answers 404 or 410.
"""

import base64
import binascii
from datetime import date, datetime
from typing import Any
from uuid import UUID

from application.access import ChartAction, authorise, require_role
from application.context import RequestContext, Role
from application.errors import NotFound
from application.ledger import CareLedger
from application.ports import Clock
from application.read_models import SORTABLE_TIME, Key, ReadModels, sortable_time
from domain.errors import InvalidValue
from domain.patient import Patient

TIMELINE_VIEWS = ("timeline",)
DIRECTORY_VIEWS = ("directory",)
CONSENT_VIEWS = ("consent_state",)


def admit_chart(
    ledger: CareLedger,
    views: ReadModels,
    ctx: RequestContext,
    action: ChartAction,
    patient_id: UUID,
) -> None:
    """Raise unless the actor may read this chart (404 outside their reach)."""
    require_role(ctx, action)
    actor = ctx.actor
    organisation = views.directory.organisation_of(patient_id)
    if organisation is None:
        authorise(ctx, action, ledger.load(Patient, patient_id, "patient"))
    elif actor.role is Role.PATIENT:
        if actor.patient_id != patient_id:
            raise NotFound("patient")
    elif actor.org != organisation:
        raise NotFound("patient")


class ChartReads:
    def __init__(self, ledger: CareLedger, views: ReadModels, clock: Clock) -> None:
        self.ledger = ledger
        self.views = views
        self.clock = clock

    def timeline(
        self,
        ctx: RequestContext,
        patient_id: UUID,
        *,
        kind: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
        limit: int = 50,
        min_position: int | None = None,
    ) -> dict[str, Any]:
        self.views.caught_up(TIMELINE_VIEWS, min_position)
        admit_chart(self.ledger, self.views, ctx, ChartAction.READ_CLINICAL, patient_id)
        allowed = self._allowed_labels(ctx, patient_id)
        page = self.views.timeline.page(
            patient_id,
            kind=kind,
            since=_sortable(since),
            until=_sortable(until),
            after=decode_cursor(cursor) if cursor else None,
            limit=limit,
            admit=lambda entry: allowed is None or set(entry["labels"]) <= allowed,
        )
        return {
            "patient_id": str(patient_id),
            "entries": page.entries,
            "next_cursor": encode_cursor(page.next_key) if page.next_key else None,
        }

    def search(
        self,
        ctx: RequestContext,
        *,
        mrn: str | None = None,
        family: str | None = None,
        birth_date: date | None = None,
        limit: int = 50,
        min_position: int | None = None,
    ) -> dict[str, Any]:
        require_role(ctx, ChartAction.SEARCH)
        self.views.caught_up(DIRECTORY_VIEWS, min_position)
        org = ctx.actor.org
        if mrn is not None and family is None and birth_date is None:
            items = self.views.directory.by_mrn(org, mrn, limit)
        elif mrn is None and family is not None and birth_date is not None:
            items = self.views.directory.by_name(org, family, birth_date, limit)
        else:
            raise InvalidValue("query", "search by mrn, or by family and birth_date together")
        return {"items": items}

    def _allowed_labels(self, ctx: RequestContext, patient_id: UUID) -> set[str] | None:
        """Labels this actor may see; None means all (the patient's own record).

        Interim rule until the policy decision point: a labelled entry is shown only
        if an active directive names one of the actor's identities as grantee and
        allows every one of its labels.
        """
        if ctx.actor.role is Role.PATIENT:
            return None
        state = self.views.consents.of_patient(patient_id)
        if state is None:
            return set()
        grantees = {ctx.actor.org, ctx.actor.id, str(ctx.actor.role)}
        today = self.clock().date().isoformat()
        allowed: set[str] = set()
        for directive in state["directives"].values():
            period = directive["period"]
            in_force = period["start"] <= today and (period["end"] is None or today < period["end"])
            if directive["grantee"] in grantees and in_force and not directive["revoked_at"]:
                allowed |= set(directive["labels"])
        return allowed


def _sortable(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise InvalidValue("since/until", "must carry a time zone")
    return sortable_time(moment)


def encode_cursor(key: Key) -> str:
    return base64.urlsafe_b64encode(f"{key[0]}|{key[1]}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Key:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        effective_at, entry_id = text.split("|")
        UUID(hex=entry_id)
        datetime.strptime(effective_at, SORTABLE_TIME)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidValue("cursor", "is not a cursor this API issued") from None
    return effective_at, entry_id
