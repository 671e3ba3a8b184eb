"""The ordering the projections rely on: 16 concurrent writers, and a reader following
the log as they write, which must see every acknowledged event exactly once.

A reader that moves past a position cannot go back for an event that commits there
later; that is how readers skip events when positions commit out of order (as with
the library's ``POSTGRES_ENABLE_DB_FUNCTIONS``, which we never enable). Writes go
through the service's use case, so through group commit. The full benchmark runs the
same check at 1,000,000 events.
"""

import os
import threading
from uuid import UUID

from api.container import Container
from tests.contract.read_model_support import T0, follow_log, minutes, record, register

WRITERS = 16
EVENTS = int(os.environ.get("CARELEDGER_GAP_EVENTS", "20000"))


def test_a_live_reader_sees_every_acknowledged_event_exactly_once(
    container: Container,
) -> None:
    recorder = container.ledger.recorder
    patients = [register(container, f"MRN-GAP{i}") for i in range(WRITERS)]
    start = (recorder.max_notification_id() or 0) + 1
    acknowledged: list[int] = []
    failures: list[BaseException] = []
    seen: list[int] = []
    writing = threading.Event()
    writing.set()

    def writer(patient_id: UUID, count: int) -> None:
        try:
            for i in range(count):
                acknowledged.append(record(container, patient_id, at=T0 + minutes(i))[1])
        except BaseException as error:
            failures.append(error)

    per_writer = EVENTS // WRITERS
    following = threading.Thread(target=follow_log, args=(recorder, start, writing, seen))
    following.start()
    writers = [threading.Thread(target=writer, args=(p, per_writer)) for p in patients]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    writing.clear()
    following.join()

    assert not failures, failures[:3]
    assert len(acknowledged) == per_writer * WRITERS
    # Every acknowledged event was seen, once, in log order, and nothing else was
    assert len(seen) == len(set(seen)), "the reader saw an event twice"
    assert seen == sorted(seen)
    missed = set(acknowledged) - set(seen)
    assert not missed, f"the reader skipped {len(missed)} acknowledged events"
    everything = [n.id for n in recorder.select_notifications(start=start, limit=10 * EVENTS)]
    assert seen == everything
