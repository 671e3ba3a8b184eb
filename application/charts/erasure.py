"""Crypto-shredding: a patient's data key is destroyed, after a PHI-free tombstone.

Order matters. The ``Erased`` event is recorded first (sealed with the system key, so
it stays readable), then the key is destroyed. A crash between the two leaves a
patient marked erased whose key still exists; erasing again finishes the job.
"""

from typing import Any
from uuid import UUID

from application.access.chart_gate import ChartGate
from application.access.policy import Content
from application.access.roles import ChartAction, require_role
from application.context import RequestContext
from application.errors import Gone
from application.ledger.ledger import CareLedger, WriteOutcome
from application.ports import Clock, PatientKeys
from domain.patient import Patient
from domain.values import Provenance


class Erasure:
    def __init__(
        self, ledger: CareLedger, keys: PatientKeys, clock: Clock, gate: ChartGate
    ) -> None:
        self.ledger = ledger
        self.keys = keys
        self.clock = clock
        self.gate = gate

    def erase(self, ctx: RequestContext, patient_id: UUID, *, legal_basis: str) -> WriteOutcome:
        require_role(ctx, ChartAction.ERASE)

        try:
            patient = self.gate.chart(ctx, patient_id, "write")
        except Gone:  # within reach (else 404): a retry of the erasure answers as it did
            if (prior := self.ledger.repeated(ctx)) is not None:
                return prior
            raise
        self.gate.admit_write(ctx, Content.ERASURE, patient_id, patient.organisation_id)

        def admit(patient: Patient) -> None:  # its organisation never changes: checked
            if patient.erased:
                raise Gone("the patient's record has already been erased")

        if (prior := self.ledger.repeated(ctx)) is not None:
            return prior

        streams = [patient_id]

        def apply(patient: Patient) -> tuple[list[Patient], dict[str, Any]]:
            streams.append(patient.consent_id)
            patient.erase(legal_basis=legal_basis, by=Provenance(ctx.actor.id, self.clock()))
            return [patient], {"id": str(patient.id), "erased": True}

        try:
            outcome = self.ledger.change(ctx, Patient, patient_id, "patient", apply, admit=admit)
        except Gone:
            # Already erased (perhaps the key survived a crash): make sure it is gone.
            self._shred(streams)
            raise
        self._shred(streams)
        return outcome

    def _shred(self, streams: list[UUID]) -> None:
        self.keys.destroy(streams[0])
        self.ledger.forget(*streams)
