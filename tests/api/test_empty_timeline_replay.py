"""Issue 20, defect 1: a timeline read of a chart with no entries is recorded at the
chart's stream version 0 (the view has seen none of its events), and its replay
rebuilds the empty page byte for byte instead of failing with a 500.
"""

import hashlib

from fastapi.testclient import TestClient

from tests.api.support import AUDITOR, CLINICIAN, register, settled, under_care


def test_an_empty_timeline_read_replays_byte_for_byte(client: TestClient) -> None:
    # Given a patient under care whose chart has no entries yet
    patient_id = register(client)
    under_care(client, patient_id)
    read = client.get(
        f"/v1/patients/{patient_id}/timeline", params=settled(client), headers=CLINICIAN
    )
    assert read.status_code == 200, read.text
    assert read.json()["entries"] == []

    # When an auditor replays that read
    replayed = client.post(
        f"/v1/audit/accesses/{read.headers['X-Access-Id']}/replay", headers=AUDITOR
    )

    # Then the empty page comes back exactly as it was served
    assert replayed.status_code == 200, replayed.text
    body = replayed.json()
    assert body["matches"] is True
    assert body["replayed_sha256"] == hashlib.sha256(read.content).hexdigest()
    assert body["body"] == read.json()
