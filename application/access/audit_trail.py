"""What auditors and patients may ask of the access log.

- auditors, each for their own organisation: every record of an access to its
  patients (outsiders' attempts included; a record whose patient's organisation is
  unknown, only if its actor is theirs), filtered by patient, actor, time, decision,
  purpose and action; one record; the break-glass review queue, and reviewing an
  entry of it, once, and never one's own;
- a patient: their own access log (every access to their record, exempt or not),
  without the staff's network addresses and request ids;
- both: a patient's accounting of disclosures (HIPAA 164.528), which leaves out what
  the rule exempts: treatment, payment and operations (and break-glass treatment),
  disclosures to the patient themself, and disclosures made under their directive.

Access records are PHI-free metadata, so reading them is not itself recorded.
"""

from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from application.access.chart_gate import ChartGate
from application.charts.chart_reads import decode_cursor, encode_cursor
from application.charts.disclosure_rendering import zulu
from application.charts.read_models import Key, ReadModels, sortable_time, time_bound
from application.context import RequestContext, Role
from application.errors import Forbidden, NotFound
from application.ledger.ledger import CareLedger
from application.ports import Clock
from domain.access_record import AccessRecord
from domain.values import Provenance
from domain.vocabulary import Purpose

ACCESS_VIEWS = ("access_log",)
RETENTION = timedelta(days=6 * 366)  # HIPAA: six years, rounded up
EXEMPT_PURPOSES = frozenset(
    {Purpose.TREAT, Purpose.ETREAT, Purpose.HPAYMT, Purpose.HOPERAT, Purpose.PATRQT}
)
DISCLOSING_ACTIONS = frozenset({"read", "search", "export", "deliver"})
STAFF_ONLY_FIELDS = ("source", "request_id")  # the staff's network, not the patient's


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
        organisation: str | None = None,
    ) -> tuple[list[dict[str, Any]], Key | None]: ...


