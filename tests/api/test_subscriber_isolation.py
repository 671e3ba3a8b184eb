"""A subscriber discloses only the patients of the organisation that registered it.

Two organisations share one store: org-main and org-other, each with its own admin and
clinicians. Stories over the HTTP feed, on SQLite and PostgreSQL (issue 18, defect 2).
"""

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import Mapper
from fastapi.testclient import TestClient

from api.container import Container
from application.subscriptions.delivery_rule import Subject, SubscriberSpec, delivery_decision
from domain.subscriber import ContentLevel, Subscriber
from domain.values import Provenance
from domain.vocabulary import EntryKind, Purpose
from tests.api.support import (
    ADMIN,
    MEDICATION,
    OUTSIDER,
    assert_problem,
    entry_ids,
    feed,
    patient,
    record_entry,
    under_care,
)
from tests.conftest import REGISTER_BODY, auth

OTHER_ADMIN = auth("admin", sub="admin-other", org="org-other")


def register_subscriber(
    client: TestClient, admin: Any, org: str, **spec: Any
) -> tuple[str, dict[str, str]]:
    """``admin`` (of ``org``) registers a subscriber; its id and its service token,
    which is of the registering organisation."""
    body = {
        "name": "Feed",
        "recipient_org": org,
        "purpose": "TREAT",
        "kinds": ["medication"],
        "labels": [],
        "content": "full",
        **spec,
    }
    response = client.post("/v1/subscribers", json=body, headers=admin)
    assert response.status_code == 201, response.text
    subscriber_id = response.json()["id"]
    return subscriber_id, auth("service", sub=subscriber_id, org=org)


def other_orgs_patient(client: TestClient, mrn: str) -> str:
    """A patient of org-other, registered by its clinician and under its care."""
    response = client.post("/v1/patients", json={**REGISTER_BODY, "mrn": mrn}, headers=OUTSIDER)
    assert response.status_code == 201, response.text
    patient_id = str(response.json()["id"])
    today = datetime.now(UTC).date()
    enrolled = client.post(
        "/v1/memberships",
        headers=OTHER_ADMIN,
        json={
            "patient_id": patient_id,
            "plan": "individual",
            "annual_fee_cents": 0,
            "starts_on": (today - timedelta(days=1)).isoformat(),
            "ends_on": (today + timedelta(days=365)).isoformat(),
        },
    )
    assert enrolled.status_code == 201, enrolled.text
    return patient_id


def other_orgs_entry(client: TestClient, patient_id: str) -> str:
    response = client.post(f"/v1/patients/{patient_id}/entries", json=MEDICATION, headers=OUTSIDER)
    assert response.status_code == 201, response.text
    return str(response.json()["entry_id"])


def test_a_foreign_admins_subscriber_naming_org_main_receives_none_of_its_patients(
    client: TestClient,
) -> None:
    # Given an admin of org-other registers a feed whose recipient is org-main
    foreign, foreign_token = register_subscriber(
        client, OTHER_ADMIN, "org-other", recipient_org="org-main"
    )
    # And org-main's own pharmacy, as a control
    own, own_token = register_subscriber(client, ADMIN, "org-main")
    # When org-main records a medication for a patient under its care
    patient_id = patient(client, "ISO-A")
    under_care(client, patient_id)
    written = record_entry(client, patient_id, MEDICATION)
    # Then org-main's pharmacy receives it, and the foreign feed receives nothing of it
    assert entry_ids(feed(client, own, own_token, after=0)) == [written]
    response = feed(client, foreign, foreign_token, after=0)
    assert response.json()["items"] == []
    assert patient_id.encode() not in response.content
    assert written.encode() not in response.content


