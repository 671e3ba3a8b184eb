"""A transaction Bundle: one patient's chart, written all or nothing in one commit.

The plan (``bundles``) refuses what the chart cannot hold before anything is written.
Then every step runs on one ``Patient`` aggregate (a new one, registered in the same
commit with its consent and MRN claim, or the existing chart, admitted as a /v1 write
is) and the ledger saves it once, group-committed with its access record: the
record's digest is of the transaction-response's exact bytes, which replay and a
retried ``Idempotency-Key`` render from the same result.
"""

import hashlib
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from application.access.access_log import WRITE_ADMITTED, Disclosed, access_record, render
from application.access.policy import Content
from application.access.roles import ChartAction, require_role
from application.charts.patients import Patients
from application.context import RequestContext
from application.errors import NotFound
from application.fhir.bundles import EntryRefused, Step, plan
from application.fhir.elements import patient_id_of
from application.fhir.resources import RESOURCE_OF_KIND, parse_resource_id, resource_id
from application.ports import Clock
from domain.access_record import AccessRecord
from domain.consent import Consent
from domain.errors import DomainError, InvalidValue
from domain.identifiers import MedicalRecordNumber, MrnClaim, MrnInUse
from domain.patient import Patient
from domain.values import Provenance

UPDATE_REASON = "updated through a FHIR transaction"


def response_bundle(kind: str, result: dict[str, Any]) -> dict[str, Any]:
    """The transaction-response (or batch-response) for a result's entries: each
    ``[type, id, version, status]`` and, when something was not kept, its note (an
    entry not kept at all has no id nor version), in the Bundle's order."""
    entries = []
    for resource_type, found, version, status, *note in result["entries"]:
        response: dict[str, Any] = {"status": status}
        if found is not None:
            response["location"] = f"{resource_type}/{found}/_history/{version}"
            response["etag"] = f'W/"{version}"'
        if note and note[0]:
            response["outcome"] = not_kept_outcome(note[0], held=found is not None)
        entries.append({"response": response})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": f"{kind}-response"}
    if entries:
        bundle["entry"] = entries
    return bundle


def not_kept_outcome(note: str, *, held: bool) -> dict[str, Any]:
    """What an entry's response says was not kept: some elements of an entry the
    chart holds (information), or the whole entry (a warning)."""
    issue = {
        "severity": "information" if held else "warning",
        "code": "informational" if held else "not-supported",
        "diagnostics": note,
    }
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def _not_held_entries(steps: list[Step]) -> list[list[Any]]:
    return [[s.resource_type, None, None, "200 OK", s.note] for s in steps if not s.held]


def _in_order(steps: list[Step], entries: list[list[Any]], held: list[Step]) -> list[list[Any]]:
    """Every entry's answer in its place in the Bundle (``entries`` are the ``held``
    steps' answers in the Bundle's order)."""
    answered = dict(zip(sorted(s.index for s in held), entries, strict=True))
    answered.update(
        zip((s.index for s in steps if not s.held), _not_held_entries(steps), strict=True)
    )
    return [answered[index] for index in sorted(answered)]


@dataclass(frozen=True)
class Undisclosed:
    """An answer that names no patient and writes nothing: no access record."""

    body: bytes
    access_id: None = None


@dataclass(frozen=True)
class TransactionAttestation:
    """The transaction's access records (an ``attested_writes.Attestation``): one per
    patient written, action write, each with the digest of the transaction-response's
    bytes and that patient's stream version."""

    access_ids: tuple[UUID, ...]
    ctx: RequestContext
    patient_ids: tuple[UUID, ...]
    clock: Clock

    @property
    def access_id(self) -> UUID:
        """The first patient's record, which ``X-Access-Id`` names."""
        return self.access_ids[0]

    def record(self, result: dict[str, Any], position: int) -> list[AccessRecord.Recorded]:
        body = render(response_bundle("transaction", result))
        versions = result.get("versions") or {result["id"]: result["version"]}
        return [
            access_record(
                self.clock(),
                access_id,
                self.ctx,
                "write",
                replace(WRITE_ADMITTED, care_organisation=self.ctx.actor.org),
                patient_id,
                (),
                {str(patient_id): int(versions[str(patient_id)])},
                {"view": "write", "fhir": "transaction", "entries": len(result["entries"])},
                hashlib.sha256(body).hexdigest(),
            )
            for access_id, patient_id in zip(self.access_ids, self.patient_ids, strict=True)
        ]


def _attestation(
    disclosures: Any, ctx: RequestContext, patient_ids: list[UUID]
) -> TransactionAttestation:
    access_ids = tuple(disclosures.new_id() for _ in patient_ids)
    return TransactionAttestation(access_ids, ctx, tuple(patient_ids), disclosures.clock)


