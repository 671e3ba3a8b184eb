"""Downstream subscribers receive what the policy and the patient's consent allow, and no more.

Stories over the HTTP feed, on SQLite and PostgreSQL. Each delivery is an access record.
"""

import hashlib
import threading
import time
from typing import Any

import orjson
from fastapi.testclient import TestClient

from tests.api.support import (
    ADMIN,
    AUDITOR,
    CLINICIAN,
    MEDICATION,
    OBSERVATION,
    assert_problem,
    directive,
    entry,
    entry_ids,
    feed,
    patient,
    revoke,
    settled,
    subscribe,
    under_care,
)
from tests.conftest import auth


def test_the_pharmacy_gets_medication_entries_of_patients_under_care_and_nothing_else(
    client: TestClient,
) -> None:
    pharmacy, token = subscribe(client)
    # Given one patient under care and one without a membership
    cared_for, not_enrolled = patient(client, "MRN-A"), patient(client, "MRN-B")
    under_care(client, cared_for)
    wanted = entry(client, cared_for, MEDICATION)
    entry(client, cared_for, OBSERVATION)
    entry(client, not_enrolled, MEDICATION)
    # When the pharmacy reads its feed
    page = feed(client, pharmacy, token, after=0).json()
    # Then it holds the one medication entry, minimised to a summary without free text
    assert [i["payload"]["entry_id"] for i in page["items"]] == [wanted]
    item = page["items"][0]
    assert item["patient_id"] == cared_for and item["type"] == "EntryRecorded"
    assert item["payload"] == {
        "entry_id": wanted,
        "kind": "medication",
        "code": {"system": MEDICATION["code"]["system"], "code": "197361"},
        "effective_at": "2026-11-20T09:30:00.000000Z",
        "status": "active",
    }
    assert page["next_after"] == item["position"]


def test_each_item_is_an_access_record_over_its_exact_bytes_and_the_cursor_is_durable(
    client: TestClient,
) -> None:
    pharmacy, token = subscribe(client)
    patient_id = patient(client, "MRN-C")
    under_care(client, patient_id)
    first, second = entry(client, patient_id, MEDICATION), entry(client, patient_id, MEDICATION)
    response = feed(client, pharmacy, token, after=0, limit=1)
    page = response.json()
    assert entry_ids(response) == [first]
    # The item's bytes in the body are what its access record hashed
    raw = response.content
    start = raw.index(b'{"event_id"')
    item_bytes = raw[start : raw.index(b'],"access_ids"')]
    records = client.get(
        "/v1/audit/accesses", params={"action": "deliver", **settled(client)}, headers=AUDITOR
    ).json()["items"]
    (record,) = [r for r in records if r["access_id"] == page["access_ids"][0]]
    assert record["response_sha256"] == hashlib.sha256(item_bytes).hexdigest()
    assert record["actor"] == {"id": pharmacy, "role": "service", "org": "org-main"}
    assert record["patient_id"] == patient_id and record["entry_ids"] == [first]
    assert "membership_id" in record["basis"]
    # Acknowledging with after= moves the durable cursor: a read without it goes on
    feed(client, pharmacy, token, after=page["next_after"], limit=1)
    assert entry_ids(feed(client, pharmacy, token)) == [second]
    # At least once: an earlier cursor returns the same stable event ids
    again = feed(client, pharmacy, token, after=0, limit=1).json()
    assert again["items"][0]["event_id"] == page["items"][0]["event_id"]


def test_marketing_receives_nothing_until_authorised_and_then_only_later_events(
    client: TestClient,
) -> None:
    agency, token = subscribe(
        client,
        name="Agency",
        recipient_org="org-agency",
        purpose="HMARKT",
        kinds=["medication", "observation"],
        content="id-only",
    )
    patient_id = patient(client, "MRN-D")
    before = entry(client, patient_id, MEDICATION)
    assert entry_ids(feed(client, agency, token, after=0)) == []
    directive(client, patient_id, "org-agency", ["HMARKT"])
    after = entry(client, patient_id, OBSERVATION)
    page = feed(client, agency, token, after=0).json()
    assert [i["payload"] for i in page["items"]] == [{"entry_id": after}]
    assert before not in orjson.dumps(page).decode()


