"""A store written before application/ was grouped into packages (issue 19) still
opens, verifies, loads and replays: stored topics name domain classes only, and
grouping the application moved none of them.

``tests/fixtures/store_before_regroup.db`` was written by
``tests/fixtures/write_store_before_regroup.py`` at commit e33f8bc, with the tests'
development master key.
"""

import shutil
from pathlib import Path
from uuid import UUID

import pytest
from eventsourcing.utils import resolve_topic

from api.bootstrap import build
from application.context import Actor, RequestContext, Role
from application.errors import DataKeyDestroyed
from domain.access_record import AccessRecord
from domain.vocabulary import Purpose
from tests.conftest import ORG, make_settings

FIXTURE = Path(__file__).parent.parent / "fixtures" / "store_before_regroup.db"
AUDITOR = RequestContext(Actor("auditor-1", Role.AUDITOR, ORG), Purpose.HOPERAT, "r-old")
RECORDED = "domain.access_record:AccessRecord.Recorded"


@pytest.fixture
def old_store(tmp_path: Path):  # type: ignore[no-untyped-def]
    copy = tmp_path / "old.db"
    shutil.copyfile(FIXTURE, copy)
    container = build(make_settings(f"sqlite:///{copy}", tmp_path / "var"))
    try:
        yield container
    finally:
        container.close()


def test_every_stored_topic_names_a_domain_class(old_store) -> None:  # type: ignore[no-untyped-def]
    notifications = old_store.ledger.recorder.select_notifications(start=1, limit=100_000)
    topics = {n.topic for n in notifications}
    assert len(topics) >= 9  # every kind of stream the fixture wrote
    for topic in topics:
        assert topic.startswith("domain."), topic
        resolve_topic(topic)


def test_the_chain_verifies_and_every_event_loads(old_store) -> None:  # type: ignore[no-untyped-def]
    assert old_store.integrity.verify(AUDITOR)["ok"] is True
    mapper = old_store.ledger.mapper
    shredded = loaded = 0
    for notification in old_store.ledger.recorder.select_notifications(start=1, limit=100_000):
        try:
            mapper.to_domain_event(notification)
            loaded += 1
        except DataKeyDestroyed:
            shredded += 1  # the erased patient's, as after any erasure
    assert loaded >= 19 and shredded > 0


def test_every_disclosure_it_recorded_replays_byte_for_byte(old_store) -> None:  # type: ignore[no-untyped-def]
    notifications = old_store.ledger.recorder.select_notifications(start=1, limit=100_000)
    kinds: set[str] = set()
    for notification in notifications:
        if notification.topic != RECORDED:
            continue
        record = old_store.ledger.load(AccessRecord, notification.originator_id, "access")
        if record.decision != "permit" or record.request.get("view") in (None, "write"):
            continue  # a refusal, or a write's answer: nothing replayable was disclosed
        result = old_store.replays.replay(AUDITOR, UUID(str(record.id))).json()
        assert result["matches"] is True, record.request
        kinds.add(record.request["view"])
    assert kinds == {"demographics", "timeline", "consents", "directory", "delivery"}
