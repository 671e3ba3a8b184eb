"""The baseline for W1 and W2: what one would otherwise build, a plain ``eventsourcing``
application behind FastAPI.

The same ``Patient`` aggregate and the same request schema as CareLedger, on the
library's stock recorder for the store (``eventsourcing.postgres`` or
``eventsourcing.sqlite``) with its default mapper: no encryption, no access records, no
authorisation, no group commit, no idempotency claims, no hash chain. The same
aggregate cache size as CareLedger. Run as ``python -m bench.plain_app --port P`` with
``PLAIN_DATABASE_URL`` set (``postgresql://...`` or ``sqlite:///path``), on
``--workers`` processes and the same HTTP stack as ``careledger serve``.
"""

import argparse
import os
from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID, uuid4

import uvicorn
from eventsourcing.application import Application
from eventsourcing.persistence import JSONTranscoder
from fastapi import FastAPI

from api.responses import JSON
from api.schemas import RecordEntryIn, RegisterPatientIn, value_to_domain
from api.serving import HTTP, LOOP, WORKER_START_SECONDS
from application.ledger.transcodings import register_clinical_transcodings
from domain.patient import Patient
from domain.values import Provenance
from infrastructure.stores import environment_for


class PlainLedger(Application[UUID]):
    env: ClassVar[dict[str, str]] = {"AGGREGATE_CACHE_MAXSIZE": "2000"}

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        register_clinical_transcodings(transcoder)


def plain_env(url: str) -> dict[str, str]:
    """The library's own settings for the URL's store (PostgreSQL or SQLite): the same
    connection settings as CareLedger's, but the stock recorder and mapper (ours are
    chosen by ``PROCESS_RECORDER_TOPIC`` and ``MAPPER_TOPIC``, left out here)."""
    env = environment_for(url)
    return {
        key: value for key, value in env.items() if key.startswith(("POSTGRES_", "SQLITE_"))
    } | {"PERSISTENCE_MODULE": env["PERSISTENCE_MODULE"], "CREATE_TABLE": "y"}


def create_plain_app(ledger: PlainLedger) -> FastAPI:
    app = FastAPI(default_response_class=JSON)

    @app.post("/v1/patients", status_code=201)
    def register(body: RegisterPatientIn) -> JSON:
        patient = Patient.register(
            patient_id=uuid4(),
            consent_id=uuid4(),
            organisation_id="org-main",
            mrn=body.mrn,
            name=body.name.to_domain(),
            birth_date=body.birth_date,
            sex=body.sex,
            contact=body.contact.to_domain() if body.contact else None,
            by=Provenance("bench", datetime.now(UTC)),
        )
        recordings = ledger.save(patient)
        return JSON({"id": str(patient.id), "position": recordings[-1].notification.id}, 201)

    @app.post("/v1/patients/{patient_id}/entries", status_code=201)
    def record_entry(patient_id: UUID, body: RecordEntryIn) -> JSON:
        patient: Patient = ledger.repository.get(patient_id)
        entry_id = uuid4()
        patient.record_entry(
            entry_id=entry_id,
            kind=body.kind,
            code=body.code.to_domain(),
            value=value_to_domain(body.value),
            effective_at=body.effective_at,
            modality=body.modality,
            labels=frozenset(body.labels),
            by=Provenance("bench", datetime.now(UTC)),
        )
        recordings = ledger.save(patient)
        body_out: dict[str, Any] = {
            "entry_id": str(entry_id),
            "version": patient.version,
            "position": recordings[-1].notification.id,
        }
        return JSON(body_out, 201)

    return app


def app_from_environment() -> FastAPI:
    """One process's app (uvicorn calls this factory in each worker)."""
    return create_plain_app(PlainLedger(plain_env(os.environ["PLAIN_DATABASE_URL"])))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    # The same server, event loop and HTTP parser as `careledger serve` (api.serving).
    uvicorn.run(
        "bench.plain_app:app_from_environment",
        factory=True,
        workers=args.workers,
        loop=LOOP,
        http=HTTP,
        timeout_worker_healthcheck=WORKER_START_SECONDS,
        host="127.0.0.1",
        port=args.port,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
