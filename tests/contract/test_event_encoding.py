"""Events are written through orjson (``OrjsonTranscoder``) and read by the library's
JSON decoder: what it writes must read back exactly as the library's own encoder's
bytes do, and every event a store already holds must come out byte for byte the same.

The library's own transcoder cases run against it in ``test_library_recorder_contract``.
"""

import shutil
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import JSONTranscoder, Mapper
from hypothesis import given, settings
from hypothesis import strategies as st

from api.bootstrap import build
from application.errors import DataKeyDestroyed
from application.ledger.ledger import CareLedger
from application.ledger.transcodings import OrjsonTranscoder
from domain.patient import Patient
from domain.values import Coding, Quantity
from domain.vocabulary import EntryKind
from tests.conftest import make_settings
from tests.unit.stories import record_observation, registered_patient

FIXTURE = Path(__file__).parent.parent / "fixtures" / "store_before_regroup.db"


def transcoders() -> tuple[OrjsonTranscoder, JSONTranscoder]:
    application = CareLedger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    ours = application.construct_transcoder()
    assert isinstance(ours, OrjsonTranscoder)  # what the application's mapper writes with
    library = JSONTranscoder()
    application.register_transcodings(library)
    return ours, library


def test_every_event_of_a_store_written_before_encodes_byte_for_byte_as_before(
    tmp_path: Path,
) -> None:
    copy = tmp_path / "old.db"
    shutil.copyfile(FIXTURE, copy)
    container = build(make_settings(f"sqlite:///{copy}", tmp_path / "var"))
    ours, library = transcoders()
    kinds = set()
    try:
        for notification in container.ledger.recorder.select_notifications(start=1, limit=10**5):
            try:
                event = container.ledger.mapper.to_domain_event(notification)
            except DataKeyDestroyed:
                continue  # the erased patient's
            mine = Mapper(ours).to_stored_event(event)
            assert mine.state == Mapper(library).to_stored_event(event).state, mine.topic
            kinds.add(mine.topic)
    finally:
        container.close()
    assert {"domain.patient:Patient.EntryRecorded", "domain.patient:Patient.Registered"} <= kinds
    assert len(kinds) >= 9


def test_a_chart_snapshot_encodes_byte_for_byte_as_the_library_writes_it() -> None:
    patient = registered_patient()
    for days in range(30):
        record_observation(patient, uuid4(), days)
    patient.collect_events()
    snapshot = Patient.Snapshot.take(patient)
    ours, library = transcoders()
    assert Mapper(ours).to_stored_event(snapshot).state == (
        Mapper(library).to_stored_event(snapshot).state
    )


def test_a_state_the_fast_path_declines_is_written_by_the_library() -> None:
    ours, library = transcoders()
    awkward: list[dict[str, Any]] = [
        {"keys": {1: UUID(int=1)}},  # a key other than a string
        {"big": 2**70},  # beyond orjson's integers
        {"value": float("nan")},  # orjson would write null
        {"when": date(2024, 1, 2), "values": [Decimal("1.5"), float("inf")]},
        {"deep": _nested(600)},  # deeper than the fast path recurses
    ]
    for state in awkward:
        assert ours.encode(state) == library.encode(state)


def test_an_unregistered_type_is_refused_with_the_library_error() -> None:
    ours, _ = transcoders()
    with pytest.raises(TypeError, match="custom transcoding"):
        ours.encode({"sex": object()})


words = st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=8)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.uuids(),
    st.dates(),
    st.datetimes(timezones=st.just(UTC)),
    st.datetimes(timezones=st.none() | st.timezones()),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    st.sampled_from(list(EntryKind)),  # a StrEnum, written as its value by both
    st.builds(Coding, words, words, words),
    st.builds(
        Quantity,
        st.decimals(min_value=0, max_value=10**6, places=2, allow_nan=False),
        st.sampled_from(["/min", "mmHg", "kg"]),
    ),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=5) | st.integers(), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(state=st.dictionaries(st.text(max_size=12), values, max_size=8))
def test_whatever_either_encoder_writes_reads_back_the_same(state: dict[str, Any]) -> None:
    ours, library = transcoders()
    try:
        expected = library.decode(library.encode(state))
    except (TypeError, ValueError) as refused:
        with pytest.raises(type(refused)):
            ours.encode(state)
        return
    # Compared as the library writes what was read, so that NaN (never equal to
    # itself) and a float's spelling (1e16 or 1e+16) compare as the same value.
    assert library.encode(library.decode(ours.encode(state))) == library.encode(expected)


def test_an_entry_event_takes_the_fast_path() -> None:
    """An ordinary entry's state is written without falling back to the library."""
    ours, _ = transcoders()
    calls = []
    original = JSONTranscoder.encode
    JSONTranscoder.encode = lambda self, obj: calls.append(obj) or original(self, obj)  # type: ignore[method-assign]
    try:
        ours.encode(
            {
                "timestamp": datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=1),
                "entry_id": UUID(int=7),
                "kind": EntryKind.OBSERVATION.value,
                "code": Coding("http://loinc.org", "8867-4", "Heart rate"),
                "value": Quantity(Decimal(61), "/min"),
                "labels": [],
                "tags": [
                    Coding(
                        "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                        "HTEST",
                        "test health data",
                    )
                ],
                "links": None,
            }
        )
    finally:
        JSONTranscoder.encode = original  # type: ignore[method-assign]
    assert calls == []


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value
