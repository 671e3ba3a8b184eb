"""The authorisation matrix: every endpoint by role by own or other organisation by
purpose (the default one, break-glass, marketing) has one expected status. Zero
deviations are allowed, and every 403 leaves a denial in the access log.

The chart is a patient of org-main under an active membership, with one entry and
no consent directive. Break-glass switches any caller's purpose to ETREAT.
"""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.support import AUDITOR, settled, under_care
from tests.conftest import ENTRY_BODY, REGISTER_BODY, auth

GLASS = "unconscious on arrival, no history available"
ACTORS = {
    "clinician": auth("clinician", sub="dr-main"),
    "clinician, other org": auth("clinician", sub="dr-other", org="org-other"),
    "admin": auth("admin", sub="admin-main"),
    "auditor": auth("auditor", sub="auditor-main"),
    "patient, self": None,  # a token for the chart's own patient, made per run
    "patient, other": auth(
        "patient", sub="someone", patient="00000000-0000-4000-8000-0000000000aa"
    ),
    "service, other org": auth("service", sub="svc-ads", org="org-ads"),
}
PURPOSES = {
    "default": {},
    "break-glass": {"X-Break-Glass": GLASS},
    "marketing": {"X-Purpose-Of-Use": "HMARKT"},
}

# endpoint: {actor: (default, break-glass, marketing)}
# fmt: off
MATRIX: dict[str, dict[str, tuple[int, int, int]]] = {
    "GET patient": {
        "clinician": (200, 200, 403), "clinician, other org": (404, 404, 404),
        "admin": (403, 403, 403), "auditor": (403, 403, 403),
        "patient, self": (200, 200, 200), "patient, other": (404, 404, 404),
        "service, other org": (403, 403, 403),
    },
    "GET timeline": {
        "clinician": (200, 200, 403), "clinician, other org": (404, 404, 404),
        "admin": (403, 403, 403), "auditor": (403, 403, 403),
        "patient, self": (200, 200, 200), "patient, other": (404, 404, 404),
        "service, other org": (403, 403, 403),
    },
    "GET consents": {
        "clinician": (200, 200, 403), "clinician, other org": (404, 404, 404),
        "admin": (403, 403, 403), "auditor": (403, 403, 403),
        "patient, self": (200, 200, 200), "patient, other": (404, 404, 404),
        "service, other org": (403, 403, 403),
    },
    "GET search": {  # another organisation searches its own directory: found nothing
        "clinician": (200, 200, 403), "clinician, other org": (200, 200, 403),
        "admin": (403, 403, 403), "auditor": (403, 403, 403),
        "patient, self": (403, 403, 403), "patient, other": (403, 403, 403),
        "service, other org": (403, 403, 403),
    },
    "POST entry": {
        "clinician": (201, 201, 403), "clinician, other org": (404, 404, 403),
        "admin": (403, 403, 403), "auditor": (403, 403, 403),
        "patient, self": (403, 403, 403), "patient, other": (403, 403, 403),
        "service, other org": (403, 403, 403),
    },
    "GET memberships": {
        "clinician": (403, 403, 403), "clinician, other org": (403, 403, 403),
        "admin": (200, 200, 200), "auditor": (403, 403, 403),
        "patient, self": (403, 403, 403), "patient, other": (403, 403, 403),
        "service, other org": (403, 403, 403),
    },
    "GET disclosures": {
        "clinician": (403, 403, 403), "clinician, other org": (403, 403, 403),
        "admin": (403, 403, 403), "auditor": (200, 200, 200),
        "patient, self": (200, 200, 200), "patient, other": (404, 404, 404),
        "service, other org": (403, 403, 403),
    },
    "GET access log": {  # a patient sees their own rows only
        "clinician": (403, 403, 403), "clinician, other org": (403, 403, 403),
        "admin": (403, 403, 403), "auditor": (200, 200, 200),
        "patient, self": (200, 200, 200), "patient, other": (200, 200, 200),
        "service, other org": (403, 403, 403),
    },
    "GET verify": {
        "clinician": (403, 403, 403), "clinician, other org": (403, 403, 403),
        "admin": (200, 200, 200), "auditor": (200, 200, 200),
        "patient, self": (403, 403, 403), "patient, other": (403, 403, 403),
        "service, other org": (403, 403, 403),
    },
}
# fmt: on


def _request(endpoint: str, patient_id: str, seen: dict[str, int]) -> tuple[str, str, Any]:
    return {
        "GET patient": ("GET", f"/v1/patients/{patient_id}", None),
        "GET timeline": ("GET", f"/v1/patients/{patient_id}/timeline", None),
        "GET consents": ("GET", f"/v1/patients/{patient_id}/consents", None),
        "GET search": ("GET", "/v1/patients", None),
        "POST entry": ("POST", f"/v1/patients/{patient_id}/entries", ENTRY_BODY),
        "GET memberships": ("GET", "/v1/memberships", None),
        "GET disclosures": ("GET", f"/v1/patients/{patient_id}/disclosures", None),
        "GET access log": ("GET", "/v1/audit/accesses", None),
        "GET verify": ("GET", "/v1/audit/verify", None),
    }[endpoint]


@pytest.fixture
def chart(client: TestClient) -> str:
    patient = client.post("/v1/patients", json=REGISTER_BODY, headers=ACTORS["clinician"])
    patient_id: str = patient.json()["id"]
    under_care(client, patient_id)
    entry = client.post(
        f"/v1/patients/{patient_id}/entries", json=ENTRY_BODY, headers=ACTORS["clinician"]
    )
    assert entry.status_code == 201, entry.text
    return patient_id


def test_the_matrix_has_no_deviation_and_every_403_is_audited(
    client: TestClient, chart: str
) -> None:
    actors = {**ACTORS, "patient, self": auth("patient", sub="patient-self", patient=chart)}
    seen = settled(client)
    deviations = []
    forbidden = 0
    for endpoint, row in MATRIX.items():
        assert set(row) == set(actors), endpoint  # every role, own and other organisation
        method, path, body = _request(endpoint, chart, seen)
        params = {**seen, **({"mrn": "MRN-0001"} if endpoint == "GET search" else {})}
        for actor, expected in row.items():
            for (purpose, extra), status in zip(PURPOSES.items(), expected, strict=True):
                headers = {**(actors[actor] or {}), **extra}
                got = client.request(method, path, params=params, json=body, headers=headers)
                if got.status_code != status:
                    deviations.append((endpoint, actor, purpose, status, got.status_code))
                forbidden += got.status_code == 403
    assert deviations == []
    # Every 403 left a denial in the access log
    denials = client.get(
        "/v1/audit/accesses",
        params={"decision": "deny", "limit": 500, **settled(client)},
        headers=AUDITOR,
    ).json()["items"]
    assert len(denials) >= forbidden
