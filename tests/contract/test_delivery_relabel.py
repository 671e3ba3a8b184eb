"""A delivery decides on the entry as it stands at delivery, not as its event recorded it.

An entry is recorded, projected into a subscriber's outbox, and changed before the
subscriber reads it: relabelled sensitive, or marked entered in error. Stories over the
HTTP feed, on SQLite and PostgreSQL (issue 18, defect 8).
"""

from typing import Any

import orjson
from fastapi.testclient import TestClient

from tests.api.support import (
    ADMIN,
    CLINICIAN,
    MEDICATION,
    directive,
    entry,
    patient,
    settled,
    under_care,
)
from tests.conftest import auth

TEXT = MEDICATION["value"]["text"].encode()  # type: ignore[index]


def pharmacy(client: TestClient, labels: list[str]) -> tuple[str, dict[str, str]]:
    """org-main's pharmacy, receiving medication and observations in full."""
    body = {
        "name": "Main St pharmacy",
        "recipient_org": "org-main",
        "purpose": "TREAT",
        "kinds": ["medication", "observation"],
        "labels": labels,
        "content": "full",
    }
    response = client.post("/v1/subscribers", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    subscriber_id = response.json()["id"]
    return subscriber_id, auth("service", sub=subscriber_id, org="org-main")


def read(client: TestClient, subscriber_id: str, token: dict[str, str]) -> Any:
    response = client.get(
        f"/v1/subscribers/{subscriber_id}/feed", params={"after": 0}, headers=token
    )
    assert response.status_code == 200, response.text
    return response


def items(response: Any) -> list[tuple[str, str]]:
    return [(i["payload"]["entry_id"], i["type"]) for i in orjson.loads(response.content)["items"]]


def amend(client: TestClient, patient_id: str, entry_id: str, **fields: Any) -> None:
    response = client.post(
        f"/v1/patients/{patient_id}/entries/{entry_id}/amendments",
        json={"reason": "reclassified after review", **fields},
        headers=CLINICIAN,
    )
    assert response.status_code == 201, response.text


def timeline(client: TestClient, patient_id: str) -> list[str]:
    response = client.get(
        f"/v1/patients/{patient_id}/timeline", params=settled(client), headers=CLINICIAN
    )
    assert response.status_code == 200, response.text
    return [e["entry_id"] for e in response.json()["entries"]]


def test_an_entry_relabelled_mental_health_before_delivery_never_reaches_a_feed_without_it(
    client: TestClient,
) -> None:
    subscriber, token = pharmacy(client, labels=[])
    patient_id = patient(client, "REL-A")
    under_care(client, patient_id)
    # Given a medication recorded, and so waiting in the pharmacy's outbox
    relabelled = entry(client, patient_id, MEDICATION)
    # When, before the pharmacy reads, it is amended to add mental_health
    amend(client, patient_id, relabelled, labels=["mental_health"])
    control = entry(client, patient_id, MEDICATION, value={"text": "a later, plain entry"})
    # Then it has left the clinician's timeline, and it does not reach the pharmacy either
    assert relabelled not in timeline(client, patient_id)
    response = read(client, subscriber, token)
    assert items(response) == [(control, "EntryRecorded")]
    assert relabelled.encode() not in response.content and TEXT not in response.content


def test_a_feed_registered_for_the_label_and_allowed_by_consent_still_receives_it(
    client: TestClient,
) -> None:
    subscriber, token = pharmacy(client, labels=["mental_health"])
    without, without_token = pharmacy(client, labels=[])
    patient_id = patient(client, "REL-B")
    under_care(client, patient_id)
    directive(client, patient_id, f"subscriber:{subscriber}", ["TREAT"], ["mental_health"])
    relabelled = entry(client, patient_id, MEDICATION)
    amend(client, patient_id, relabelled, labels=["mental_health"])
    # The feed allowed the label receives the entry as recorded and as amended
    response = read(client, subscriber, token)
    assert items(response) == [(relabelled, "EntryRecorded"), (relabelled, "EntryAmended")]
    assert orjson.loads(response.content)["items"][1]["payload"]["labels"] == ["mental_health"]
    # And the feed registered without it, none of it
    assert items(read(client, without, without_token)) == []


def test_an_entry_entered_in_error_before_delivery_is_delivered_only_as_its_correction(
    client: TestClient,
) -> None:
    subscriber, token = pharmacy(client, labels=[])
    patient_id = patient(client, "REL-C")
    under_care(client, patient_id)
    mistaken = entry(client, patient_id, MEDICATION)
    response = client.post(
        f"/v1/patients/{patient_id}/entries/{mistaken}/entered-in-error",
        json={"reason": "recorded on the wrong chart"},
        headers=CLINICIAN,
    )
    assert response.status_code == 201, response.text
    # The pharmacy learns the entry is void, and never receives what it said
    response = read(client, subscriber, token)
    assert items(response) == [(mistaken, "EntryEnteredInError")]
    assert orjson.loads(response.content)["items"][0]["payload"]["status"] == "entered_in_error"
    assert TEXT not in response.content