def test_a_revocation_stops_everything_after_it_even_events_recorded_before_it(
    client: TestClient,
) -> None:
    agency, token = subscribe(client, recipient_org="org-agency", purpose="HMARKT")
    patient_id = patient(client, "MRN-E")
    directive_id = directive(client, patient_id, "org-agency", ["HMARKT"])
    delivered = entry(client, patient_id, MEDICATION)
    response = feed(client, agency, token, after=0)
    page = response.json()
    assert entry_ids(response) == [delivered]
    # Two more are recorded but not yet read; then the patient revokes
    entry(client, patient_id, MEDICATION)
    entry(client, patient_id, MEDICATION)
    revoke(client, patient_id, directive_id)
    entry(client, patient_id, MEDICATION)
    assert entry_ids(feed(client, agency, token, after=page["next_after"])) == []
    # Not even a re-read of what was delivered before
    assert entry_ids(feed(client, agency, token, after=0)) == []


def test_a_sensitive_label_reaches_only_a_subscriber_whose_directive_names_it(
    client: TestClient,
) -> None:
    pharmacy, token = subscribe(client, labels=["substance_use"])
    plain, consented = patient(client, "MRN-F"), patient(client, "MRN-G")
    for patient_id in (plain, consented):
        under_care(client, patient_id)
    directive(client, consented, f"subscriber:{pharmacy}", ["TREAT"], ["substance_use"])
    hidden = entry(client, plain, MEDICATION, labels=["substance_use"])
    shown = entry(client, consented, MEDICATION, labels=["substance_use"])
    ids = entry_ids(feed(client, pharmacy, token, after=0))
    assert shown in ids and hidden not in ids
    # A subscriber registered without the label never gets it, whatever the consent
    other, other_token = subscribe(client)
    entry(client, consented, MEDICATION, labels=["substance_use"])
    assert entry_ids(feed(client, other, other_token, after=0)) == []


def test_another_line_of_business_receives_no_phi_at_all(client: TestClient) -> None:
    ads, token = subscribe(
        client,
        name="Retail ads",
        recipient_org="org-retail",
        purpose="HMARKT",
        kinds=["medication", "observation"],
        content="id-only",
    )
    patient_id = patient(client, "MRN-H")
    under_care(client, patient_id)
    entry(client, patient_id, MEDICATION)
    directive(client, patient_id, "org:org-pharmacy", ["TREAT"])  # for a pharmacy, not for ads
    entry(client, patient_id, OBSERVATION)
    response = feed(client, ads, token, after=0)
    assert response.json()["items"] == []
    assert patient_id.encode() not in response.content


def test_nothing_of_an_erased_patient_is_delivered_afterwards(client: TestClient) -> None:
    pharmacy, token = subscribe(client)
    kept, erased = patient(client, "MRN-I"), patient(client, "MRN-J")
    for patient_id in (kept, erased):
        under_care(client, patient_id)
    entry(client, erased, MEDICATION)
    kept_entry = entry(client, kept, MEDICATION)
    response = client.post(
        f"/v1/patients/{erased}/erase", json={"legal_basis": "GDPR art. 17"}, headers=ADMIN
    )
    assert response.status_code == 202, response.text
    page = feed(client, pharmacy, token, after=0)
    assert entry_ids(page) == [kept_entry]
    assert erased.encode() not in page.content


def test_only_the_subscribers_own_token_reads_its_feed_and_only_admins_register(
    client: TestClient,
) -> None:
    pharmacy, token = subscribe(client)
    other, _ = subscribe(client)
    for headers in (CLINICIAN, ADMIN, auth("service", sub=other)):
        response = client.get(f"/v1/subscribers/{pharmacy}/feed", headers=headers)
        assert_problem(response, 403)
    response = client.post(
        "/v1/subscribers",
        json={
            "name": "x",
            "recipient_org": "org-main",
            "purpose": "TREAT",
            "kinds": ["medication"],
            "content": "full",
        },
        headers=CLINICIAN,
    )
    assert_problem(response, 403)
    response = client.post(
        "/v1/subscribers",
        json={
            "name": "x",
            "recipient_org": "org-main",
            "purpose": "ETREAT",
            "kinds": ["medication"],
            "content": "full",
        },
        headers=ADMIN,
    )
    assert_problem(response, 422)
    assert feed(client, pharmacy, token).json() == {"items": [], "access_ids": [], "next_after": 0}


def test_a_delivery_replays_byte_for_byte_after_the_chart_and_consent_change(
    client: TestClient,
) -> None:
    pharmacy, token = subscribe(client, content="full")
    patient_id = patient(client, "MRN-K")
    under_care(client, patient_id)
    entry_id = entry(client, patient_id, MEDICATION)
    response = feed(client, pharmacy, token, after=0)
    access_id = response.json()["access_ids"][0]
    delivered = orjson.loads(response.content)["items"][0]
    # When the entry is amended and a directive is granted after the delivery
    amended = client.post(
        f"/v1/patients/{patient_id}/entries/{entry_id}/amendments",
        json={"reason": "dose changed", "value": {"text": "amlodipine 10 mg"}},
        headers=CLINICIAN,
    )
    assert amended.status_code in (200, 201), amended.text
    directive(client, patient_id, f"subscriber:{pharmacy}", ["TREAT"], ["substance_use"])
    # Then the auditor's replay rebuilds the delivered message exactly
    replay = client.post(f"/v1/audit/accesses/{access_id}/replay", headers=AUDITOR)
    assert replay.status_code == 200, replay.text
    assert replay.json()["matches"] is True
    assert replay.json()["body"] == delivered


