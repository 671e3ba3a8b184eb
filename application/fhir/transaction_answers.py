"""What a transaction or batch answers: its response Bundle, each entry's outcome of
what was not kept, and the access records of a transaction (one per patient written,
each with the digest of the answer's exact bytes)."""

import hashlib
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID

from application.access.access_log import WRITE_ADMITTED, access_record, render
from application.context import RequestContext
from application.fhir.bundles import Step
from application.ports import Clock
from domain.access_record import AccessRecord


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


def not_held_entries(steps: list[Step]) -> list[list[Any]]:
    return [[s.resource_type, None, None, "200 OK", s.note] for s in steps if not s.held]


def in_order(steps: list[Step], entries: list[list[Any]], held: list[Step]) -> list[list[Any]]:
    """Every entry's answer in its place in the Bundle (``entries`` are the ``held``
    steps' answers in the Bundle's order)."""
    answered = dict(zip(sorted(s.index for s in held), entries, strict=True))
    answered.update(
        zip((s.index for s in steps if not s.held), not_held_entries(steps), strict=True)
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


def attestation_of(
    disclosures: Any, ctx: RequestContext, patient_ids: list[UUID]
) -> TransactionAttestation:
    access_ids = tuple(disclosures.new_id() for _ in patient_ids)
    return TransactionAttestation(access_ids, ctx, tuple(patient_ids), disclosures.clock)
