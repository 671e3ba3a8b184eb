"""Stories of the patient: registration, demographics, death, erasure, snapshots."""

import copy
from datetime import date, timedelta
from uuid import uuid4

import pytest

from domain.errors import (
    EntryEnteredInError,
    InvalidValue,
    PatientErased,
)
from domain.patient import Patient
from domain.values import ContactDetails, HumanName
from domain.vocabulary import AdministrativeSex, EntryStatus
from tests.unit.stories import (
    ORG,
    T0,
    TODAY,
    at,
    fields,
    given,
    record_observation,
    registered_patient,
    replay,
    then,
)

# Registration ---------------------------------------------------------------------


def test_registering_a_patient_records_registered_with_the_demographics() -> None:
    patient_id, consent_id = uuid4(), uuid4()

    patient = Patient.register(
        patient_id=patient_id,
        consent_id=consent_id,
        organisation_id=ORG,
        mrn="MRN-0042",
        name=HumanName(given="Ada", family="Example"),
        birth_date=date(1984, 7, 12),
        sex=AdministrativeSex.FEMALE,
        contact=None,
        by=at(0, actor="registrar-1"),
    )

    [registered] = then(patient)
    assert type(registered) is Patient.Registered
    assert registered.originator_id == patient_id
    assert fields(registered, "consent_id", "organisation_id", "mrn", "birth_date", "sex") == {
        "consent_id": consent_id,
        "organisation_id": ORG,
        "mrn": "MRN-0042",
        "birth_date": date(1984, 7, 12),
        "sex": "female",
    }
    assert registered.name == HumanName(given="Ada", family="Example")
    assert (registered.actor_id, registered.occurred_at) == ("registrar-1", T0)
    assert (patient.id, patient.consent_id, patient.organisation_id) == (
        patient_id,
        consent_id,
        ORG,
    )


def test_a_birth_date_in_the_future_is_refused() -> None:
    with pytest.raises(InvalidValue) as refused:
        registered_patient(birth_date=TODAY + timedelta(days=1))
    assert refused.value.field == "birth_date"


def test_a_birth_date_of_today_is_accepted() -> None:
    assert registered_patient(birth_date=TODAY).birth_date == TODAY


def test_an_implausibly_early_birth_date_is_refused() -> None:
    with pytest.raises(InvalidValue) as refused:
        registered_patient(birth_date=date(1849, 12, 31))
    assert refused.value.field == "birth_date"


def test_a_demographics_update_to_a_future_birth_date_is_refused() -> None:
    patient = given(registered_patient())

    with pytest.raises(InvalidValue) as refused:
        patient.update_demographics(birth_date=TODAY + timedelta(days=2), by=at(1))

    assert refused.value.field == "birth_date"
    assert then(patient) == []


def test_updating_demographics_records_only_what_changed() -> None:
    patient = given(registered_patient())

    patient.update_demographics(contact=ContactDetails(email="ada@example.org"), by=at(1))

    [updated] = then(patient)
    assert type(updated) is Patient.DemographicsUpdated
    assert updated.contact == ContactDetails(email="ada@example.org")
    assert (updated.name, updated.birth_date, updated.sex) == (None, None, None)
    assert patient.name == HumanName(given="Ada", family="Example")


def test_a_demographics_update_that_changes_nothing_is_refused() -> None:
    patient = given(registered_patient())
    with pytest.raises(InvalidValue):
        patient.update_demographics(by=at(1))


# Death and erasure ----------------------------------------------------------------


def test_recording_a_death_records_deceased() -> None:
    patient = given(registered_patient())

    patient.record_death(deceased_at=T0 + timedelta(hours=3), by=at(1))

    [deceased] = then(patient)
    assert type(deceased) is Patient.Deceased
    assert deceased.deceased_at == T0 + timedelta(hours=3)
    assert patient.demographics()["deceased_at"] == T0 + timedelta(hours=3)


def test_a_death_in_the_future_is_refused() -> None:
    patient = given(registered_patient())
    with pytest.raises(InvalidValue) as refused:
        patient.record_death(deceased_at=T0 + timedelta(days=2), by=at(1))
    assert refused.value.field == "deceased_at"


def test_erasure_records_erased_without_phi_and_forgets_the_demographics() -> None:
    patient = given(registered_patient())

    patient.erase(legal_basis="GDPR art. 17 request", by=at(1))

    [erased] = then(patient)
    assert type(erased) is Patient.Erased
    assert set(vars(erased)) == {
        "originator_id",
        "originator_version",
        "timestamp",
        "actor_id",
        "legal_basis",
        "organisation_id",  # a random id, so that erasure is told only within reach
    }
    assert erased.organisation_id == patient.organisation_id
    assert (patient.mrn, patient.name, patient.birth_date, patient.contact) == (
        None,
        None,
        None,
        None,
    )
    with pytest.raises(PatientErased):
        patient.demographics()


def test_a_patient_cannot_be_erased_twice() -> None:
    patient = registered_patient()
    patient.erase(legal_basis="GDPR art. 17 request", by=at(1))
    patient = given(patient)

    with pytest.raises(PatientErased):
        patient.erase(legal_basis="again", by=at(2))

    assert then(patient) == []


# Snapshots ------------------------------------------------------------------------


def test_a_chart_of_ten_thousand_entries_round_trips_through_a_snapshot() -> None:
    patient = registered_patient()
    entry_ids = [uuid4() for _ in range(10_000)]
    for entry_id in entry_ids:
        record_observation(patient, entry_id)
    patient.mark_entered_in_error(entry_id=entry_ids[0], reason="wrong patient", by=at(2))
    history = list(patient.collect_events())

    snapshot = Patient.Snapshot.take(patient)
    # A deep copy stands in for storage: the restored chart shares nothing with the original.
    restored = copy.deepcopy(snapshot).mutate(None)

    assert isinstance(restored, Patient)
    assert restored == patient
    assert restored == replay(history)
    assert (restored.version, restored.entry_count) == (10_002, 10_000)
    assert restored.entry_status(entry_ids[0]) is EntryStatus.ENTERED_IN_ERROR
    assert restored.entry_status(entry_ids[-1]) is EntryStatus.ACTIVE
    # The restored chart still enforces its invariants and continues the sequence.
    with pytest.raises(EntryEnteredInError):
        restored.amend_entry(entry_id=entry_ids[0], reason="fix", by=at(3))
    restored.amend_entry(entry_id=entry_ids[-1], reason="fix", by=at(3))
    [amended] = then(restored)
    assert amended.originator_version == 10_003
    assert patient.entry_status(entry_ids[-1]) is EntryStatus.ACTIVE
