"""Group commit for commands, on both backends: concurrent saves share transactions, and
every acknowledged save is in the log. How groups are formed and fail: test_batcher."""

import threading
import time
from datetime import date
from uuid import UUID, uuid4

from api.container import Container
from domain.patient import Patient
from domain.values import HumanName, Provenance
from domain.vocabulary import AdministrativeSex
from tests.contract.read_model_support import T0, clinician, minutes, record, register


def test_concurrent_commands_share_commits_and_each_gets_its_own_result(
    container: Container,
) -> None:
    patients = [register(container, f"MRN-G{i}") for i in range(16)]
    writes = container.ledger.group_writes
    assert writes is not None
    commits, saves = writes.commits, writes.committed
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
    assert writes.committed - saves == 160
    acknowledged = sorted(p for ps in positions.values() for p in ps)
    assert len(set(acknowledged)) == 160
    for patient_id in patients:
        chart = container.ledger.repository.get(patient_id)
        assert len(chart.entries) == 10
    # And they shared transactions
    assert writes.commits - commits < writes.committed - saves


def new_chart(n: int) -> Patient:
    by = Provenance("importer", T0)
    return Patient.register(
        patient_id=uuid4(),
        consent_id=uuid4(),
        organisation_id="org-main",
        mrn=f"MRN-GATHER-{n}",
        name=HumanName("Ada", "Gathered"),
        birth_date=date(1970, 1, 1),
        sex=AdministrativeSex.FEMALE,
        contact=None,
        by=by,
    )


def test_saves_a_thread_gathers_are_committed_together_and_a_command_inside_goes_after(
    container: Container,
) -> None:
    """An importer gathers its files' saves and queues them together: they share one
    commit. A save whose outcome is asked for inside the gathering releases the ones
    held before it first, so the log keeps the order they were made in."""
    ledger, writes = container.ledger, container.ledger.group_writes
    assert writes is not None
    commits, saved = writes.commits, writes.committed
    ctx = clinician()
    writes.gather()
    try:
        held = [ledger.submit(ctx, [new_chart(n)], {"n": n}) for n in range(3)]
        time.sleep(0.05)
        assert writes.committed == saved  # held back, not queued
        last = ledger.commit(ctx, [new_chart(3)], {"n": 3})  # asked now: the three go first
        positions = [answered().position for answered in held] + [last.position]
        later = ledger.submit(ctx, [new_chart(4)], {"n": 4})
    finally:
        writes.release()
    positions.append(later().position)
    assert positions == sorted(positions) and len(set(positions)) == 5
    assert writes.committed - saved == 5
    assert writes.commits - commits == 2  # the first four in one, the last alone
