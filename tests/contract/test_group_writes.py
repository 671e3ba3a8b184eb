"""Group commit for commands, on both backends: concurrent saves share transactions, and
every acknowledged save is in the log. How groups are formed and fail: test_batcher."""

import threading
from uuid import UUID

from api.container import Container
from tests.contract.read_model_support import T0, minutes, record, register


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
