"""The six consequences of the delivery rule, on real processes, over both channels.

A real ``careledger serve`` on PostgreSQL, a real ``careledger relay`` publishing to
the real NATS JetStream server, and a real nats-py consumer reading the stream. Each
story also reads the HTTP feed over real HTTP. Where a story must show that nothing
arrives, a control message published after it proves the relay got that far.
"""

import hashlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api import support
from tests.api.support import (
    ADMIN,
    AUDITOR,
    MEDICATION,
    OBSERVATION,
    directive,
    entry,
    feed,
    patient,
    revoke,
    under_care,
)
from tests.conftest import auth
from tests.e2e.nats_consumer import Received, collect, purge
from tests.e2e.relay_stack import Stack, relay_stack

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.nats]


def subscribe(client: httpx.Client, **spec: Any) -> tuple[str, dict[str, str]]:
    """org-main's admin registers a subscriber; its feed token is of org-main, the
    registering organisation, whatever the recipient organisation."""
    subscriber_id, _ = support.subscribe(client, **spec)
    return subscriber_id, auth("service", sub=subscriber_id, org="org-main")


@pytest.fixture(scope="module")
def stack(
    postgres_server: str, nats_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with relay_stack(postgres_server, nats_server, tmp_path_factory.mktemp("relay")) as built:
        yield built


@pytest.fixture
def subjects(stack: Stack) -> Iterator[list[str]]:
    """Subjects a story published to; purged from the shared stream afterwards."""
    used: list[str] = []
    yield used
    for subject in used:
        purge(stack.nats_url, subject)


def received(stack: Stack, subjects: list[str], subscriber_id: str, expect: int) -> list[Received]:
    subject = f"careledger.{subscriber_id}"
    if subject not in subjects:
        subjects.append(subject)
    return collect(stack.nats_url, subject, expect)


def delivered_entries(messages: list[Received]) -> list[str]:
    return [m.body["payload"]["entry_id"] for m in messages]


def fed_entries(stack: Stack, subscriber_id: str, token: dict[str, str]) -> list[str]:
    page = feed(stack.client, subscriber_id, token, after=0).json()
    return [item["payload"]["entry_id"] for item in page["items"]]


def test_pharmacy_gets_medication_of_patients_under_care_only(
    stack: Stack, subjects: list[str]
) -> None:
    client = stack.client
    pharmacy, token = subscribe(client)
    cared_for, not_enrolled = patient(client, "E2E-A"), patient(client, "E2E-B")
    under_care(client, cared_for)
    first = entry(client, cared_for, MEDICATION)
    entry(client, cared_for, OBSERVATION)
    entry(client, not_enrolled, MEDICATION)
    second = entry(client, cared_for, MEDICATION)

    messages = received(stack, subjects, pharmacy, expect=2)
    assert delivered_entries(messages) == [first, second]
    # Each message names its stable event id and its access record, which hashed its bytes
    for message in messages:
        assert message.msg_id == message.body["event_id"]
        record = client.get(f"/v1/audit/accesses/{message.access_id}", headers=AUDITOR).json()
        assert record["action"] == "deliver" and record["source"] == "nats"
        assert record["response_sha256"] == hashlib.sha256(message.raw).hexdigest()
    # The HTTP feed delivers the same events, with the same ids
    page = feed(client, pharmacy, token, after=0).json()
    assert [i["event_id"] for i in page["items"]] == [m.msg_id for m in messages]


def test_marketing_gets_nothing_until_authorised_then_only_later_events(
    stack: Stack, subjects: list[str]
) -> None:
    client = stack.client
    agency, token = subscribe(
        client,
        name="Agency",
        recipient_org="org-agency",
        purpose="HMARKT",
        kinds=["medication", "observation"],
        content="id-only",
    )
    patient_id = patient(client, "E2E-C")
    before = entry(client, patient_id, MEDICATION)
    directive(client, patient_id, "org-agency", ["HMARKT"])
    after = entry(client, patient_id, OBSERVATION)

    messages = received(stack, subjects, agency, expect=1)
    assert delivered_entries(messages) == [after]  # in log order: `before` would come first
    assert messages[0].body["payload"] == {"entry_id": after}
    assert fed_entries(stack, agency, token) == [after]
    assert before not in str([m.body for m in messages])


def test_revocation_stops_even_events_recorded_before_it_but_not_yet_delivered(
    stack: Stack, subjects: list[str]
) -> None:
    client = stack.client
    agency, token = subscribe(client, recipient_org="org-agency", purpose="HMARKT")
    control, _ = subscribe(client, name="Control pharmacy")
    patient_id, cared_for = patient(client, "E2E-D"), patient(client, "E2E-E")
    under_care(client, cared_for)
    directive_id = directive(client, patient_id, "org-agency", ["HMARKT"])
    delivered = entry(client, patient_id, MEDICATION)
    assert delivered_entries(received(stack, subjects, agency, expect=1)) == [delivered]

    # With the relay down, two more are recorded, then the patient revokes
    stack.relay.stop()
    entry(client, patient_id, MEDICATION)
    entry(client, patient_id, MEDICATION)
    revoke(client, patient_id, directive_id)
    entry(client, patient_id, MEDICATION)
    signal_entry = entry(client, cared_for, MEDICATION)
    stack.relay.start()

    assert delivered_entries(received(stack, subjects, control, expect=1)) == [signal_entry]
    assert delivered_entries(received(stack, subjects, agency, expect=2)) == [delivered]
    assert fed_entries(stack, agency, token) == []


def test_a_label_reaches_only_a_subscriber_whose_directive_names_it(
    stack: Stack, subjects: list[str]
) -> None:
    client = stack.client
    pharmacy, token = subscribe(client, labels=["substance_use"])
    plain, consented = patient(client, "E2E-F"), patient(client, "E2E-G")
    for patient_id in (plain, consented):
        under_care(client, patient_id)
    directive(client, consented, f"subscriber:{pharmacy}", ["TREAT"], ["substance_use"])
    hidden = entry(client, plain, MEDICATION, labels=["substance_use"])
    shown = entry(client, consented, MEDICATION, labels=["substance_use"])
    unlabelled = entry(client, plain, MEDICATION)

    messages = received(stack, subjects, pharmacy, expect=2)
    assert delivered_entries(messages) == [shown, unlabelled]
    assert hidden not in fed_entries(stack, pharmacy, token)


def test_another_line_of_business_receives_no_phi_at_all(stack: Stack, subjects: list[str]) -> None:
    client = stack.client
    ads, token = subscribe(
        client,
        name="Retail ads",
        recipient_org="org-retail",
        purpose="HMARKT",
        kinds=["medication", "observation"],
        content="id-only",
    )
    control, _ = subscribe(client, name="Control pharmacy")
    patient_id = patient(client, "E2E-H")
    under_care(client, patient_id)
    entry(client, patient_id, OBSERVATION)
    directive(client, patient_id, "org:org-pharmacy", ["TREAT"])  # for a pharmacy, not for ads
    last = entry(client, patient_id, MEDICATION)

    assert delivered_entries(received(stack, subjects, control, expect=1)) == [last]
    assert received(stack, subjects, ads, expect=0) == []
    response = feed(client, ads, token, after=0)
    assert response.json()["items"] == [] and patient_id.encode() not in response.content


def test_nothing_of_an_erased_patient_is_delivered_afterwards(
    stack: Stack, subjects: list[str]
) -> None:
    client = stack.client
    pharmacy, token = subscribe(client)
    kept, erased = patient(client, "E2E-I"), patient(client, "E2E-J")
    for patient_id in (kept, erased):
        under_care(client, patient_id)
    stack.relay.stop()
    entry(client, erased, MEDICATION)
    kept_entry = entry(client, kept, MEDICATION)
    response = client.post(
        f"/v1/patients/{erased}/erase", json={"legal_basis": "GDPR art. 17"}, headers=ADMIN
    )
    assert response.status_code == 202, response.text
    stack.relay.start()

    messages = received(stack, subjects, pharmacy, expect=1)
    assert delivered_entries(messages) == [kept_entry]
    assert all(m.body["patient_id"] != erased for m in messages)
    assert fed_entries(stack, pharmacy, token) == [kept_entry]