def test_a_foreign_public_health_feed_receives_only_its_own_organisations_patients(
    client: TestClient,
) -> None:
    # Given org-other subscribes a registry for public-health reporting
    registry, token = register_subscriber(
        client, OTHER_ADMIN, "org-other", recipient_org="org-registry", purpose="PUBHLTH"
    )
    # When each organisation records a medication for one of its patients
    mains = patient(client, "ISO-B")
    under_care(client, mains)
    record_entry(client, mains, MEDICATION)
    others = other_orgs_patient(client, "ISO-C")
    reported = other_orgs_entry(client, others)
    # Then the registry receives org-other's patient only
    response = feed(client, registry, token, after=0)
    assert entry_ids(response) == [reported]
    assert [item["patient_id"] for item in response.json()["items"]] == [others]
    assert mains.encode() not in response.content


def test_an_admin_lists_only_their_own_organisations_subscribers(client: TestClient) -> None:
    own, _ = register_subscriber(client, ADMIN, "org-main", name="Main St pharmacy")
    foreign, _ = register_subscriber(
        client, OTHER_ADMIN, "org-other", name="Other pharmacy", recipient_org="org-main"
    )
    # Each admin sees their own organisation's subscriber, and not the other's
    listed = client.get("/v1/subscribers", headers=ADMIN)
    assert listed.status_code == 200, listed.text
    assert [s["id"] for s in listed.json()["items"]] == [own]
    assert foreign not in listed.text
    listed = client.get("/v1/subscribers", headers=OTHER_ADMIN)
    assert [s["id"] for s in listed.json()["items"]] == [foreign]
    # And the listing names who registered it (whatever the recipient)
    assert listed.json()["items"][0]["registering_org"] == "org-other"


def test_a_token_with_the_subscribers_id_in_another_organisation_is_another_actor(
    client: TestClient,
) -> None:
    pharmacy, token = register_subscriber(client, ADMIN, "org-main")
    patient_id = patient(client, "ISO-D")
    under_care(client, patient_id)
    written = record_entry(client, patient_id, MEDICATION)
    # A service token of org-other whose subject is the subscriber's id: not found
    impostor = auth("service", sub=pharmacy, org="org-other")
    response = client.get(f"/v1/subscribers/{pharmacy}/feed", params={"after": 0}, headers=impostor)
    assert_problem(response, 404)
    assert written.encode() not in response.content
    # As for an id that does not exist at all
    unknown = "00000000-0000-4000-8000-00000000abcd"
    response = client.get(
        f"/v1/subscribers/{unknown}/feed", headers=auth("service", sub=unknown, org="org-other")
    )
    assert_problem(response, 404)
    # And its refusal moved nothing: the registering organisation's token still reads it
    assert entry_ids(feed(client, pharmacy, token)) == [written]


def test_a_registration_stored_before_it_named_its_organisation_discloses_nothing(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a registration as version 1 stored it: no registering organisation
    subscriber = Subscriber.register(
        subscriber_id=uuid4(),
        name="Old pharmacy",
        registering_org="org-main",
        recipient_org="org-main",
        purpose=Purpose.TREAT,
        kinds=[EntryKind.MEDICATION],
        labels=[],
        content=ContentLevel.FULL,
        by=Provenance("admin-main", datetime.now(UTC)),
    )
    (event,) = subscriber.collect_events()
    del event.__dict__["registering_org"]
    mapper: Mapper[UUID] = Mapper(transcoder=container.ledger.mapper.transcoder)
    with monkeypatch.context() as patched:
        patched.setattr(Subscriber.Registered, "class_version", 1)
        stored = mapper.to_stored_event(event)
    # When it is read back now, it is upcast: its organisation is unknown, ""
    upcast = mapper.to_domain_event(stored)
    assert isinstance(upcast, Subscriber.Registered) and upcast.registering_org == ""
    spec = SubscriberSpec.of(subscriber.id, upcast)
    assert spec.registering_org == "" and spec.as_json()["registering_org"] == ""
    # Then it discloses no organisation's patients, not even its recipient's
    subject = Subject(care_organisation="org-main")
    decision = delivery_decision(
        spec, subject, uuid4(), "medication", frozenset(), datetime.now(UTC).date()
    )
    assert decision is None
    # And a view row projected before the field existed reads the same way
    row = {k: v for k, v in spec.as_json().items() if k != "registering_org"}
    assert SubscriberSpec.from_json(row) == spec
