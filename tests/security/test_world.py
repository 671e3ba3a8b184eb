"""The two-organisation store is what the other tests take it to be: each
organisation's own people can do what the attacks below try to do from outside."""

from fastapi.testclient import TestClient

from tests.security.two_orgs import ORG_MAIN, ORG_OTHER, World, settled


def test_each_organisation_works_its_own_records(world: World) -> None:
    client: TestClient = world.client
    for org in (world.main, world.other):
        seen = settled(client)
        # The clinician reads the timeline: the plain entry, not the mental-health one
        timeline = client.get(
            f"/v1/patients/{org.patient_id}/timeline", params=seen, headers=org.clinician
        )
        assert timeline.status_code == 200, timeline.text
        assert org.displays["plain"] in timeline.text
        assert org.displays["mental"] not in timeline.text
        # The patient reads all of their own record
        own = client.get(
            f"/v1/patients/{org.patient_id}/timeline", params=seen, headers=org.patient
        )
        assert own.status_code == 200, own.text
        assert org.displays["mental"] in own.text
        # The administrator lists the membership and the subscriber
        roster = client.get("/v1/memberships", params=seen, headers=org.admin)
        assert roster.status_code == 200, roster.text
        assert org.membership_id in roster.text
        subscribers = client.get("/v1/subscribers", headers=org.admin)
        assert subscribers.status_code == 200, subscribers.text
        assert org.subscriber_id in subscribers.text
        # The auditor sees the break-glass read in the queue, and the read itself
        queue = client.get("/v1/audit/break-glass", params=seen, headers=org.auditor)
        assert queue.status_code == 200, queue.text
        assert org.glass_access_id in queue.text
        assert org.justification in queue.text
        one = client.get(f"/v1/audit/accesses/{org.read_access_id}", headers=org.auditor)
        assert one.status_code == 200, one.text
        # The subscriber's feed carries the plain entry (and never the labelled one)
        feed = client.get(f"/v1/subscribers/{org.subscriber_id}/feed", headers=org.service)
        assert feed.status_code == 200, feed.text
        assert org.entries["plain"] in feed.text
        assert org.entries["mental"] not in feed.text
    assert world.main.id == ORG_MAIN and world.other.id == ORG_OTHER
