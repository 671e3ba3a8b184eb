"""Stories of the patient's chart: registration, entries, corrections, death, erasure."""

import copy
from datetime import date, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from domain.errors import (
    EntryEnteredInError,
    EntryNotFound,
    InvalidValue,
    PatientDeceased,
    PatientErased,
)
from domain.patient import Patient
from domain.values import ContactDetails, HumanName, Quantity, TextValue
from domain.vocabulary import AdministrativeSex, EntryKind, EntryStatus, Modality, SensitivityLabel
from tests.unit.stories import (
    CLINICIAN,
    HEART_RATE,
    ORG,
    T0,
    TODAY,
    at,
    fields,
    given,
    registered_patient,
    replay,
    then,
)

NO_LABELS: frozenset[SensitivityLabel] = frozenset()


def record_observation(patient: Patient, entry_id: UUID, days: int = 1) -> None:
    patient.record_entry(
        entry_id=entry_id,
        kind=EntryKind.OBSERVATION,
        code=HEART_RATE,
        value=Quantity(Decimal(72), "/min"),
        effective_at=T0,
        modality=None,
        labels=NO_LABELS,
        by=at(days),
    )


def patient_with_entry() -> tuple[Patient, UUID]:
    """A registered patient with one observation; the scene is still to be given."""
    patient = registered_patient()
    entry_id = uuid4()
    record_observation(patient, entry_id)
    return patient, entry_id


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


# Recording entries ------------------------------------------------------------------


def test_recording_an_observation_records_entry_recorded() -> None:
    patient = given(registered_patient())
    entry_id = uuid4()

    patient.record_entry(
        entry_id=entry_id,
        kind=EntryKind.OBSERVATION,
        code=HEART_RATE,
        value=Quantity(Decimal(72), "/min"),
        effective_at=T0,
        modality=None,
        labels=frozenset({SensitivityLabel.SUBSTANCE_USE, SensitivityLabel.GENETIC}),
        by=at(1),
    )

    [recorded] = then(patient)
    assert type(recorded) is Patient.EntryRecorded
    assert fields(recorded, "entry_id", "kind", "code", "modality", "labels", "author") == {
        "entry_id": entry_id,
        "kind": "observation",
        "code": HEART_RATE,
        "modality": None,
        "labels": ["genetic", "substance_use"],
        "author": CLINICIAN,
    }
    assert recorded.value == Quantity(Decimal(72), "/min")
    assert recorded.occurred_at == T0 + timedelta(days=1)
    assert patient.entry_status(entry_id) is EntryStatus.ACTIVE


def test_an_encounter_records_its_modality() -> None:
    patient = given(registered_patient())

    patient.record_entry(
        entry_id=uuid4(),
        kind=EntryKind.ENCOUNTER,
        code=HEART_RATE,
        value=None,
        effective_at=T0,
        modality=Modality.VIRTUAL,
        labels=NO_LABELS,
        by=at(1),
    )

    [recorded] = then(patient)
    assert (recorded.kind, recorded.modality) == ("encounter", "virtual")


def test_an_encounter_without_a_modality_is_refused() -> None:
    patient = given(registered_patient())

    with pytest.raises(InvalidValue) as refused:
        patient.record_entry(
            entry_id=uuid4(),
            kind=EntryKind.ENCOUNTER,
            code=HEART_RATE,
            value=None,
            effective_at=T0,
            modality=None,
            labels=NO_LABELS,
            by=at(1),
        )

    assert refused.value.field == "modality"
    assert then(patient) == []


def test_a_modality_on_anything_but_an_encounter_is_refused() -> None:
    patient = given(registered_patient())

    with pytest.raises(InvalidValue) as refused:
        patient.record_entry(
            entry_id=uuid4(),
            kind=EntryKind.NOTE,
            code=HEART_RATE,
            value=TextValue("seen at home"),
            effective_at=T0,
            modality=Modality.HOME,
            labels=NO_LABELS,
            by=at(1),
        )

    assert refused.value.field == "modality"
    assert then(patient) == []


def test_an_entry_id_is_used_once_per_chart() -> None:
    patient, entry_id = patient_with_entry()
    patient = given(patient)
    with pytest.raises(InvalidValue) as refused:
        record_observation(patient, entry_id, days=2)
    assert refused.value.field == "entry_id"


