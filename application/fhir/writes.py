"""FHIR create and update: ``intake``'s commands run through the chart's use cases.

Nothing here decides or records anything itself: ``Patients`` admits the writer, claims
the Idempotency-Key, commits the write with its access record (view ``write``) and
checks ``If-Match``. What a FHIR update adds (an entry's own version, an MRN that an
update may not change) is checked on the loaded chart inside that same transaction.
"""

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from application.access.access_log import Disclosed, DisclosedWrite
from application.access.roles import ChartAction, require_role
from application.charts.chart_reads import ChartReads
from application.charts.patients import Patients
from application.context import RequestContext
from application.errors import NotFound, PreconditionFailed
from application.fhir.elements import patient_id_of
from application.fhir.intake import (
    EntryFields,
    PatientFields,
    entry_fields,
    patient_fields,
)
from application.fhir.medications import resolved_alone
from application.fhir.reads import FhirReads
from application.fhir.resources import RESOURCE_OF_KIND, parse_resource_id, resource_id
from domain.errors import InvalidValue
from domain.patient import Patient

# An update carries no reason of its own; the amendment's event must say why.
UPDATE_REASON = "updated through FHIR"
ERROR_REASON = "marked entered-in-error through FHIR"


class SeveralMatches(PreconditionFailed):
    """A conditional create whose criteria match more than one patient (FHIR: 412)."""

    def __init__(self) -> None:
        Exception.__init__(self, "If-None-Exist matches more than one patient")
        self.expected = self.actual = 0


@dataclass(frozen=True)
class Written:
    """A write's answer: the resource's type, id and new version, and the write's
    outcome (its access record made in the write's transaction)."""

    resource_type: str
    resource_id: str
    version: int
    write: DisclosedWrite


@dataclass(frozen=True)
class Found:
    """A conditional create that found its patient: the Patient read, disclosed."""

    disclosure: Disclosed
    patient_id: UUID


@dataclass(frozen=True)
class MrnAndSystem:
    system: str
    value: str


def written_entry(resource_type: str, patient_id: UUID, write: DisclosedWrite) -> Written:
    entry_id = write.result["entry_id"]
    return Written(
        resource_type, resource_id(patient_id, entry_id), int(write.result["version"]), write
    )


