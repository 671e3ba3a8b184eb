"""Replay: rebuild a disclosed response from the log, as it was, and check its digest.

An access record names the streams a response was computed from and their versions,
the request that shaped it, and the SHA-256 of its bytes. Replay loads those streams
at those versions, decides again with the consent and memberships as they were then
(on the day of the access), renders through the same functions that served it, and
compares digests. Later amendments, revocations or enrolments change nothing.

A replay discloses PHI to the auditor, so it is itself an access record (``replay``).
A crypto-shredded patient's record cannot be rebuilt: 410, with the reason.
"""

import hashlib
from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.application import project_aggregate

from application.access.access_log import Disclosed, Disclosures
from application.access.audit_trail import AuditTrail
from application.access.decision_on_the_day import decision_on_the_day, replay_decision
from application.access.policy import (
    Decision,
)
from application.charts.disclosure_rendering import (
    Row,
    changed,
    consent_state,
    decode_cursor,
    recorded,
    render,
    render_consents,
    render_demographics,
    rendered,
    scan_page,
    search_body,
    search_hit,
    timeline_body,
)
from application.charts.read_models import Key, sortable_time
from application.context import RequestContext, Role
from application.errors import DataKeyDestroyed, Forbidden, Gone, IntegrityViolation
from application.fhir import consents as fhir_consents
from application.fhir import coverage as fhir_coverage
from application.fhir import everything as fhir_everything
from application.fhir import export_lines as fhir_export
from application.fhir import history as fhir_history
from application.fhir import provenance as fhir_provenance
from application.fhir import reads as fhir_reads
from application.fhir import search as fhir_search
from application.ledger.ledger import CareLedger
from application.subscriptions.delivery_rule import (
    DELIVERED_EVENTS,
    EntryFacts,
    SubscriberSpec,
    entry_facts,
    message,
)
from domain.access_record import AccessRecord
from domain.consent import Consent
from domain.membership import Membership
from domain.patient import Patient
from domain.subscriber import Subscriber


