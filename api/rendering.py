"""Shared rendering of command outcomes."""

from typing import Any
from uuid import UUID

from starlette.responses import Response

from api.responses import JSON, disclosed
from application.access_log import Disclosed, Disclosures
from application.context import RequestContext
from application.ledger import WriteOutcome

WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "No token, or a bad one"},
    403: {"description": "A valid token that is not allowed"},
    404: {"description": "Not found, or not within the actor's reach"},
    409: {"description": "Version conflict, or a business rule refused the command"},
    412: {"description": "If-Match named a version that is not current"},
    413: {"description": "Body too large"},
    422: {"description": "Invalid input; `errors` names each bad field"},
    503: {"description": "The store is unavailable"},
}


def recorded_write(
    outcome: WriteOutcome,
    status_code: int,
    ctx: RequestContext,
    disclosures: Disclosures,
    patient_id: UUID,
) -> Response:
    """A write of clinical data, answered with its access record (action ``write``).

    The chart's own rules admitted the write; its answer (ids, version, position) is
    hashed into the record like any other response. The record was written in the
    write's own transaction (``outcome.receipt``), except for an answer repeated from
    an idempotency claim, which is a disclosure of its own.
    """
    disclosure = outcome.receipt
    if not isinstance(disclosure, Disclosed):
        disclosure = disclosures.disclose_write(ctx, patient_id, outcome)
    return disclosed(disclosure, status_code, **_write_headers(outcome))


def written(outcome: WriteOutcome, status_code: int) -> JSON:
    return JSON(outcome.body(), status_code=status_code, headers=_write_headers(outcome))


def _write_headers(outcome: WriteOutcome) -> dict[str, str]:
    headers = {}
    version = outcome.result.get("version", outcome.result.get("consent_version"))
    if version is not None:
        headers["ETag"] = f'"{version}"'
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    return headers
