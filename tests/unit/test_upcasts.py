"""Events written before issue 18's shapes still load, by the rules the README states.

Each upcast is the library's (``class_version`` and ``upcast_vN_vM``): stored events
are never rewritten, they are read in the new shape.
"""

import pytest

from domain.consent import Consent
from domain.grantee import Grantee
from domain.patient import Patient


@pytest.mark.parametrize(
    ("granted", "reference"),
    [
        ("org-pharmacy", "org:org-pharmacy"),  # a bare text is an organisation id
        ("dr-grey", "org:dr-grey"),  # ... which no practitioner belongs to
        ("clinician", "org:clinician"),  # never a role
        ("not a grantee!", ""),  # names nobody
    ],
)
def test_a_v1_directive_is_read_as_naming_an_organisation(granted: str, reference: str) -> None:
    state = {"grantee": granted, "purposes": ["TREAT"]}
    Consent.DirectiveGranted.upcast_v1_v2(state)
    assert state == {"grantee": granted, "grantee_ref": reference, "purposes": ["TREAT"]}


def test_a_v1_consent_snapshot_gains_each_directives_reference() -> None:
    state = {"directives": {"d1": {"grantee": "org-main"}, "d2": {"grantee": "x y"}}}
    Consent.upcast_v1_v2(state)
    refs = {key: d["grantee_ref"] for key, d in state["directives"].items()}
    assert refs == {"d1": "org:org-main", "d2": ""}


def test_a_v1_tombstone_names_no_organisation() -> None:
    state = {"legal_basis": "GDPR art. 17"}
    Patient.Erased.upcast_v1_v2(state)
    assert state == {"legal_basis": "GDPR art. 17", "organisation_id": None}


def test_entries_recorded_before_tags_have_none_and_amendments_keep_theirs() -> None:
    recorded: dict[str, object] = {"labels": []}
    Patient.EntryRecorded.upcast_v1_v2(recorded)
    assert recorded == {"labels": [], "tags": []}
    amended: dict[str, object] = {"labels": None}
    Patient.EntryAmended.upcast_v1_v2(amended)
    assert amended == {"labels": None, "tags": None}  # None: the amendment left them


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("org:org-main", "org:org-main"),
        ("  org-main ", "org:org-main"),
        ("practitioner:org-main/dr-grey", "practitioner:org-main/dr-grey"),
        (
            "subscriber:6F9619FF-8B86-D011-B42D-00C04FC964FF",
            "subscriber:6f9619ff-8b86-d011-b42d-00c04fc964ff",
        ),
    ],
)
def test_grantee_texts_have_one_canonical_form(text: str, canonical: str) -> None:
    assert str(Grantee.parse(text)) == canonical


@pytest.mark.parametrize(
    "text", ["practitioner:org-main", "practitioner:/dr", "subscriber:nope", "org:", "a b"]
)
def test_a_grantee_that_names_nothing_is_refused(text: str) -> None:
    assert Grantee.read(text) is None


def test_access_records_written_before_the_console_were_shown_by_the_api() -> None:
    from domain.access_record import AccessRecord

    v1 = {"source": "203.0.113.7"}
    AccessRecord.Recorded.upcast_v1_v2(v1)
    AccessRecord.Recorded.upcast_v2_v3(v1)
    assert v1 == {"source": "203.0.113.7", "care_org": None, "channel": "api"}
