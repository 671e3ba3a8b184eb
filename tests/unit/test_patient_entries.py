"""Stories of the clinical entries in a chart: recording them and correcting them."""

from copy import deepcopy
from datetime import timedelta
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
from domain.values import Quantity, TextValue
from domain.vocabulary import EntryKind, EntryStatus, Modality, SensitivityLabel
from tests.unit.stories import (
    CLINICIAN,
    HEART_RATE,
    NO_LABELS,
    T0,
    at,
    fields,
    given,
    patient_with_entry,
    record_observation,
    registered_patient,
    then,
)

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


def test_a_command_on_a_copy_of_the_chart_leaves_the_original_as_it_was() -> None:
    # The library hands commands a deep copy of the cached chart; ours shares the
    # entry records, so a command must replace them rather than change them.
    original, entry_id = patient_with_entry()
    original = given(original)
    copy = deepcopy(original)
    copy.amend_entry(entry_id=entry_id, reason="transcription error", by=at(2))
    copy.mark_entered_in_error(entry_id=uuid_of_second(copy), reason="wrong chart", by=at(3))
    assert copy.entry_status(entry_id) is EntryStatus.AMENDED
    assert original.entry_status(entry_id) is EntryStatus.ACTIVE
    assert original.version == copy.version - 3 and then(original) == []
    assert copy.entries is not original.entries


def uuid_of_second(patient: Patient) -> UUID:
    second = uuid4()
    record_observation(patient, second, days=2)
    return second
