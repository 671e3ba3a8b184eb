"""Use cases of the chart: registration, demographics and clinical entries."""

from collections.abc import Callable
from copy import deepcopy
from datetime import date, datetime
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from application.access.access_log import Disclosed, DisclosedWrite
from application.access.chart_gate import ReadSide
from application.access.policy import Content
from application.access.roles import ChartAction, require_role
from application.charts.disclosure_rendering import DEMOGRAPHICS_RENDER, render_demographics
from application.context import RequestContext
from application.errors import Gone, NotFound
from application.ledger.awaited_writes import can_await, commit_awaited
from application.ledger.ledger import CareLedger, WriteOutcome
from application.ports import Clock, NewId, NewPatientId
from domain.consent import Consent
from domain.identifiers import MedicalRecordNumber, MrnClaim, MrnInUse
from domain.patient import Patient
from domain.values import (
    Coding,
    ContactDetails,
    EntryLinks,
    EntryValue,
    HumanName,
    Provenance,
)
from domain.vocabulary import AdministrativeSex, EntryKind, Modality, SensitivityLabel

MrnClaimId = Callable[[str, MedicalRecordNumber], UUID]
"""The id of the claim stream of an (organisation, MRN): a keyed hash, so that the id
discloses nothing (``infrastructure.claims`` in production)."""


Precondition = Callable[[Patient], None]
"""A check of the loaded chart inside the command's optimistic transaction, after the
actor is admitted (a FHIR update's If-Match on one entry's version, for instance)."""


class SystemAndValue(Protocol):
    """An MRN with its system, as a request body gives it."""

    @property
    def system(self) -> str: ...

    @property
    def value(self) -> str: ...