def test_an_absent_subscribers_backlog_shows_in_metrics_and_holds_back_no_one(
    client: TestClient,
) -> None:
    absent, _ = subscribe(client, name="Never reads")
    present, token = subscribe(client, name="Reads")
    patient_id = patient(client, "MRN-L")
    under_care(client, patient_id)
    written = [entry(client, patient_id, MEDICATION) for _ in range(3)]
    # The present subscriber reads all of it and acknowledges it
    page = feed(client, present, token, after=0).json()
    assert [i["payload"]["entry_id"] for i in page["items"]] == written
    feed(client, present, token, after=page["next_after"])
    # The absent one's backlog is what it has not received; the present one's is none
    metrics = client.get("/metrics").text
    assert f'careledger_subscriber_backlog_items{{channel="feed",subscriber="{absent}"}} 3.0' in (
        metrics
    )
    assert f'careledger_subscriber_backlog_items{{channel="feed",subscriber="{present}"}} 0.0' in (
        metrics
    )


def test_deliveries_for_public_health_are_in_the_patients_accounting_and_treatment_is_not(
    client: TestClient,
) -> None:
    registry, registry_token = subscribe(client, name="State registry", purpose="PUBHLTH")
    pharmacy, pharmacy_token = subscribe(client)
    patient_id = patient(client, "MRN-M")
    under_care(client, patient_id)
    entry(client, patient_id, MEDICATION)
    reported = feed(client, registry, registry_token, after=0).json()["access_ids"]
    treated = feed(client, pharmacy, pharmacy_token, after=0).json()["access_ids"]
    assert len(reported) == len(treated) == 1
    accounting = client.get(
        f"/v1/patients/{patient_id}/disclosures", params=settled(client), headers=AUDITOR
    ).json()["items"]
    # Public-health reporting is accounted for to the patient (164.528); treatment is not
    assert [d["access_id"] for d in accounting] == reported
    assert accounting[0]["recipient_actor"] == registry


def test_a_long_poll_wakes_on_a_new_delivery_and_long_polls_never_take_every_thread(
    client: TestClient,
) -> None:
    pharmacy, token = subscribe(client)
    patient_id = patient(client, "MRN-N")
    under_care(client, patient_id)
    subscriptions = client.app.state.container.subscriptions  # type: ignore[attr-defined]
    subscriptions._waiting = threading.BoundedSemaphore(1)  # one long-poll at a time
    answered: dict[str, Any] = {}

    def poll() -> None:
        answered["page"] = feed(client, pharmacy, token, after=0, wait=20).json()
        answered["at"] = time.monotonic()

    waiting = threading.Thread(target=poll)
    waiting.start()
    time.sleep(0.5)
    # A second long-poll finds no room to wait: it answers at once, empty
    began = time.monotonic()
    assert feed(client, pharmacy, token, after=0, wait=20).json()["items"] == []
    assert time.monotonic() - began < 5
    # The first wakes when an entry arrives, long before its 20 s
    written = entry(client, patient_id, MEDICATION)
    written_at = time.monotonic()
    waiting.join(20)
    assert [i["payload"]["entry_id"] for i in answered["page"]["items"]] == [written]
    assert answered["at"] - written_at < 5


def test_a_full_feed_carries_a_measured_value_and_replays_it_byte_for_byte(
    client: TestClient,
) -> None:
    # A quantity once stopped the delivery projection: it could not encrypt a Decimal
    monitor, token = subscribe(client, kinds=["observation"], content="full")
    patient_id = patient(client, "MRN-O")
    under_care(client, patient_id)
    measured = entry(client, patient_id, OBSERVATION)
    response = feed(client, monitor, token, after=0)
    (item,) = response.json()["items"]
    assert item["payload"]["entry_id"] == measured
    assert item["payload"]["value"] == {"quantity": 72.0, "unit": "/min"}
    replay = client.post(
        f"/v1/audit/accesses/{response.json()['access_ids'][0]}/replay", headers=AUDITOR
    )
    assert replay.status_code == 200, replay.text
    assert replay.json()["matches"] is True