class Replays:
    def __init__(self, ledger: CareLedger, disclosures: Disclosures, trail: AuditTrail) -> None:
        self.ledger = ledger
        self.disclosures = disclosures
        self.trail = trail

    def replay(self, ctx: RequestContext, access_id: UUID) -> Disclosed:
        if ctx.actor.role is not Role.AUDITOR:
            raise Forbidden("only auditors replay accesses")
        # Only of an access to the auditor's own organisation's patients (else 404).
        record = self.trail.visible_record(ctx, access_id, "replay")
        if record.decision != "permit" or record.response_sha256 is None:
            raise Forbidden("a denied access disclosed nothing to replay")
        try:
            body = self._bytes(record)
        except DataKeyDestroyed:
            raise Gone(
                "the patient was erased (crypto-shredded): the access record remains, "
                "but the disclosed content can no longer be rebuilt"
            ) from None
        patient_id = UUID(record.patient_id) if record.patient_id else None
        return self.disclosures.disclose(
            ctx,
            action="replay",
            body=_replayed(access_id, record, body),
            decision=replay_decision(ctx, record),
            patient_id=patient_id,
            stream_versions=dict(record.stream_versions),
            request={"view": "replay", "access_id": str(access_id)},
        )

    def _bytes(self, record: AccessRecord) -> bytes:
        """The exact bytes the record hashed: a bulk export's NDJSON lines, else the
        rendered JSON document."""
        if _exported(record):
            return fhir_export.lines_bytes(self._export(record))
        return render(self._rebuild(record))

    def _rebuild(self, record: AccessRecord) -> Any:
        view = record.request.get("view")
        versions = record.stream_versions
        if view == "demographics":
            patient = self._at(Patient, record.patient_id, versions)
            return render_demographics(patient, int(record.request.get("render", 1)))
        if view == "consents":
            consent = self._at(Consent, record.request["consent_id"], versions)
            state = {"consent_id": str(consent.id), **consent_state(consent)}
            return render_consents(
                UUID(record.patient_id),
                state,
                record.occurred_at.date(),
                int(record.request.get("render", 1)),
            )
        if view == "timeline":
            return self._timeline(record)
        if view == "directory":
            hits = [self._hit(UUID(pid), v) for pid, v in sorted(versions.items())]
            request = record.request
            return search_body(hits, request.get("next_cursor"), int(request.get("render", 1)))
        if view == "fhir":
            return self._fhir(record)
        if view == "delivery":
            return self._delivery(record)
        if view == "replay":  # what an auditor saw when replaying (API or console)
            access_id = UUID(record.request["access_id"])
            replayed = self.ledger.load(AccessRecord, access_id, "access record")
            return _replayed(access_id, replayed, self._bytes(replayed))
        raise Forbidden(f"an access of kind {view!r} cannot be replayed")

    def _timeline(self, record: AccessRecord) -> dict[str, Any]:
        entries, next_key = self._page(record, lambda row: True)
        return timeline_body(UUID(record.patient_id), entries, next_key)

    def _fhir(self, record: AccessRecord) -> Any:
        """A FHIR response, rendered again by application.fhir from what it recorded."""
        query = record.request
        if query["fhir"] in ("read-patient", "search-patient-id"):
            patient = self._at(Patient, record.patient_id, record.stream_versions)
            return fhir_reads.patient_body(query, patient)
        if query["fhir"] == "search-patient":
            versions = record.stream_versions
            hits = [self._hit(UUID(pid), v) for pid, v in sorted(versions.items())]
            return fhir_reads.patients_body(query, hits)
        if query["fhir"] == "everything":
            return self._everything(record)
        if query["fhir"] in ("search-coverage", "read-coverage"):
            versions = record.stream_versions
            memberships: list[Any] = [
                self.ledger.repository.get(UUID(stream), version=versions[stream])
                for stream in query["memberships"]
            ]
            return fhir_coverage.coverage_body(query, memberships)
        if query["fhir"] in ("search-consent", "read-consent"):
            consent = self._at(Consent, query["consent_id"], record.stream_versions)
            return fhir_consents.consents_body(query, consent)
        if query["fhir"] in ("search-provenance", "read-provenance"):
            chart = self._at(Patient, record.patient_id, record.stream_versions)
            decision = self._decision_then(record, chart)
            return fhir_provenance.body(self.ledger, query, chart, decision)
        if query["fhir"] in ("history-patient", "vread-patient", "history", "vread"):
            chart = self._at(Patient, record.patient_id, record.stream_versions)
            return fhir_history.body(self.ledger, query, chart)
        entries, next_key = self._page(record, fhir_search.matcher(query))
        return fhir_reads.entry_body(query, entries, next_key)

    def _everything(self, record: AccessRecord) -> Any:
        """``$everything``: the Patient at the version shown, and the entries' page."""
        return fhir_everything.everything_body(record.request, *self._chart_parts(record))

    def _export(self, record: AccessRecord) -> fhir_export.Lines:
        """A patient's part of a bulk export: ``$everything``'s parts, all the chart."""
        patient, memberships, consent, entries, _ = self._chart_parts(record)
        return fhir_export.patient_lines(record.request, patient, memberships, consent, entries)

    def _chart_parts(
        self, record: AccessRecord
    ) -> tuple[Any, list[Any] | None, Any, list[Row], Key | None]:
        """The Patient at the version shown, the Coverages and the Consent at the
        versions the decision read, and the entries' page."""
        query = record.request
        patient = None
        if query["patient_version"] is not None:
            versions = {str(record.patient_id): int(query["patient_version"])}
            patient = self._at(Patient, record.patient_id, versions)
        memberships: list[Any] | None = None
        if query.get("memberships") is not None:
            versions = record.stream_versions
            memberships = [
                self.ledger.repository.get(UUID(stream), version=versions[stream])
                for stream in query["memberships"]
            ]
        consent = None
        if query.get("consent_id") is not None:
            consent = self._at(Consent, query["consent_id"], record.stream_versions)
        entries: list[Row] = []
        next_key = None
        if query["kinds"]:  # only the Patient or Consents were asked for: no page scanned
            entries, next_key = self._page(record, fhir_search.matcher(query))
        return patient, memberships, consent, entries, next_key

    def _page(
        self, record: AccessRecord, keeps: Callable[[Row], bool]
    ) -> tuple[list[Row], Key | None]:
        """The page, from the chart as it was: its entries ordered by the facts the chart
        keeps (kind, time), and only the events of the entries examined read back and
        rendered (O(page), not O(chart), in decryption)."""
        versions = record.stream_versions
        if versions.get(str(record.patient_id)) == 0:
            # The view had seen none of the chart's entries: the page served was empty,
            # and version 0 is no state of the stream that the library can load.
            return [], None
        patient = self._at(Patient, record.patient_id, versions)
        decision = self._decision_then(record, patient)
        request = record.request
        facts = patient.entries
        if any(entry["versions"] is None for entry in facts.values()):
            # Known only from a snapshot older than these facts: the chart folded from
            # its whole log, by the aggregate itself, without the snapshot.
            events = self.ledger.events.get(patient.id, lte=versions[str(patient.id)])
            folded = project_aggregate(None, events)
            assert isinstance(folded, Patient), "a chart's log folds into a chart"
            facts = folded.entries
        keys = sorted(
            (at, entry_hex)
            for entry_hex, entry in facts.items()
            if request["kind"] is None or entry["kind"] == request["kind"]
            for at in (sortable_time(entry["effective_at"]),)
            if (request["since"] is None or at >= request["since"])
            and (request["until"] is None or at < request["until"])
        )

        def candidates(after: Key | None, count: int) -> list[tuple[Key, dict[str, Any]]]:
            start = bisect_right(keys, after) if after else 0
            return [(key, facts[key[1]]) for key in keys[start : start + count]]

        def rows(chunk: Sequence[tuple[Key, dict[str, Any]]]) -> list[Row]:
            return self._rows(patient.id, chunk)

        entries, next_key = scan_page(
            candidates,
            rows,
            after=decode_cursor(request["cursor"]) if request["cursor"] else None,
            limit=request["limit"],
            admit=lambda entry: decision.shows(entry["labels"]) and keeps(entry),
        )
        return entries, next_key

    def _rows(self, patient_id: UUID, chunk: Sequence[tuple[Key, dict[str, Any]]]) -> list[Row]:
        """These entries as the timeline shows them, folded from just their events by the
        same functions the timeline view applies."""
        wanted = sorted(v for _, entry in chunk for v in entry["versions"])
        folded: dict[str, Row] = {}
        for event in self.ledger.events_at(patient_id, wanted):
            if isinstance(event, Patient.EntryRecorded):
                folded[event.entry_id.hex] = recorded(event)
            elif isinstance(event, Patient.EntryAmended | Patient.EntryEnteredInError):
                changed(folded[event.entry_id.hex], event)
        if len(folded) != len(chunk):
            raise IntegrityViolation(f"chart {patient_id}: entry events are missing from the log")
        found = []
        for (effective_at, entry_hex), _ in chunk:
            row = folded[entry_hex]
            if row["effective_at"] != effective_at:
                raise IntegrityViolation(f"entry {entry_hex}: the chart and its log disagree")
            found.append(rendered(entry_hex, row["kind"], row["status"], effective_at, row["phi"]))
        return found

    def _delivery(self, record: AccessRecord) -> dict[str, Any]:
        """The message as delivered: the event at its version, minimised for the subscriber."""
        subscriber_id = UUID(record.request["subscriber_id"])
        spec = SubscriberSpec.of(
            subscriber_id, self.ledger.load(Subscriber, subscriber_id, "subscriber")
        )
        assert record.patient_id is not None
        version = record.stream_versions[record.patient_id]
        facts: dict[UUID, EntryFacts] = {}
        delivered: Any = None
        for event in self.ledger.events.get(UUID(record.patient_id), lte=version):
            if isinstance(event, DELIVERED_EVENTS):
                found = entry_facts(event, facts.get(event.entry_id))
                if found is not None:
                    facts[event.entry_id] = found
            delivered = event
        return message(spec, delivered, int(record.request["position"]), facts[delivered.entry_id])

    def _decision_then(self, record: AccessRecord, patient: Patient) -> Decision:
        """The decision on the day, with the consent and memberships at their versions."""
        versions = record.stream_versions
        consent = None
        if str(patient.consent_id) in versions:  # the consent view had the stream then
            consent = self._at(Consent, str(patient.consent_id), versions)
        memberships: list[Membership] = [
            self.ledger.repository.get(UUID(stream), version=v)
            for stream, v in versions.items()
            if stream not in (str(patient.id), str(patient.consent_id))
        ]
        return decision_on_the_day(record, patient, consent, memberships)

    def _hit(self, patient_id: UUID, version: int) -> dict[str, Any]:
        patient: Patient = self._at(Patient, str(patient_id), {str(patient_id): version})
        if patient.name is None or patient.birth_date is None:  # erased at that version
            raise DataKeyDestroyed()
        return search_hit(
            patient_id, patient.name.given, patient.name.family, patient.birth_date.isoformat()
        )

    def _at(self, cls: type[Any], stream: str | None, versions: dict[str, int]) -> Any:
        assert stream is not None and stream in versions, "the record names no such stream"
        aggregate: Any = self.ledger.repository.get(UUID(stream), version=versions[stream])
        if isinstance(aggregate, Patient) and aggregate.erased:
            raise DataKeyDestroyed()
        assert isinstance(aggregate, cls)
        return aggregate


def _exported(record: AccessRecord) -> bool:
    return record.request.get("view") == "fhir" and record.request.get("fhir") == "export"


def _replayed(access_id: UUID, record: AccessRecord, body: bytes) -> dict[str, Any]:
    """A replay's answer: the rebuilt body beside the digest it was recorded with (an
    export's NDJSON lines as a list of their resources)."""
    replayed = hashlib.sha256(body).hexdigest()
    return {
        "access_id": str(access_id),
        "body": [_raw(line) for line in body.splitlines()] if _exported(record) else _raw(body),
        "recorded_sha256": record.response_sha256,
        "replayed_sha256": replayed,
        "matches": replayed == record.response_sha256,
    }


def _raw(body: bytes) -> Any:
    """The rebuilt body, embedded as JSON (its digest is over ``body`` exactly)."""
    return orjson.loads(body)