def test_an_effective_time_without_a_time_zone_is_refused() -> None:
    patient = given(registered_patient())
    with pytest.raises(InvalidValue) as refused:
        patient.record_entry(
            entry_id=uuid4(),
            kind=EntryKind.OBSERVATION,
            code=HEART_RATE,
            value=None,
            effective_at=T0.replace(tzinfo=None),
            modality=None,
            labels=NO_LABELS,
            by=at(1),
        )
    assert refused.value.field == "effective_at"


def test_no_entries_are_recorded_for_a_deceased_patient() -> None:
    patient = registered_patient()
    patient.record_death(deceased_at=T0 + timedelta(hours=1), by=at(1))
    patient = given(patient)

    with pytest.raises(PatientDeceased):
        record_observation(patient, uuid4(), days=2)

    assert then(patient) == []


def test_no_entries_are_recorded_for_an_erased_patient() -> None:
    patient = registered_patient()
    patient.erase(legal_basis="GDPR art. 17 request", by=at(1))
    patient = given(patient)

    with pytest.raises(PatientErased):
        record_observation(patient, uuid4(), days=2)

    assert then(patient) == []


# Corrections ----------------------------------------------------------------------


def test_amending_an_entry_supersedes_it_with_a_reason() -> None:
    patient, entry_id = patient_with_entry()
    patient = given(patient)

    patient.amend_entry(
        entry_id=entry_id,
        reason="transcription error",
        value=Quantity(Decimal(76), "/min"),
        by=at(2),
    )

    [amended] = then(patient)
    assert type(amended) is Patient.EntryAmended
    assert fields(amended, "entry_id", "reason", "value", "code", "modality", "labels") == {
        "entry_id": entry_id,
        "reason": "transcription error",
        "value": Quantity(Decimal(76), "/min"),
        "code": None,
        "modality": None,
        "labels": None,
    }
    assert patient.entry_status(entry_id) is EntryStatus.AMENDED


def test_only_an_existing_entry_can_be_amended() -> None:
    patient, _ = patient_with_entry()
    patient = given(patient)

    with pytest.raises(EntryNotFound):
        patient.amend_entry(entry_id=uuid4(), reason="typo", by=at(2))

    assert then(patient) == []


def test_an_amendment_must_give_a_reason() -> None:
    patient, entry_id = patient_with_entry()
    patient = given(patient)
    with pytest.raises(InvalidValue) as refused:
        patient.amend_entry(entry_id=entry_id, reason="  ", by=at(2))
    assert refused.value.field == "reason"


def test_an_amendment_cannot_give_an_observation_a_modality() -> None:
    patient, entry_id = patient_with_entry()
    patient = given(patient)
    with pytest.raises(InvalidValue) as refused:
        patient.amend_entry(entry_id=entry_id, reason="typo", modality=Modality.HOME, by=at(2))
    assert refused.value.field == "modality"


def test_marking_an_entry_entered_in_error_records_entry_entered_in_error() -> None:
    patient, entry_id = patient_with_entry()
    patient = given(patient)

    patient.mark_entered_in_error(entry_id=entry_id, reason="wrong patient", by=at(2))

    [marked] = then(patient)
    assert type(marked) is Patient.EntryEnteredInError
    assert fields(marked, "entry_id", "reason", "actor_id") == {
        "entry_id": entry_id,
        "reason": "wrong patient",
        "actor_id": CLINICIAN,
    }
    assert patient.entry_status(entry_id) is EntryStatus.ENTERED_IN_ERROR


def test_an_entry_entered_in_error_cannot_be_amended() -> None:
    patient, entry_id = patient_with_entry()
    patient.mark_entered_in_error(entry_id=entry_id, reason="wrong patient", by=at(2))
    patient = given(patient)

    with pytest.raises(EntryEnteredInError):
        patient.amend_entry(entry_id=entry_id, reason="fix", by=at(3))

    assert then(patient) == []


def test_an_entry_cannot_be_marked_entered_in_error_twice() -> None:
    patient, entry_id = patient_with_entry()
    patient.mark_entered_in_error(entry_id=entry_id, reason="wrong patient", by=at(2))
    patient = given(patient)

    with pytest.raises(EntryEnteredInError):
        patient.mark_entered_in_error(entry_id=entry_id, reason="again", by=at(3))

    assert then(patient) == []


def test_an_unknown_entry_cannot_be_marked_entered_in_error() -> None:
    patient, _ = patient_with_entry()
    patient = given(patient)
    with pytest.raises(EntryNotFound):
        patient.mark_entered_in_error(entry_id=uuid4(), reason="wrong patient", by=at(2))


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
    }
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
