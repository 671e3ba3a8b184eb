"""Group commit for commands, on both backends: concurrent saves share transactions, one
caller's conflict fails only that caller, and every acknowledged save is in the log."""

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.persistence import IntegrityError

from api.container import Container
from application.group_writes import GroupWrites
from domain.patient import Patient
from domain.values import Coding, Provenance, TextValue
from domain.vocabulary import EntryKind
from tests.contract.read_model_support import T0, minutes, record, register


def test_concurrent_commands_share_commits_and_each_gets_its_own_result(
    container: Container,
) -> None:
    patients = [register(container, f"MRN-G{i}") for i in range(16)]
    writes = container.ledger.group_writes
    assert writes is not None
    commits, saves = writes.commits, writes.saves
    positions: dict[UUID, list[int]] = {p: [] for p in patients}
    failures: list[BaseException] = []
    start = threading.Barrier(len(patients))

    def clinician_at(patient_id: UUID) -> None:
        try:
            start.wait()
            for i in range(10):
                positions[patient_id].append(record(container, patient_id, at=T0 + minutes(i))[1])
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=clinician_at, args=(p,)) for p in patients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    # Then every save was acknowledged with its own position, in the log exactly there
    assert writes.saves - saves == 160
    acknowledged = sorted(p for ps in positions.values() for p in ps)
    assert len(set(acknowledged)) == 160
    for patient_id in patients:
        chart = container.ledger.repository.get(patient_id)
        assert len(chart.entries) == 10
    # And they shared transactions
    assert writes.commits - commits < writes.saves - saves


def test_one_conflict_in_a_group_fails_only_its_own_caller(container: Container) -> None:
    first, second, third = (register(container, f"MRN-C{i}") for i in range(3))
    writes = GroupWrites(container.ledger)
    # The committer is held inside a first commit, so that the next three queue up and
    # are taken together as one group
    gate, inner = threading.Event(), writes._commit

    def held(group: Sequence[Any]) -> None:
        gate.wait(10)
        inner(group)

    writes._commit = held  # type: ignore[method-assign]
    try:
        results: dict[str, object] = {}

        def save(key: str, chart: Patient) -> None:
            try:
                results[key] = writes.save([chart], None)
            except IntegrityError as error:
                results[key] = error

        blocker = container.ledger.repository.get(third)
        blocker.record_entry(**entry_fields())
        threads = [threading.Thread(target=save, args=("blocker", blocker))]
        threads[0].start()
        while writes._queue:  # the committer has taken the blocker and waits at the gate
            time.sleep(0.01)
        # Two commands decided on the same version of one chart, and one on another
        stale = [container.ledger.repository.get(first) for _ in range(2)]
        other = container.ledger.repository.get(second)
        for key, chart in (("a", stale[0]), ("b", stale[1]), ("other", other)):
            chart.record_entry(**entry_fields())
            threads.append(threading.Thread(target=save, args=(key, chart)))
            threads[-1].start()
        while len(writes._queue) < 3:
            time.sleep(0.01)
        gate.set()
        for thread in threads:
            thread.join()
    finally:
        writes.close()
    # Exactly one of the two stale commands lost; the unrelated one is unaffected
    assert sorted(type(results[k]).__name__ for k in ("a", "b")) == ["IntegrityError", "list"]
    assert isinstance(results["other"], list) and isinstance(results["blocker"], list)
    assert writes.regrouped == 1
    assert len(container.ledger.repository.get(second).entries) == 1
    assert len(container.ledger.repository.get(first).entries) == 1


def entry_fields() -> dict[str, object]:
    return {
        "entry_id": uuid4(),
        "kind": EntryKind.NOTE,
        "code": Coding("http://loinc.org", "11506-3", "Progress note"),
        "value": TextValue("seen"),
        "effective_at": datetime(2026, 3, 1, tzinfo=UTC),
        "modality": None,
        "labels": frozenset(),
        "by": Provenance("dr-main", datetime.now(UTC)),
    }