class FhirWrites:
    """The FHIR write interface of one request's services."""

    def __init__(self, patients: Patients, charts: ChartReads, reads: FhirReads) -> None:
        self.patients = patients
        self.charts = charts
        self.reads = reads

    # --- Patient ----------------------------------------------------------------------

    def create_patient(
        self, ctx: RequestContext, resource: dict[str, Any], base: str, if_none_exist: str | None
    ) -> Written | Found:
        fields = patient_fields(resource)
        if "id" in resource:
            raise InvalidValue("Patient.id", "is assigned by the server on create")
        if fields.deceased_at is not None:
            raise InvalidValue("Patient.deceasedDateTime", "is recorded after registration")
        if fields.sex is None:
            raise InvalidValue("Patient.gender", "is required to register a patient")
        if if_none_exist is not None:
            existing = self._existing(ctx, if_none_exist)
            if existing is not None:
                return Found(self.reads.patient(ctx, existing, base, []), existing)
        write = self.patients.register(
            ctx,
            mrn=MrnAndSystem(fields.mrn_system, fields.mrn),
            name=fields.name,
            birth_date=fields.birth_date,
            sex=fields.sex,
            contact=fields.contact,
        )
        return Written("Patient", write.result["id"], int(write.result["version"]), write)

    def _existing(self, ctx: RequestContext, criteria: str) -> UUID | None:
        """``If-None-Exist: identifier=system|value``: the one patient of the actor's
        organisation with that MRN, None for none, 412 for several."""
        name, _, wanted = criteria.partition("=")
        system, bar, value = wanted.rpartition("|")
        if name != "identifier" or not bar or not system or not value or "&" in wanted:
            raise InvalidValue("If-None-Exist", "must be identifier=system|value")
        require_role(ctx, ChartAction.SEARCH)
        self.charts.directory_decision(ctx)  # a denial is recorded and raised
        # The primary's directory, not a replica's: a check before a write (Read replicas).
        found = self.patients.reads.views.directory.by_mrn(ctx.actor.org, value, 2, system)
        if len(found) > 1:
            raise SeveralMatches()
        return UUID(found[0]["id"]) if found else None

    def update_patient(
        self,
        ctx: RequestContext,
        patient_id: UUID,
        resource: dict[str, Any],
        expected_version: int | None,
    ) -> Written:
        if resource.get("id", str(patient_id)) != str(patient_id):
            raise InvalidValue("Patient.id", "must be the id in the URL")
        fields = patient_fields(resource)

        def unchanged(patient: Patient) -> None:
            _keeps_what_an_update_cannot_change(patient, fields)

        write = self.patients.update_demographics(
            ctx,
            patient_id,
            name=fields.name,
            birth_date=fields.birth_date,
            sex=fields.sex,
            contact=fields.contact,
            expected_version=expected_version,
            precondition=unchanged,
        )
        return Written("Patient", str(patient_id), int(write.result["version"]), write)

    # --- entries ----------------------------------------------------------------------

    def create_entry(
        self,
        ctx: RequestContext,
        resource_type: str,
        resource: dict[str, Any],
        patients: dict[str, UUID] | None = None,
    ) -> Written:
        """Record an entry; ``patients`` resolves a transaction's ``urn:uuid:`` subjects."""
        if "id" in resource:
            raise InvalidValue(f"{resource_type}.id", "is assigned by the server on create")
        fields = entry_fields(resource_type, resolved_alone(resource_type, resource))
        if fields.entered_in_error:
            raise InvalidValue(f"{resource_type}.status", "a new entry is not entered in error")
        patient_id = (patients or {}).get(fields.patient_reference) or patient_id_of(
            fields.patient_reference, f"{resource_type}.subject"
        )
        write = self.patients.record_entry(
            ctx,
            patient_id,
            kind=fields.kind,
            code=fields.code,
            value=fields.value,
            effective_at=fields.effective_at,
            modality=fields.modality,
            labels=fields.labels,
            tags=fields.tags,
            links=fields.links,
        )
        return written_entry(resource_type, patient_id, write)

    def update_entry(
        self,
        ctx: RequestContext,
        resource_type: str,
        text: str,
        resource: dict[str, Any],
        expected_version: int | None,
    ) -> Written:
        """Amend an entry (or mark it entered in error); ``If-Match`` is the entry's
        version, its latest event's stream version, as ``_history`` shows it."""
        ids = parse_resource_id(text)
        if ids is None:
            raise NotFound(resource_type)
        patient_id, entry_id = ids
        if resource.get("id", text) != text:
            raise InvalidValue(f"{resource_type}.id", "must be the id in the URL")
        fields = entry_fields(resource_type, resolved_alone(resource_type, resource))
        if patient_id_of(fields.patient_reference, f"{resource_type}.subject") != patient_id:
            raise InvalidValue(
                f"{resource_type}.subject", "an entry does not move to another chart"
            )

        def same_entry(patient: Patient) -> None:
            _same_entry(patient, entry_id, resource_type, fields, expected_version)

        patients = self.patients
        if fields.entered_in_error:
            write = patients.mark_entered_in_error(
                ctx, patient_id, entry_id, reason=ERROR_REASON, precondition=same_entry
            )
        else:
            write = patients.amend_entry(
                ctx,
                patient_id,
                entry_id,
                reason=UPDATE_REASON,
                code=fields.code,
                value=fields.value,
                effective_at=fields.effective_at,
                modality=fields.modality,
                labels=fields.labels,
                tags=fields.tags,
                precondition=same_entry,
                links=fields.links,
            )
        return written_entry(resource_type, patient_id, write)


def _same_entry(
    patient: Patient,
    entry_id: UUID,
    resource_type: str,
    fields: EntryFields,
    expected_version: int | None,
) -> None:
    entry = patient.entries.get(entry_id.hex)
    if entry is None or RESOURCE_OF_KIND[entry["kind"]] != resource_type:
        raise NotFound(resource_type)
    if entry["kind"] != fields.kind.value:
        raise InvalidValue(f"{resource_type}.category", "an entry keeps its kind")
    versions = entry["versions"]
    if expected_version is not None:
        # A chart snapshotted before entries kept their versions knows none: 412.
        current = versions[-1] if versions else 0
        if current != expected_version:
            raise PreconditionFailed(expected_version, current)


def _keeps_what_an_update_cannot_change(patient: Patient, fields: PatientFields) -> None:
    """A Patient update changes demographics; what it cannot change must be as it is
    (never silently kept while the client believes it changed)."""
    if (patient.mrn_system, patient.mrn) != (fields.mrn_system, fields.mrn):
        raise InvalidValue("Patient.identifier", "an MRN is not changed by an update")
    if patient.deceased_at != fields.deceased_at:
        raise InvalidValue("Patient.deceasedDateTime", "a death is recorded through /v1")
    if patient.contact is not None and fields.contact is None:
        raise InvalidValue("Patient.telecom", "contact details are not removed by an update")
    if patient.sex is not None and fields.sex is None:
        raise InvalidValue("Patient.gender", "is not removed by an update")
