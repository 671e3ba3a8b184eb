"""The chart's use cases, told as stories, on SQLite and on PostgreSQL."""

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import get_topic

from api.bootstrap import build
from api.container import Container
from application.context import Role
from application.errors import Gone, NotFound, PreconditionFailed
from domain.errors import EntryEnteredInError, EntryNotFound, PatientDeceased
from domain.patient import Patient
from domain.values import Coding, HumanName, Provenance, TextValue
from domain.vocabulary import AdministrativeSex, EntryKind
from tests.conftest import make_settings
from tests.contract.stories import CLINICIAN, ctx, record_heart_rate, register


def topics_in_log(services: Container) -> list[str]:
    notifications = services.ledger.recorder.select_notifications(start=1, limit=100_000)
    return [n.topic.rsplit(".", 1)[-1] for n in notifications]


def test_registration_opens_a_chart_and_a_consent_record(container: Container) -> None:
    patient_id = register(container)
    written = topics_in_log(container)

    demographics = container.patients.demographics(CLINICIAN, patient_id).json()
    consents = container.consents.current(CLINICIAN, patient_id).json()

    assert demographics["mrn"] == "MRN-1"
    assert demographics["name"] == {"given": "Ada", "family": "Example"}
    assert consents["consent_version"] == 1 and consents["directives"] == []
    # The registration's answer is a disclosure too: its access record was written in
    # the registration's own transaction, right after its events (the chart, its consent
    # record and the claim of its MRN)
    assert written == ["Registered", "Opened", "Claimed", "Recorded"]
    # And each read left an access record in the log
    assert topics_in_log(container) == [*written, "Recorded", "Recorded"]


def test_an_amended_entry_stays_in_the_log_and_cannot_be_amended_after_error(
    container: Container,
) -> None:
    patient_id = register(container)
    entry_id = record_heart_rate(container, patient_id)

    container.patients.amend_entry(
        CLINICIAN,
        patient_id,
        entry_id,
        reason="wrong patient position",
        code=None,
        value=TextValue("irregular"),
        effective_at=None,
        modality=None,
        labels=None,
    )
    container.patients.mark_entered_in_error(CLINICIAN, patient_id, entry_id, reason="duplicate")

    with pytest.raises(EntryEnteredInError):
        container.patients.amend_entry(
            CLINICIAN,
            patient_id,
            entry_id,
            reason="again",
            code=None,
            value=None,
            effective_at=None,
            modality=None,
            labels=None,
        )
    with pytest.raises(EntryNotFound):
        container.patients.mark_entered_in_error(
            CLINICIAN, patient_id, container.patients.new_id(), reason="unknown"
        )
    chart_topics = [topic for topic in topics_in_log(container) if topic != "Recorded"]
    assert chart_topics[-3:] == ["EntryRecorded", "EntryAmended", "EntryEnteredInError"]


def test_a_deceased_patients_chart_is_closed(container: Container) -> None:
    patient_id = register(container)
    container.patients.record_death(
        CLINICIAN, patient_id, deceased_at=datetime(2026, 11, 1, tzinfo=UTC)
    )

    with pytest.raises(PatientDeceased):
        record_heart_rate(container, patient_id)


def test_if_match_pins_the_version(container: Container) -> None:
    patient_id = register(container)
    record_heart_rate(container, patient_id)

    with pytest.raises(PreconditionFailed) as failure:
        container.patients.mark_entered_in_error(
            CLINICIAN, patient_id, container.patients.new_id(), reason="x", expected_version=1
        )
    assert failure.value.actual == 2


def test_other_organisations_and_other_patients_cannot_see_the_chart(
    container: Container,
) -> None:
    patient_id = register(container)
    outsider = ctx(Role.CLINICIAN, "dr-elsewhere", org="org-other")
    other_patient = ctx(Role.PATIENT, "p-2", patient=container.patients.new_id())

    for who in (outsider, other_patient):
        with pytest.raises(NotFound):
            container.patients.demographics(who, patient_id)
    own = ctx(Role.PATIENT, "p-1", patient=patient_id)
    assert container.patients.demographics(own, patient_id).json()["id"] == str(patient_id)


def test_an_erased_patient_is_gone(container: Container) -> None:
    patient_id = register(container)
    patient = container.ledger.load(Patient, patient_id, "patient")
    patient.erase(legal_basis="GDPR Art. 17", by=CLINICIAN_PROVENANCE)
    container.ledger.save(patient)

    with pytest.raises(Gone):
        container.patients.demographics(CLINICIAN, patient_id)
    state = container.ledger.load(Patient, patient_id, "patient")
    assert state.mrn is None and state.name is None


def test_idempotent_retry_writes_nothing_twice(container: Container) -> None:
    keyed = ctx(Role.CLINICIAN, "dr-who", key="retry-1", fingerprint="f1")
    first = container.patients.register(
        keyed, mrn="M", name=_name(), birth_date=_birth(), sex=_sex(), contact=None
    )
    position = container.ledger.recorder.max_notification_id()

    second = container.patients.register(
        keyed, mrn="M", name=_name(), birth_date=_birth(), sex=_sex(), contact=None
    )

    assert second.replayed and second.body() == first.body()
    assert container.ledger.recorder.max_notification_id() == position