class AuditTrail:
    def __init__(
        self,
        ledger: CareLedger,
        views: ReadModels,
        log: AccessLogView,
        clock: Clock,
        gate: ChartGate,
    ) -> None:
        self.ledger = ledger
        self.views = views
        self.log = log
        self.clock = clock
        self.gate = gate

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
            wanted["patient_id"] = str(self._own_record(ctx))  # their own rows only
            return _for_patient(self._page(wanted, since, until, None, cursor, limit, min_position))
        self._require_auditor(ctx)
        if "patient_id" in wanted:
            # Every record of one of the organisation's patients is theirs to see,
            # records written before care_org was kept included.
            self.gate.within_reach(ctx, UUID(wanted["patient_id"]), "read")
            return self._page(wanted, since, until, None, cursor, limit, min_position)
        return self._page(
            wanted, since, until, None, cursor, limit, min_position, organisation=actor.org
        )

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
        own = {"patient_id": str(self._own_record(ctx))}
        return _for_patient(self._page(own, None, None, None, cursor, limit, min_position))

    def access(self, ctx: RequestContext, access_id: UUID) -> dict[str, Any]:
        actor = ctx.actor
        if actor.role not in (Role.AUDITOR, Role.PATIENT):
            raise Forbidden("only auditors (and patients, for their own record) read the log")
        if actor.role is Role.PATIENT:
            record = self._record(access_id)
            if record.patient_id != str(self._own_record(ctx)):
                raise NotFound("access record")
            return _without_staff_fields(presented(record.log_entry()))
        return presented(self.visible_record(ctx, access_id, "read").log_entry())

    def visible_record(self, ctx: RequestContext, access_id: UUID, action: str) -> AccessRecord:
        """A record this auditor's organisation may see; else the attempt is recorded
        where the record's own organisation sees it, and 404."""
        record = self._record(access_id)
        patient = UUID(record.patient_id) if record.patient_id else None
        organisation = record.care_org
        if organisation is None:  # written before care_org was kept: the patient's
            organisation = self.gate.organisation_of(patient) if patient else record.actor["org"]
        if organisation != ctx.actor.org:
            self.gate.refuse_outside(ctx, patient, organisation, action, "access record")
        return record

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
        page = self._page(
            {}, None, None, True, cursor, limit, min_position, organisation=ctx.actor.org
        )
        page["pending"] = sum(1 for item in page["items"] if item["review"] is None)
        return page

    def review(
        self, ctx: RequestContext, access_id: UUID, *, outcome: str, note: str
    ) -> dict[str, Any]:
        if ctx.actor.role is not Role.AUDITOR:
            raise Forbidden("only auditors review break-glass accesses")
        self.visible_record(ctx, access_id, "write")

        def apply(record: AccessRecord) -> tuple[list[AccessRecord], dict[str, Any]]:
            record.review_break_glass(
                outcome=outcome,
                note=note,
                by=Provenance(ctx.actor.id, self.clock()),
                reviewer_org=ctx.actor.org,
            )
            return [record], {"access_id": str(access_id), "version": record.version}

        return self.ledger.change(ctx, AccessRecord, access_id, "access record", apply).body()

    def disclosures(
        self,
        ctx: RequestContext,
        patient_id: UUID,
        min_position: int | None = None,
        *,
        cursor: str | None = None,
        limit: int = 500,
    ) -> dict[str, Any]:
        """A page of the accounting, newest first: the log is scanned on past exempt
        records until the page is full or the six years end."""
        actor = ctx.actor
        if actor.role not in (Role.PATIENT, Role.AUDITOR):
            raise Forbidden("the accounting of disclosures is for auditors and the patient")
        self.gate.within_reach(ctx, patient_id, "read")  # the patient's own, or theirs
        self.views.caught_up(ACCESS_VIEWS, min_position)
        since = self.clock() - RETENTION
        items: list[dict[str, Any]] = []
        after: Key | None = decode_cursor(cursor) if cursor else None
        next_key: Key | None = None
        while next_key is None:
            page, page_end = self.log.search(
                {"patient_id": str(patient_id), "decision": "permit"},
                since=sortable_time(since),
                until=None,
                break_glass=None,
                after=after,
                limit=500,
            )
            for record in page:
                if _accountable(record):
                    items.append(_accounting(record))
                    if len(items) == limit:
                        next_key = _key(record)
                        break
            if page_end is None:
                break
            after = page_end
        if next_key is not None and not self._more_after(patient_id, since, next_key):
            next_key = None
        return {
            "patient_id": str(patient_id),
            "since": zulu(since),
            "items": items,
            "next_cursor": encode_cursor(next_key) if next_key else None,
        }

    def _more_after(self, patient_id: UUID, since: datetime, after: Key) -> bool:
        """Whether an accountable record follows ``after`` (so a full last page says so)."""
        while True:
            page, page_end = self.log.search(
                {"patient_id": str(patient_id), "decision": "permit"},
                since=sortable_time(since),
                until=None,
                break_glass=None,
                after=after,
                limit=500,
            )
            if any(_accountable(record) for record in page):
                return True
            if page_end is None:
                return False
            after = page_end

    def _page(
        self,
        filters: dict[str, str],
        since: datetime | None,
        until: datetime | None,
        break_glass: bool | None,
        cursor: str | None,
        limit: int,
        min_position: int | None,
        organisation: str | None = None,
    ) -> dict[str, Any]:
        self.views.caught_up(ACCESS_VIEWS, min_position)
        items, after = self.log.search(
            filters,
            since=time_bound("since", since),
            until=time_bound("until", until),
            break_glass=break_glass,
            after=decode_cursor(cursor) if cursor else None,
            limit=limit,
            organisation=organisation,
        )
        return {
            "items": [presented(item) for item in items],
            "next_cursor": encode_cursor(after) if after else None,
        }

    def _record(self, access_id: UUID) -> AccessRecord:
        return self.ledger.load(AccessRecord, access_id, "access record")

    def _own_record(self, ctx: RequestContext) -> UUID:
        """The patient a patient token speaks for, within its organisation (else 404)."""
        patient_id = ctx.actor.patient_id
        if patient_id is None:
            raise Forbidden("a patient token must name its patient")
        self.gate.within_reach(ctx, patient_id, "read")
        return patient_id

    @staticmethod
    def _require_auditor(ctx: RequestContext) -> None:
        if ctx.actor.role is not Role.AUDITOR:
            raise Forbidden("only auditors (and patients, for their own record) read the log")


def presented(record: dict[str, Any]) -> dict[str, Any]:
    """An access record as the API sends it: its times with ``Z``. Records are kept
    (and sealed in the view) with ``+00:00``; only their presentation changes."""
    # Rows the view sealed before the channel was kept were all served by the API.
    shown = {"channel": "api", **record, "occurred_at": zulu(record["occurred_at"])}
    if record.get("review") is not None:
        shown["review"] = {**record["review"], "at": zulu(record["review"]["at"])}
    return shown


def _key(record: dict[str, Any]) -> Key:
    """The access log's page key of a record: (sortable time, access id as hex)."""
    return zulu(record["occurred_at"]), UUID(record["access_id"]).hex


def _for_patient(page: dict[str, Any]) -> dict[str, Any]:
    page["items"] = [_without_staff_fields(item) for item in page["items"]]
    return page


def _without_staff_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The record as its patient sees it: no staff network address or request id, and
    of a search's streams only their own (a hit list names other patients)."""
    seen = {k: v for k, v in record.items() if k not in STAFF_ONLY_FIELDS}
    if record["action"] == "search":
        own = record["patient_id"]
        seen["stream_versions"] = {k: v for k, v in record["stream_versions"].items() if k == own}
    return seen


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
        "date": zulu(record["occurred_at"]),
        "recipient": record["actor"]["org"],
        "recipient_actor": record["actor"]["id"],
        "description": f"{record['action']} of the record ({len(record['entry_ids'])} entries)",
        "purpose": record["purpose"],
        "access_id": record["access_id"],
    }
