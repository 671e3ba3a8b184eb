"""`careledger demo` writes what its summary says, covers every modality and is repeatable."""

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import UUID

import orjson
import pytest

from api.bootstrap import build
from api.container import Container
from api.demo import seed_demo
from application.context import Role
from domain.patient import Patient
from domain.vocabulary import Modality
from tests.conftest import make_settings
from tests.contract.stories import ctx

SUMMARY = re.compile(
    r"^seeded (\d+) patients, (\d+) entries, (\d+) memberships \((\d+) sponsors\), "
    r"(\d+) consent directives$"
)


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Callable[[], Container]]:
    """A factory of containers, each on its own empty SQLite store."""
    built: list[Container] = []

    def make() -> Container:
        name = f"store-{len(built)}"
        container = build(make_settings(f"sqlite:///{tmp_path / name}.db", tmp_path / name))
        built.append(container)
        return container

    yield make
    for container in built:
        container.close()


def patient_ids(container: Container) -> list[UUID]:
    roster = container.memberships.roster(ctx(Role.ADMIN, "admin-1"))
    return [UUID(item["patient_id"]) for item in roster]


def entries_recorded(container: Container, patient_id: UUID) -> list[Patient.EntryRecorded]:
    return [
        event
        for event in container.ledger.events.get(patient_id)
        if isinstance(event, Patient.EntryRecorded)
    ]


def test_the_summary_matches_the_store(fresh: Callable[[], Container]) -> None:
    # Given an empty store, when the demo seeds five patients
    container = fresh()
    summary = seed_demo(container, patients=5, seed=1)

    # Then every count in the summary is what the store holds
    match = SUMMARY.match(summary)
    assert match, summary
    patients, entries, memberships, sponsors, directives = map(int, match.groups())
    roster = container.memberships.roster(ctx(Role.ADMIN, "admin-1"))
    assert patients == memberships == len(roster) == 5
    assert sponsors == len({item["sponsor_id"] for item in roster if item["sponsor_id"]})
    assert {item["plan"] for item in roster} <= {"individual", "employer"}
    assert all(item["active_today"] for item in roster)

    clinician = ctx(Role.CLINICIAN)
    charts = [
        orjson.loads(container.patients.demographics(clinician, UUID(i["patient_id"])).body)
        for i in roster
    ]
    counts = [container.ledger.load(Patient, UUID(c["id"]), "patient").entry_count for c in charts]
    assert all(5 <= count <= 15 for count in counts)
    assert entries == sum(counts)
    # And every directive it counts is a general electronic consent to the pharmacy
    granted = [
        directive
        for item in roster
        for directive in orjson.loads(
            container.consents.current(clinician, UUID(item["patient_id"])).body
        )["directives"]
    ]
    assert directives == len(granted)
    for directive in granted:
        assert directive["grantee"] == "org-pharmacy"
        assert directive["purposes"] == ["TREAT"]
        assert directive["evidence"]["form_id"] == "consent-general"
        assert directive["evidence"]["method"] == "electronic"
        assert directive["status"] == "active"
    # Each patient: Registered, the consent record opened, 5+ entries, an enrolment.
    assert (container.ledger.recorder.max_notification_id() or 0) >= 5 * (2 + 5 + 1)


def test_a_larger_run_covers_every_modality_with_valid_entries(
    fresh: Callable[[], Container],
) -> None:
    # Given a demo of twelve patients
    container = fresh()
    seed_demo(container, patients=12, seed=2)

    # Then its encounters use every modality, and only encounters have one
    recorded = [e for pid in patient_ids(container) for e in entries_recorded(container, pid)]
    assert {e.modality for e in recorded if e.kind == "encounter"} == set(Modality)
    assert all(e.modality is None for e in recorded if e.kind != "encounter")
    # And every entry is timezone-aware and coded in LOINC or SNOMED CT
    assert all(e.effective_at.tzinfo is not None for e in recorded)
    systems = {e.code.system for e in recorded}
    assert {"http://loinc.org", "http://snomed.info/sct"} <= systems


def test_the_same_seed_gives_the_same_patients(fresh: Callable[[], Container]) -> None:
    # Given two empty stores seeded with the same seed
    runs = []
    for _ in range(2):
        container = fresh()
        seed_demo(container, patients=6, seed=42)
        clinician = ctx(Role.CLINICIAN)
        runs.append(
            {
                (chart["mrn"], chart["name"]["family"], chart["birth_date"])
                for chart in (
                    container.patients.demographics(clinician, pid).json()
                    for pid in patient_ids(container)
                )
            }
        )
    # Then both hold the same six patients, numbered from DEMO-000000
    assert runs[0] == runs[1]
    assert {mrn for mrn, _, _ in runs[0]} == {f"DEMO-{n:06d}" for n in range(6)}
