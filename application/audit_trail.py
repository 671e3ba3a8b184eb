"""What auditors and patients may ask of the access log.

- auditors: every record, filtered by patient, actor, time, decision, purpose and
  action; one record; the break-glass review queue, and reviewing an entry of it;
- a patient: their own access log (every access to their record, exempt or not);
- both: a patient's accounting of disclosures (HIPAA 164.528), which leaves out what
  the rule exempts: treatment, payment and operations (and break-glass treatment),
  disclosures to the patient themself, and disclosures made under their directive.

Access records are PHI-free metadata, so reading them is not itself recorded.
"""

from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from application.chart_reads import decode_cursor, encode_cursor
from application.context import RequestContext, Role
from application.errors import Forbidden, NotFound
from application.ledger import CareLedger
from application.ports import Clock
from application.read_models import Key, ReadModels, sortable_time, time_bound
from domain.access_record import AccessRecord
from domain.values import Provenance
from domain.vocabulary import Purpose

ACCESS_VIEWS = ("access_log",)
RETENTION = timedelta(days=6 * 366)  # HIPAA: six years, rounded up
EXEMPT_PURPOSES = frozenset(
    {Purpose.TREAT, Purpose.ETREAT, Purpose.HPAYMT, Purpose.HOPERAT, Purpose.PATRQT}
)
DISCLOSING_ACTIONS = frozenset({"read", "search", "export", "deliver"})


class AccessLogView(Protocol):
    def search(
        self,
        filters: dict[str, str],
        *,
        since: str | None,
        until: str | None,
        break_glass: bool | None,
        after: Key | None,
        limit: int,
    ) -> tuple[list[dict[str, Any]], Key | None]: ...


class AuditTrail:
    def __init__(
        self, ledger: CareLedger, views: ReadModels, log: AccessLogView, clock: Clock
    ) -> None:
        self.ledger = ledger
        self.views = views
        self.log = log
        self.clock = clock

    def accesses(
        self,
        ctx: RequestContext,
        *,
        filters: dict[str, str | None],
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
        limit: int = 50,
        min_position: int | None = None,
    ) -> dict[str, Any]:
        wanted = {k: v for k, v in filters.items() if v is not None}
        actor = ctx.actor
        if actor.role is Role.PATIENT:
            wanted["patient_id"] = str(actor.patient_id)  # their own rows only
        elif actor.role is not Role.AUDITOR:
            raise Forbidden("only auditors (and patients, for their own record) read the log")
        return self._page(wanted, since, until, None, cursor, limit, min_position)

    def my_access_log(
        self,
        ctx: RequestContext,
        *,
        cursor: str | None = None,
        limit: int = 50,
        min_position: int | None = None,
    ) -> dict[str, Any]:
        """Every access to the patient's record, exempt from the accounting or not."""
        if ctx.actor.role is not Role.PATIENT or ctx.actor.patient_id is None:
            raise Forbidden("the access log of a record is its patient's")
        own = {"patient_id": str(ctx.actor.patient_id)}
        return self._page(own, None, None, None, cursor, limit, min_position)

    def access(self, ctx: RequestContext, access_id: UUID) -> dict[str, Any]:
        actor = ctx.actor
        if actor.role not in (Role.AUDITOR, Role.PATIENT):
            raise Forbidden("only auditors (and patients, for their own record) read the log")
        record = self._record(access_id)
        own = actor.role is Role.PATIENT and record.patient_id == str(actor.patient_id)
        if actor.role is Role.PATIENT and not own:
            raise NotFound("access record")
        return record.log_entry()

    def break_glass_queue(
        self,
        ctx: RequestContext,
        *,
        cursor: str | None = None,
        limit: int = 50,
        min_position: int | None = None,
    ) -> dict[str, Any]:
        if ctx.actor.role is not Role.AUDITOR:
            raise Forbidden("only auditors review break-glass accesses")
        page = self._page({}, None, None, True, cursor, limit, min_position)
        page["pending"] = sum(1 for item in page["items"] if item["review"] is None)
        return page

    def review(
        self, ctx: RequestContext, access_id: UUID, *, outcome: str, note: str
    ) -> dict[str, Any]:
        if ctx.actor.role is not Role.AUDITOR:
            raise Forbidden("only auditors review break-glass accesses")

        def decide(record: AccessRecord) -> tuple[list[AccessRecord], dict[str, Any]]:
            record.review_break_glass(
                outcome=outcome, note=note, by=Provenance(ctx.actor.id, self.clock())
            )
            return [record], {"access_id": str(access_id), "version": record.version}

        return self.ledger.change(ctx, AccessRecord, access_id, "access record", decide).body()

    def disclosures(
        self, ctx: RequestContext, patient_id: UUID, min_position: int | None = None
    ) -> dict[str, Any]:
        actor = ctx.actor
        if actor.role is Role.PATIENT:
            if actor.patient_id != patient_id:
                raise NotFound("patient")
        elif actor.role is not Role.AUDITOR:
            raise Forbidden("the accounting of disclosures is for auditors and the patient")
        self.views.caught_up(ACCESS_VIEWS, min_position)
        since = self.clock() - RETENTION
        items: list[dict[str, Any]] = []
        after: Key | None = None
        while True:
            page, after = self.log.search(
                {"patient_id": str(patient_id), "decision": "permit"},
                since=sortable_time(since), until=None, break_glass=None, after=after,
                limit=500,
            )  # fmt: skip
            items += [_accounting(r) for r in page if _accountable(r)]
            if after is None:
                break
        return {"patient_id": str(patient_id), "since": since, "disclosures": items}

    def _page(
        self,
        filters: dict[str, str],
        since: datetime | None,
        until: datetime | None,
        break_glass: bool | None,
        cursor: str | None,
        limit: int,
        min_position: int | None,
    ) -> dict[str, Any]:
        self.views.caught_up(ACCESS_VIEWS, min_position)
        items, after = self.log.search(
            filters,
            since=time_bound("since", since),
            until=time_bound("until", until),
            break_glass=break_glass,
            after=decode_cursor(cursor) if cursor else None,
            limit=limit,
        )
        return {"items": items, "next_cursor": encode_cursor(after) if after else None}

    def _record(self, access_id: UUID) -> AccessRecord:
        return self.ledger.load(AccessRecord, access_id, "access record")


def _accountable(record: dict[str, Any]) -> bool:
    """A disclosure the patient may ask to have accounted for (164.528(a)(1))."""
    return (
        record["action"] in DISCLOSING_ACTIONS
        and record["purpose"] not in EXEMPT_PURPOSES
        and record["actor"]["role"] != Role.PATIENT
        and "directive_id" not in record["basis"]
    )


def _accounting(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "date": record["occurred_at"],
        "recipient": record["actor"]["org"],
        "recipient_actor": record["actor"]["id"],
        "description": f"{record['action']} of the record ({len(record['entry_ids'])} entries)",
        "purpose": record["purpose"],
        "access_id": record["access_id"],
    }
