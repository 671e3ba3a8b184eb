"""Shared rendering of command outcomes."""

from starlette.responses import Response

from api.responses import JSON, disclosed
from application.access.access_log import DisclosedWrite
from application.ledger.ledger import WriteOutcome


def disclosed_write(write: DisclosedWrite, status_code: int) -> Response:
    """A write of clinical data, answered with exactly the bytes its access record
    (action ``write``) hashed."""
    return disclosed(write.disclose(), status_code, **_write_headers(write))


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
