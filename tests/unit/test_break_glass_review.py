"""A break-glass access is reviewed once, by someone other than the one who accessed.

Reviews are events on the access record's stream: a second one is refused, so the
first can never be replaced, and identities are compared with their organisation.
"""

from uuid import uuid4

import pytest

from domain.access_record import AccessRecord
from domain.errors import AlreadyReviewed, InvalidValue, OwnAccessReview
from tests.unit.stories import ORG, at


def glass_access(actor: str = "dr-grey", *, broke_glass: bool = True) -> AccessRecord:
    recorded = AccessRecord.record(
        access_id=uuid4(),
        by=at(0, actor=actor),
        actor_role="clinician",
        actor_org=ORG,
        purpose="ETREAT",
        action="read",
        patient_id=str(uuid4()),
        entry_ids=[],
        decision="permit",
        reason="break-glass",
        basis={"break_glass": "unconscious in ED, history needed"} if broke_glass else {},
        stream_versions={},
        response_sha256="0" * 64,
        request={"view": "timeline"},
        request_id="r-1",
        source="10.0.0.1",
        care_org=ORG,
    )
    record: AccessRecord = recorded.mutate(None)
    return record


def test_a_review_is_final_and_a_second_one_is_refused() -> None:
    record = glass_access()
    record.review_break_glass(
        outcome="justified",
        note="seen on the ED board",
        by=at(1, actor="auditor-1"),
        reviewer_org=ORG,
    )
    with pytest.raises(AlreadyReviewed):
        record.review_break_glass(
            outcome="unjustified",
            note="changed my mind",
            by=at(2, actor="auditor-2"),
            reviewer_org=ORG,
        )
    assert record.review is not None
    assert (record.review["outcome"], record.review["by"]) == ("justified", "auditor-1")
    assert len(record.collect_events()) == 1


def test_nobody_reviews_their_own_access_and_identities_carry_the_organisation() -> None:
    record = glass_access(actor="dr-grey")
    with pytest.raises(OwnAccessReview):
        record.review_break_glass(
            outcome="justified", note="me", by=at(1, actor="dr-grey"), reviewer_org=ORG
        )
    # The same subject in another organisation is another person (the application
    # layer still keeps them out of our records; the rule itself is about identity).
    record.review_break_glass(
        outcome="justified", note="ok", by=at(1, actor="dr-grey"), reviewer_org="org-other"
    )
    assert record.review is not None


def test_only_a_break_glass_access_is_reviewed() -> None:
    with pytest.raises(InvalidValue, match="access_id"):
        glass_access(broke_glass=False).review_break_glass(
            outcome="justified", note="", by=at(1, actor="auditor-1"), reviewer_org=ORG
        )


def test_a_record_written_before_care_org_is_read_with_none() -> None:
    state = {"actor_role": "clinician"}
    AccessRecord.Recorded.upcast_v1_v2(state)
    assert state == {"actor_role": "clinician", "care_org": None}
