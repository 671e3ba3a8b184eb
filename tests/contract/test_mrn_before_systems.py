"""Issue 20, defect 2, the old shape: a store written before MRNs had systems (and
before claims) still loads, reads each bare MRN in its organisation's default system,
and refuses a new patient with one of those MRNs.

The fixture is ``tests/fixtures/store_before_regroup.db`` (see
``tests/contract/test_a_store_written_before.py``): its patients were registered as
``Patient.Registered`` v1, with ``mrn`` a bare text.
"""

import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from uuid import UUID

import pytest

from api.bootstrap import build
from api.container import Container
from application.context import Actor, RequestContext, Role
from domain.errors import DomainError
from domain.identifiers import MrnInUse, default_mrn_system
from domain.patient import Patient
from domain.values import HumanName
from domain.vocabulary import AdministrativeSex, Purpose
from tests.conftest import ORG, REGISTER_BODY, make_settings

FIXTURE = Path(__file__).parent.parent / "fixtures" / "store_before_regroup.db"
CLINICIAN = RequestContext(Actor("dr-new", Role.CLINICIAN, ORG), Purpose.TREAT, "r-new")
REGISTERED = "domain.patient:Patient.Registered"


@pytest.fixture
def old_store(tmp_path: Path) -> Iterator[Container]:
    copy = tmp_path / "old.db"
    shutil.copyfile(FIXTURE, copy)
    container = build(make_settings(f"sqlite:///{copy}", tmp_path / "var"), run_processes=True)
    container.start_followers()
    try:
        yield container
    finally:
        container.close()


def registered_ids(container: Container) -> list[UUID]:
    notifications = container.ledger.recorder.select_notifications(start=1, limit=100_000)
    return [n.originator_id for n in notifications if n.topic == REGISTERED]


def register(container: Container, mrn: str | object) -> None:
    container.patients.register(
        CLINICIAN,
        mrn=mrn,  # type: ignore[arg-type]
        name=HumanName("New", "Patient"),
        birth_date=date(1990, 1, 1),
        sex=AdministrativeSex.FEMALE,
        contact=None,
    )


def test_a_v1_registration_reads_its_mrn_in_the_default_system(old_store: Container) -> None:
    patients = []
    for patient_id in registered_ids(old_store):
        try:
            patients.append(old_store.ledger.load(Patient, patient_id, "patient"))
        except DomainError:
            continue
        except Exception as error:  # the erased patient's chart cannot be read
            assert type(error).__name__ in ("Gone", "DataKeyDestroyed"), error
    live = [p for p in patients if not p.erased]
    assert live, "the fixture holds a live patient"
    for patient in live:
        assert patient.mrn_system == default_mrn_system(patient.organisation_id)
    assert REGISTER_BODY["mrn"] in {p.mrn for p in live}


def test_a_new_patient_with_an_mrn_registered_before_claims_is_refused(
    old_store: Container,
) -> None:
    old_store.positions.wait_for(["directory"], old_store.ledger.recorder.max_notification_id(), 10)
    with pytest.raises(MrnInUse):
        register(old_store, REGISTER_BODY["mrn"])

    # While a value in another system is another MRN
    class Lab:
        system = "urn:example:lab:mrn"
        value = REGISTER_BODY["mrn"]

    register(old_store, Lab())