class Patients:
    def __init__(
        self,
        ledger: CareLedger,
        clock: Clock,
        new_id: NewId,
        reads: ReadSide,
        new_patient_id: NewPatientId,
        mrn_claim_id: MrnClaimId,
    ) -> None:
        self.ledger = ledger
        self.clock = clock
        self.new_id = new_id
        self.reads = reads
        self.new_patient_id = new_patient_id
        self.mrn_claim_id = mrn_claim_id

    def _repeated(
        self, ctx: RequestContext, patient_id: UUID, prior: WriteOutcome
    ) -> DisclosedWrite:
        """The first answer to a request retried with its Idempotency-Key: its write
        committed then, so disclosing it again is recorded on its own."""
        disclosures = self.reads.disclosures
        return disclosures.answer_write(disclosures.attest_write(ctx, patient_id), prior)

    def _by(self, ctx: RequestContext) -> Provenance:
        return Provenance(ctx.actor.id, self.clock())

    def register(
        self,
        ctx: RequestContext,
        *,
        mrn: str | SystemAndValue,
        name: HumanName,
        birth_date: date,
        sex: AdministrativeSex,
        contact: ContactDetails | None,
    ) -> DisclosedWrite:
        """Register a patient; a bare ``mrn`` is in the organisation's default system.
        The MRN is claimed in the same transaction, so a second patient with it is
        refused (``MrnInUse``, 409) however close together the two arrive."""
        require_role(ctx, ChartAction.REGISTER)
        org = ctx.actor.org
        identifier = (
            MedicalRecordNumber.in_organisation(org, mrn.strip())
            if isinstance(mrn, str)
            else MedicalRecordNumber(mrn.system, mrn.value)
        )
        if (prior := self.ledger.repeated(ctx)) is not None:
            return self._repeated(ctx, UUID(prior.result["id"]), prior)
        try:
            self._check_unclaimed(org, identifier)
        except MrnInUse:
            # A retry of this very request may have registered the MRN since the
            # look-up above: it is answered as the first was, not refused.
            if (prior := self.ledger.repeated(ctx)) is not None:
                return self._repeated(ctx, UUID(prior.result["id"]), prior)
            raise
        by = self._by(ctx)
        patient = Patient.register(
            patient_id=self.new_patient_id(),
            consent_id=self.new_id(),
            organisation_id=org,
            mrn=identifier,
            name=name,
            birth_date=birth_date,
            sex=sex,
            contact=contact,
            by=by,
        )
        consent = Consent.open(consent_id=patient.consent_id, patient_id=patient.id, by=by)
        claim = MrnClaim.claim(
            claim_id=self.mrn_claim_id(org, identifier),
            patient_id=patient.id,
            organisation_id=org,
            by=by,
        )
        result = {"id": str(patient.id), "version": patient.version}
        attestation = self.reads.disclosures.attest_write(ctx, patient.id)
        try:
            outcome = self.ledger.commit(ctx, [patient, consent, claim], result, attestation)
        except IntegrityError:
            if self.ledger.existing([claim.id]):
                raise MrnInUse() from None
            raise
        return self.reads.disclosures.answer_write(attestation, outcome)

    def _check_unclaimed(self, org: str, identifier: MedicalRecordNumber) -> None:
        """Patients registered before MRN claims existed have no claim stream: the
        directory finds them (their MRNs are in the default system)."""
        if self.reads.views.directory.by_mrn(org, identifier.value, 1, identifier.system):
            raise MrnInUse()

    def update_demographics(
        self,
        ctx: RequestContext,
        patient_id: UUID,
        *,
        name: HumanName | None,
        birth_date: date | None,
        sex: AdministrativeSex | None,
        contact: ContactDetails | None,
        expected_version: int | None = None,
        precondition: Precondition | None = None,
    ) -> DisclosedWrite:
        def command(patient: Patient, by: Provenance) -> dict[str, Any]:
            if precondition is not None:
                precondition(patient)
            patient.update_demographics(
                name=name, birth_date=birth_date, sex=sex, contact=contact, by=by
            )
            return {"id": str(patient.id)}

        return self._change_chart(ctx, patient_id, expected_version, command)

    def record_entry(
        self,
        ctx: RequestContext,
        patient_id: UUID,
        *,
        kind: EntryKind,
        code: Coding,
        value: EntryValue | None,
        effective_at: datetime,
        modality: Modality | None,
        labels: frozenset[SensitivityLabel],
        expected_version: int | None = None,
        tags: tuple[Coding, ...] = (),
        links: EntryLinks | None = None,
    ) -> DisclosedWrite:
        command = self._recording(
            kind=kind, code=code, value=value, effective_at=effective_at,
            modality=modality, labels=labels, tags=tags, links=links,
        )  # fmt: skip
        return self._change_chart(ctx, patient_id, expected_version, command)

    async def record_entry_awaited(
        self,
        ctx: RequestContext,
        patient_id: UUID,
        *,
        expected_version: int | None = None,
        **entry: Any,
    ) -> DisclosedWrite | None:
        """``record_entry`` (the same fields) on the event loop when it needs no store
        read (``awaited_writes``); None, with nothing written, when it does."""
        command = self._recording(**{"tags": (), "links": None, **entry})
        return await self._change_chart_awaited(ctx, patient_id, expected_version, command)

    def _recording(self, **entry: Any) -> Callable[[Patient, Provenance], dict[str, Any]]:
        """The command that records an entry (its id chosen now, once per request)."""
        entry_id = self.new_id()

        def command(patient: Patient, by: Provenance) -> dict[str, Any]:
            patient.record_entry(entry_id=entry_id, by=by, **entry)
            return {"entry_id": str(entry_id)}

        return command

    def amend_entry(
        self,
        ctx: RequestContext,
        patient_id: UUID,
        entry_id: UUID,
        *,
        reason: str,
        code: Coding | None,
        value: EntryValue | None,
        effective_at: datetime | None,
        modality: Modality | None,
        labels: frozenset[SensitivityLabel] | None,
        expected_version: int | None = None,
        tags: tuple[Coding, ...] | None = None,
        precondition: Precondition | None = None,
        links: EntryLinks | None = None,
    ) -> DisclosedWrite:
        def command(patient: Patient, by: Provenance) -> dict[str, Any]:
            if precondition is not None:
                precondition(patient)
            patient.amend_entry(
                entry_id=entry_id,
                reason=reason,
                code=code,
                value=value,
                effective_at=effective_at,
                modality=modality,
                labels=labels,
                by=by,
                tags=tags,
                links=links,
            )
            return {"entry_id": str(entry_id)}

        return self._change_chart(ctx, patient_id, expected_version, command)

    def mark_entered_in_error(
        self,
        ctx: RequestContext,
        patient_id: UUID,
        entry_id: UUID,
        *,
        reason: str,
        expected_version: int | None = None,
        precondition: Precondition | None = None,
    ) -> DisclosedWrite:
        def command(patient: Patient, by: Provenance) -> dict[str, Any]:
            if precondition is not None:
                precondition(patient)
            patient.mark_entered_in_error(entry_id=entry_id, reason=reason, by=by)
            return {"entry_id": str(entry_id)}

        return self._change_chart(ctx, patient_id, expected_version, command)

    def record_death(
        self,
        ctx: RequestContext,
        patient_id: UUID,
        *,
        deceased_at: datetime,
        expected_version: int | None = None,
    ) -> DisclosedWrite:
        def command(patient: Patient, by: Provenance) -> dict[str, Any]:
            patient.record_death(deceased_at=deceased_at, by=by)
            return {"id": str(patient.id)}

        return self._change_chart(ctx, patient_id, expected_version, command)

    def _change_chart(
        self,
        ctx: RequestContext,
        patient_id: UUID,
        expected_version: int | None,
        command: Callable[[Patient, Provenance], dict[str, Any]],
    ) -> DisclosedWrite:
        """Run a clinical command on a chart the actor may write to."""
        require_role(ctx, ChartAction.WRITE_CLINICAL)
        gate = self.reads.gate

        def admit(patient: Patient) -> None:
            gate.admit_write(
                ctx, Content.CLINICAL, patient.id, patient.organisation_id, erased=patient.erased
            )

        # Authorised before an idempotency claim is looked up, so that a key can never
        # fetch an answer the actor may not see.
        admit(gate.chart(ctx, patient_id, "write"))
        if (prior := self.ledger.repeated(ctx)) is not None:
            return self._repeated(ctx, patient_id, prior)

        def apply(patient: Patient) -> tuple[list[Patient], dict[str, Any]]:
            result = command(patient, self._by(ctx))
            return [patient], {**result, "version": patient.version}

        attestation = self.reads.disclosures.attest_write(ctx, patient_id)
        outcome = self.ledger.change(
            ctx, Patient, patient_id, "patient", apply, expected_version, admit, attestation
        )
        return self.reads.disclosures.answer_write(attestation, outcome)

    async def _change_chart_awaited(
        self,
        ctx: RequestContext,
        patient_id: UUID,
        expected_version: int | None,
        command: Callable[[Patient, Provenance], dict[str, Any]],
    ) -> DisclosedWrite | None:
        """``_change_chart`` when the chart is cached, permitted and as If-Match expects
        it, with no Idempotency-Key: the checks are the same, and none reads the store.
        Otherwise None before anything is written: the blocking path decides (and
        records a denial, 404 or 410) as it always has."""
        require_role(ctx, ChartAction.WRITE_CLINICAL)  # a 403's handler records it
        chart = self.ledger.cached(Patient, patient_id)
        if chart is None or chart.erased or not can_await(self.ledger, ctx):
            return None
        if expected_version is not None and chart.version != expected_version:
            return None  # the copy may be behind: the blocking path loads the chart
        gate = self.reads.gate
        if not gate.write_permitted(ctx, Content.CLINICAL, patient_id, chart.organisation_id):
            return None
        patient = deepcopy(chart)  # the cached chart changes only once the save commits
        result = {**command(patient, self._by(ctx)), "version": patient.version}
        attestation = self.reads.disclosures.attest_write(ctx, patient_id)
        outcome = await commit_awaited(self.ledger, [patient], result, attestation)
        if outcome is None:  # a concurrent writer moved the chart on: nothing committed
            return None
        return self.reads.disclosures.answer_write(attestation, outcome)

    def demographics(self, ctx: RequestContext, patient_id: UUID) -> Disclosed:
        """The patient's demographics, as of the latest version of the stream."""
        require_role(ctx, ChartAction.READ_DEMOGRAPHICS)
        try:
            patient = self.ledger.load(Patient, patient_id, "patient")
        except NotFound:  # recorded, so that an unknown id costs what a foreign one does
            self.reads.gate.refuse_outside(ctx, patient_id, ctx.actor.org, "read")
        except Gone:  # the key is destroyed: 410 within reach only
            self.reads.gate.within_reach(ctx, patient_id, "read")
            raise
        if patient.erased:
            self.reads.gate.within_reach(ctx, patient_id, "read")  # else 404, recorded
            raise Gone("the patient's record has been erased")
        admission = self.reads.gate.admit(
            ctx,
            patient_id,
            Content.DEMOGRAPHICS,
            "read",
            care_organisation=patient.organisation_id,
        )
        return self.reads.disclosures.disclose(
            ctx,
            action="read",
            body=render_demographics(patient),
            decision=admission.decision,
            patient_id=patient_id,
            stream_versions={str(patient_id): patient.version, **admission.stream_versions},
            request={"view": "demographics", "render": DEMOGRAPHICS_RENDER},
            version=patient.version,
        )