def test_a_ten_thousand_entry_chart_loads_from_a_snapshot(container: Container) -> None:
    patient_id = register(container)
    for _ in range(20):
        patient = container.ledger.load(Patient, patient_id, "patient")
        _record_entries(container, patient, 500)
        container.ledger.save(patient)

    snapshot = next(container.ledger.snapshots.get(patient_id, desc=True, limit=1))
    tail = list(container.ledger.events.get(patient_id, gt=snapshot.originator_version))
    loaded = container.ledger.repository.get(patient_id)

    assert loaded.entry_count == 10_000
    assert len(tail) < 100, "loading replays only the events after the last snapshot"
    assert topics_in_log(container).count("EntryRecorded") == 10_000
    assert get_topic(Patient.Registered)


def test_a_save_whose_snapshot_cannot_be_written_commits_nothing(container: Container) -> None:
    # Given a chart whose next save crosses its snapshot interval (version 100)
    patient_id = register(container)
    patient = container.ledger.load(Patient, patient_id, "patient")
    before = container.ledger.recorder.max_notification_id()
    _record_entries(container, patient, 100 - patient.version)
    # and a snapshot already standing at that version, so that its insert must fail
    snapshot_class = getattr(Patient, "Snapshot", type(container.ledger).snapshot_class)
    container.ledger.snapshots.put([snapshot_class.take(patient)])

    # When the chart is saved, then the save fails whole: the snapshot is written in the
    # events' own transaction, so no event was committed before it failed
    with pytest.raises(IntegrityError):
        container.ledger.save(patient)
    assert container.ledger.recorder.max_notification_id() == before
    assert [e.originator_version for e in container.ledger.events.get(patient_id)] == [1]


# Small value builders -------------------------------------------------------------


def _record_entries(container: Container, patient: Patient, n: int) -> None:
    """``n`` plain entries on the chart in memory, not saved."""
    by = CLINICIAN_PROVENANCE
    for _ in range(n):
        patient.record_entry(
            entry_id=container.patients.new_id(),
            kind=_kind(),
            code=_code(),
            value=None,
            effective_at=by.occurred_at,
            modality=None,
            labels=frozenset(),
            by=by,
        )


CLINICIAN_PROVENANCE = Provenance("dr-who", datetime(2026, 11, 20, tzinfo=UTC))


def _name() -> HumanName:
    return HumanName("Ada", "Example")


def _birth() -> date:
    return date(1990, 1, 1)


def _sex() -> AdministrativeSex:
    return AdministrativeSex.FEMALE


def _kind() -> EntryKind:
    return EntryKind.NOTE


def _code() -> Coding:
    return Coding("http://loinc.org", "11506-3", "Progress note")


def test_the_chart_knows_where_each_entry_is_in_its_log(container: Container) -> None:
    # Given a chart whose first entry was recorded, then moved in time, then put in error
    patient_id = register(container)
    first = record_heart_rate(container, patient_id, bpm=60)
    second = record_heart_rate(container, patient_id, bpm=61)
    moved_to = datetime(2026, 11, 1, 7, 0, tzinfo=UTC)
    container.patients.amend_entry(
        CLINICIAN,
        patient_id,
        first,
        reason="wrong day",
        code=None,
        value=None,
        effective_at=moved_to,
        modality=None,
        labels=None,
    )
    container.patients.mark_entered_in_error(CLINICIAN, patient_id, first, reason="duplicate")

    # Then the chart keeps each entry's time and the versions that wrote it
    chart = container.ledger.repository.get(patient_id)
    assert chart.entries[first.hex]["effective_at"] == moved_to
    assert chart.entries[first.hex]["versions"] == [2, 4, 5]
    assert chart.entries[second.hex]["versions"] == [3]
    # And exactly those events come back from the log, in order, however far apart
    events = container.ledger.events_at(patient_id, [5, 2, 4, 99])
    assert [(type(e).__name__, e.originator_version) for e in events] == [
        ("EntryRecorded", 2),
        ("EntryAmended", 4),
        ("EntryEnteredInError", 5),
    ]
    assert container.ledger.events_at(patient_id, []) == []


def test_two_processes_writing_to_one_chart_lose_nothing(
    container: Container, database_url: str, tmp_path: Path
) -> None:
    # Given a second service process on the same store, and a chart both have cached
    other = build(make_settings(database_url, tmp_path / "other"))
    try:
        patient_id = register(container)
        record_heart_rate(container, patient_id, bpm=60)
        record_heart_rate(other, patient_id, bpm=61)
        # When each writes again, its cached copy now behind the other's write
        record_heart_rate(container, patient_id, bpm=62)
        record_heart_rate(other, patient_id, bpm=63)
        # Then every write is in the chart, in order, at consecutive versions
        container.ledger.forget(patient_id)
        chart = container.ledger.repository.get(patient_id)
        assert chart.version == 5 and chart.entry_count == 4
        # And If-Match with the store's version is honoured by a process whose copy is
        # behind it, and refused with the store's version when it is not current
        current = other.patients.update_demographics(
            CLINICIAN,
            patient_id,
            name=HumanName("Ada", "Renamed"),
            birth_date=None,
            sex=None,
            contact=None,
            expected_version=5,
        )
        assert current.result["version"] == 6
        behind = container.patients.update_demographics(
            CLINICIAN,
            patient_id,
            name=HumanName("Ada", "Again"),
            birth_date=None,
            sex=None,
            contact=None,
            expected_version=6,
        )
        assert behind.result["version"] == 7
        with pytest.raises(PreconditionFailed) as refused:
            other.patients.update_demographics(
                CLINICIAN,
                patient_id,
                name=HumanName("Ada", "Late"),
                birth_date=None,
                sex=None,
                contact=None,
                expected_version=6,
            )
        assert refused.value.actual == 7
    finally:
        other.close()
