"""A transaction Bundle: patients' charts, written all or nothing in one commit.

The plan (``bundles``) refuses what the chart cannot hold before anything is written.
Then every step runs on its ``Patient`` aggregate (new ones, registered in the same
commit with their consents and MRN claims, and at most one existing chart, admitted
as a /v1 write is) and the ledger saves them once, group-committed with their access
records: each record's digest is of the transaction-response's exact bytes, which
replay and a retried ``Idempotency-Key`` render from the same result.
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from application.access.access_log import Disclosed, render
from application.access.policy import Content
from application.access.roles import ChartAction, require_role
from application.charts.patients import Patients
from application.context import RequestContext
from application.errors import NotFound, VersionConflict
from application.fhir.bundles import EntryRefused, Step, plan
from application.fhir.elements import patient_id_of
from application.fhir.resources import RESOURCE_OF_KIND, parse_resource_id, resource_id
from application.fhir.transaction_answers import (
    TransactionAttestation,
    Undisclosed,
    attestation_of,
    in_order,
    not_kept_outcome,
    response_bundle,
)
from application.ledger.ledger import WriteOutcome
from domain.consent import Consent
from domain.errors import DomainError, InvalidValue
from domain.identifiers import MedicalRecordNumber, MrnClaim, MrnInUse
from domain.patient import Patient
from domain.values import Provenance

__all__ = ["Transactions", "not_kept_outcome"]

UPDATE_REASON = "updated through a FHIR transaction"
Answer = Disclosed | Undisclosed
T = TypeVar("T")


@dataclass(frozen=True)
class _Write:
    """A transaction's planned steps, the new patients' ids and its access records."""

    ctx: RequestContext
    every: list[Step]
    steps: list[Step]
    new: list[Step]
    new_ids: list[UUID]
    by: Provenance
    attestation: TransactionAttestation


class Transactions:
    def __init__(self, patients: Patients) -> None:
        self.patients = patients

    def transaction(self, ctx: RequestContext, bundle: dict[str, Any]) -> "Disclosed | Undisclosed":
        return self.begin(ctx, bundle)()

    def begin(
        self, ctx: RequestContext, bundle: dict[str, Any], *, looked_up: bool = False
    ) -> Callable[[], Answer]:
        """The transaction up to its commit, and the call that waits for it and
        answers: new patients' charts are queued for the group commit, so that an
        import plans its next file meanwhile and the commit may take both together.
        One that writes an existing chart is written before this returns.
        ``looked_up``: the caller found no prior outcome of the Idempotency-Key, so it
        is not looked up again (a retry that raced in is still answered from its
        claim when the commit is refused)."""
        return self.begin_planned(ctx, self._planned(bundle), looked_up=looked_up)

    def begin_planned(
        self, ctx: RequestContext, every: list[Step], *, looked_up: bool = False
    ) -> Callable[[], Answer]:
        """``begin`` for a Bundle already planned, with no entry refused (an importer
        plans its files in other processes)."""
        require_role(ctx, ChartAction.WRITE_CLINICAL)
        steps = [step for step in every if step.held]
        if not steps and every:
            # Nothing for a chart (Synthea's practitioner and hospital Bundles): each
            # entry is answered as not kept, and nothing is written nor disclosed.
            result = {"entries": in_order(every, [], [])}
            return _ready(Undisclosed(render(response_bundle("transaction", result))))
        patients, ledger = self.patients, self.patients.ledger
        disclosures = patients.reads.disclosures
        new = [s for s in steps if s.patient is not None]
        patient_id = _one_patient(steps, new)
        if patient_id is None and not new:
            raise InvalidValue("Bundle.entry", "a transaction writes one patient's chart")
        if patient_id is not None:
            # Admitted before an idempotency claim is looked up, as /v1 writes are.
            gate = patients.reads.gate
            chart = gate.chart(ctx, patient_id, "write")
            gate.admit_write(
                ctx, Content.CLINICAL, chart.id, chart.organisation_id, erased=chart.erased
            )
        if not looked_up and (prior := ledger.repeated(ctx)) is not None:
            return _ready(self._replayed(ctx, prior))
        by = Provenance(ctx.actor.id, patients.clock())
        new_ids = [patients.new_patient_id() for _ in new]
        ids = [*new_ids] if patient_id is None else [*new_ids, patient_id]
        attestation = attestation_of(disclosures, ctx, ids)
        write = _Write(ctx, every, steps, new, new_ids, by, attestation)
        if patient_id is None:
            return functools.partial(self._answered, write, self._register_only(write))
        return _ready(self._answered(write, _ready(self._with_chart(write))))

    def _answered(self, w: _Write, outcome_of: Callable[[], WriteOutcome]) -> Disclosed:
        outcome = outcome_of()
        if outcome.replayed:  # a retry of this request committed first: its answer
            return self._replayed(w.ctx, outcome)
        body = render(response_bundle("transaction", outcome.result))
        return Disclosed(body, w.attestation.access_id)

    def _replayed(self, ctx: RequestContext, prior: WriteOutcome) -> Disclosed:
        """A retried transaction answered as the first was, disclosed again to the
        patients that answer names (this request's own ids were never written)."""
        disclosures = self.patients.reads.disclosures
        ids = [UUID(found) for found in prior.result.get("ids", [prior.result["id"]])]
        attestation = attestation_of(disclosures, ctx, ids)
        disclosures.writer.write(*attestation.record(prior.result, prior.position))  # one commit
        body = render(response_bundle("transaction", prior.result))
        return Disclosed(body, attestation.access_id)

    def _register_only(self, w: _Write) -> Callable[[], WriteOutcome]:
        """New patients' charts, queued to be saved in one commit; the call returned
        waits for it."""
        ctx, every, steps, new = w.ctx, w.every, w.steps, w.new
        aggregates, answered, versions = self._register_all(ctx, new, steps, w.by, w.new_ids)
        result = _result(w.new_ids, versions, answered)
        result["entries"] = in_order(every, result["entries"], steps)
        submitted = self.patients.ledger.submit(ctx, aggregates, result, w.attestation)

        def outcome() -> WriteOutcome:
            try:
                return submitted()
            except IntegrityError:
                if self._claimed(ctx, new):
                    raise MrnInUse() from None
                raise

        return outcome

    def _with_chart(self, w: _Write) -> WriteOutcome:
        """One existing chart's steps, and any new patients' charts, saved together in
        one commit, so the existing chart's admission and version guard all of it."""
        ctx, every, steps, new, by, new_ids = w.ctx, w.every, w.steps, w.new, w.by, w.new_ids
        patients = self.patients
        chart_id = w.attestation.patient_ids[-1]
        own = [s for s in steps if s.patient is None and not any(_names(s, n) for n in new)]

        def admit(chart: Patient) -> None:
            patients.reads.gate.admit_write(
                ctx, Content.CLINICAL, chart.id, chart.organisation_id, erased=chart.erased
            )

        def apply(chart: Patient) -> tuple[list[Any], dict[str, Any]]:
            applied = _apply(chart, own, by, patients)
            answered = dict(zip(sorted(s.index for s in own), applied["entries"], strict=True))
            registered, theirs, versions = self._register_all(ctx, new, steps, by, new_ids)
            versions[str(chart.id)] = chart.version
            result = _result([*new_ids, chart.id], versions, answered | theirs)
            result["entries"] = in_order(every, result["entries"], steps)
            return [chart, *registered], result

        try:
            return patients.ledger.change(
                ctx, Patient, chart_id, "patient", apply, None, admit, w.attestation
            )
        except VersionConflict:
            if new and self._claimed(ctx, new):
                raise MrnInUse() from None  # a new Patient's MRN was taken meanwhile
            raise

    def _claimed(self, ctx: RequestContext, new: list[Step]) -> bool:
        """Whether a new Patient's MRN claim exists: another registration won the race."""
        patients, org = self.patients, ctx.actor.org
        claims = []
        for step in new:
            assert step.patient is not None
            identifier = MedicalRecordNumber(step.patient.mrn_system, step.patient.mrn)
            claims.append(patients.mrn_claim_id(org, identifier))
        return bool(self.patients.ledger.existing(claims))

    def _planned(self, bundle: dict[str, Any]) -> list[Step]:
        every = []
        for step in plan(bundle, self.patients.new_id):
            if isinstance(step, InvalidValue):
                raise step  # nothing is written: the first refusal names its entry
            every.append(step)
        return every

    def _register_all(
        self,
        ctx: RequestContext,
        new: list[Step],
        steps: list[Step],
        by: Provenance,
        ids: list[UUID],
    ) -> tuple[list[Any], dict[int, list[Any]], dict[str, int]]:
        """Each new Patient (with its id of ``ids``) with its entries, to be saved in
        the one commit: the aggregates, the answers by entry index, the versions."""
        aggregates: list[Any] = []
        answered: dict[int, list[Any]] = {}
        versions: dict[str, int] = {}
        mrns: set[tuple[str, str]] = set()
        for step, patient_id in zip(new, ids, strict=True):
            fields = step.patient
            assert fields is not None
            if (fields.mrn_system, fields.mrn) in mrns:
                why = InvalidValue("Patient.identifier", "another Patient of the Bundle has it")
                raise EntryRefused(step.index, why)
            mrns.add((fields.mrn_system, fields.mrn))
            own = [s for s in steps if s is step or _names(s, step)]
            saved, result = self._register(ctx, step, own, by, patient_id)
            aggregates += saved
            versions[str(patient_id)] = int(result["version"])
            answered.update(zip(sorted(s.index for s in own), result["entries"], strict=True))
        return aggregates, answered, versions

    def _register(
        self, ctx: RequestContext, step: Step, steps: list[Step], by: Provenance, patient_id: UUID
    ) -> tuple[list[Any], dict[str, Any]]:
        require_role(ctx, ChartAction.REGISTER)
        fields = step.patient
        assert fields is not None
        if step.method != "POST":
            raise EntryRefused(step.index, InvalidValue("Patient", "a new patient is POSTed"))
        if fields.sex is None:
            raise EntryRefused(step.index, InvalidValue("Patient.gender", "is required"))
        if fields.deceased_at is not None:
            why = InvalidValue("Patient.deceasedDateTime", "is recorded after registration")
            raise EntryRefused(step.index, why)
        patients, org = self.patients, ctx.actor.org
        identifier = MedicalRecordNumber(fields.mrn_system, fields.mrn)
        patients._check_unclaimed(org, identifier)
        patient = Patient.register(
            patient_id=patient_id,
            consent_id=patients.new_id(),
            organisation_id=org,
            mrn=identifier,
            name=fields.name,
            birth_date=fields.birth_date,
            sex=fields.sex,
            contact=fields.contact,
            by=by,
        )
        patients.reads.gate.admit_write(ctx, Content.CLINICAL, patient.id, org)
        consent = Consent.open(consent_id=patient.consent_id, patient_id=patient.id, by=by)
        claim = MrnClaim.claim(
            claim_id=patients.mrn_claim_id(org, identifier),
            patient_id=patient.id,
            organisation_id=org,
            by=by,
        )
        created = [["Patient", str(patient.id), patient.version, "201 Created", step.note]]
        result = _apply(patient, [s for s in steps if s is not step], by, patients)
        result["entries"] = [*created, *result["entries"]]
        # The Patient's entry answers in its place in the Bundle.
        order = [step.index, *(s.index for s in steps if s is not step)]
        result["entries"] = [e for _, e in sorted(zip(order, result["entries"], strict=True))]
        return [patient, consent, claim], result


def _ready(answer: T) -> Callable[[], T]:
    return lambda: answer


def _result(
    ids: list[UUID], versions: dict[str, int], answered: dict[int, list[Any]]
) -> dict[str, Any]:
    """The transaction's result: the patients written (the first is ``id``), each
    one's version, and the entries' answers in the Bundle's order."""
    entries = [answered[index] for index in sorted(answered)]
    first = str(ids[0])
    result = {"id": first, "version": versions[first], "entries": entries}
    if len(ids) > 1:
        result |= {"ids": [str(i) for i in ids], "versions": versions}
    return result


def _names(step: Step, patient: Step) -> bool:
    return step.entry is not None and step.entry.patient_reference == patient.full_url


def _one_patient(steps: list[Step], new: list[Step]) -> UUID | None:
    """The existing chart the transaction writes to, if any: a transaction registers
    patients with their charts, writes to one existing chart, or both; references to
    a second existing chart are refused."""
    urls = {step.full_url for step in new if step.full_url}
    if len(new) > 1 and len(urls) < len(new):
        why = InvalidValue("fullUrl", "each Patient of a Bundle with several has its own")
        raise EntryRefused(next(s.index for s in new if not s.full_url or s is new[-1]), why)
    named: set[UUID] = set()
    for step in steps:
        if step.entry is None:
            continue
        reference = step.entry.patient_reference
        if reference in urls:
            continue
        if reference.startswith("urn:"):
            why = InvalidValue(f"{step.resource_type}.subject", "names no Patient in the Bundle")
            raise EntryRefused(step.index, why)
        named.add(patient_id_of(reference, f"Bundle.entry[{step.index}].subject"))
        if len(named) > 1:
            why = InvalidValue(
                f"{step.resource_type}.subject", "one existing chart per transaction"
            )
            raise EntryRefused(step.index, why)
    return next(iter(named), None)


def _apply(
    patient: Patient, steps: list[Step], by: Provenance, patients: Patients
) -> dict[str, Any]:
    """Every entry step on the one chart, encounters first (so that entries find the
    encounter they name), answered in the Bundle's order; a domain refusal names its
    entry."""
    answers: dict[int, list[Any]] = {}
    encounters_first = sorted(steps, key=lambda s: s.resource_type != "Encounter")
    for step in encounters_first:
        fields = step.entry
        if fields is None:
            raise EntryRefused(step.index, InvalidValue("Patient", "a Patient is updated alone"))
        try:
            if step.method == "POST":
                if fields.entered_in_error:
                    raise InvalidValue("status", "a new entry is not entered in error")
                entry_id = step.entry_id or patients.new_id()
                patient.record_entry(
                    entry_id=entry_id,
                    kind=fields.kind,
                    code=fields.code,
                    value=fields.value,
                    effective_at=fields.effective_at,
                    modality=fields.modality,
                    labels=fields.labels,
                    by=by,
                    tags=fields.tags,
                    links=fields.links,
                )
                status = "201 Created"
            else:
                entry_id = _target(patient, step)
                patient.amend_entry(
                    entry_id=entry_id,
                    reason=UPDATE_REASON,
                    code=fields.code,
                    value=fields.value,
                    effective_at=fields.effective_at,
                    modality=fields.modality,
                    labels=fields.labels,
                    by=by,
                    tags=fields.tags,
                    links=fields.links,
                )
                status = "200 OK"
        except InvalidValue as error:
            raise EntryRefused(step.index, error) from None
        except DomainError as error:
            raise EntryRefused(step.index, InvalidValue(step.resource_type, str(error))) from None
        found = resource_id(patient.id, str(entry_id))
        answers[step.index] = [step.resource_type, found, patient.version, status, step.note]
    entries = [answers[index] for index in sorted(answers)]
    return {"id": str(patient.id), "version": patient.version, "entries": entries}


def _target(patient: Patient, step: Step) -> UUID:
    ids = parse_resource_id(step.target or "")
    if ids is None or ids[0] != patient.id:
        raise NotFound(step.resource_type)
    entry = patient.entries.get(ids[1].hex)
    if entry is None or RESOURCE_OF_KIND[entry["kind"]] != step.resource_type:
        raise NotFound(step.resource_type)
    return ids[1]