class Transactions:
    def __init__(self, patients: Patients) -> None:
        self.patients = patients

    def transaction(self, ctx: RequestContext, bundle: dict[str, Any]) -> "Disclosed | Undisclosed":
        every = self._planned(bundle)
        require_role(ctx, ChartAction.WRITE_CLINICAL)
        steps = [step for step in every if step.held]
        if not steps and every:
            # Nothing for a chart (Synthea's practitioner and hospital Bundles): each
            # entry is answered as not kept, and nothing is written nor disclosed.
            result = {"entries": _in_order(every, [], [])}
            return Undisclosed(render(response_bundle("transaction", result)))
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
        if (prior := ledger.repeated(ctx)) is not None:
            ids = [UUID(found) for found in prior.result.get("ids", [prior.result["id"]])]
            attestation = _attestation(disclosures, ctx, ids)
            for record in attestation.record(prior.result, prior.position):
                disclosures.writer.write(record)
            return Disclosed(
                render(response_bundle("transaction", prior.result)), attestation.access_id
            )
        by = Provenance(ctx.actor.id, patients.clock())
        if patient_id is None:
            ids, aggregates, result = self._register_all(ctx, new, steps, by)
            result["entries"] = _in_order(every, result["entries"], steps)
            attestation = _attestation(disclosures, ctx, ids)
            try:
                outcome = ledger.commit(ctx, aggregates, result, attestation)
            except IntegrityError:
                claims = [a.id for a in aggregates if isinstance(a, MrnClaim)]
                if ledger.existing(claims):
                    raise MrnInUse() from None
                raise
        else:
            attestation = _attestation(disclosures, ctx, [patient_id])

            def admit(chart: Patient) -> None:
                patients.reads.gate.admit_write(
                    ctx, Content.CLINICAL, chart.id, chart.organisation_id, erased=chart.erased
                )

            def apply(chart: Patient) -> tuple[list[Patient], dict[str, Any]]:
                result = _apply(chart, steps, by, patients)
                result["entries"] = _in_order(every, result["entries"], steps)
                return [chart], result

            outcome = ledger.change(
                ctx, Patient, patient_id, "patient", apply, None, admit, attestation
            )
        body = render(response_bundle("transaction", outcome.result))
        if outcome.replayed:
            for record in attestation.record(outcome.result, outcome.position):
                disclosures.writer.write(record)
        return Disclosed(body, attestation.access_id)

    def _planned(self, bundle: dict[str, Any]) -> list[Step]:
        every = []
        for step in plan(bundle, self.patients.new_id):
            if isinstance(step, InvalidValue):
                raise step  # nothing is written: the first refusal names its entry
            every.append(step)
        return every

    def _register_all(
        self, ctx: RequestContext, new: list[Step], steps: list[Step], by: Provenance
    ) -> tuple[list[UUID], list[Any], dict[str, Any]]:
        """Each new Patient with its entries, saved in the one commit: all or nothing
        across patients. The answers are in the Bundle's order."""
        ids: list[UUID] = []
        aggregates: list[Any] = []
        answered: dict[int, list[Any]] = {}
        versions: dict[str, int] = {}
        mrns: set[tuple[str, str]] = set()
        for step in new:
            fields = step.patient
            assert fields is not None
            if (fields.mrn_system, fields.mrn) in mrns:
                why = InvalidValue("Patient.identifier", "another Patient of the Bundle has it")
                raise EntryRefused(step.index, why)
            mrns.add((fields.mrn_system, fields.mrn))
            own = [s for s in steps if s is step or _names(s, step)]
            patient_id, saved, result = self._register(ctx, step, own, by)
            ids.append(patient_id)
            aggregates += saved
            versions[str(patient_id)] = int(result["version"])
            answered.update(zip(sorted(s.index for s in own), result["entries"], strict=True))
        entries = [answered[index] for index in sorted(answered)]
        first = str(ids[0])
        result = {"id": first, "version": versions[first], "entries": entries}
        if len(ids) > 1:
            result |= {"ids": [str(i) for i in ids], "versions": versions}
        return ids, aggregates, result

    def _register(
        self, ctx: RequestContext, step: Step, steps: list[Step], by: Provenance
    ) -> tuple[UUID, list[Any], dict[str, Any]]:
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
            patient_id=patients.new_patient_id(),
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
        return patient.id, [patient, consent, claim], result


def _names(step: Step, patient: Step) -> bool:
    return step.entry is not None and step.entry.patient_reference == patient.full_url


def _one_patient(steps: list[Step], new: list[Step]) -> UUID | None:
    """The existing chart the transaction writes to, or None for the new Patients in
    it: a transaction registers patients with their charts, or writes to one existing
    chart, and references to any other are refused."""
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
        if new or len(named) > 1:
            why = InvalidValue(f"{step.resource_type}.subject", "one patient per transaction")
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
