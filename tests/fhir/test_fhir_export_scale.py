"""A bulk export streams in constant memory: exporting ten times the patients takes no
more memory (tracemalloc's peak above where it started) than exporting a tenth of them.

The store is seeded through the use cases (no HTTP) with 10,000 patients under care,
every tenth a member of one sponsor's roster; the sponsor's Group (1,000 patients) and
then the whole organisation (10,000) are exported by the service itself, as the
background run does. The process's caches are kept small here (the aggregates', the
data keys' and the sealing mapper's stream keys): they are bounded anyway (2,000
charts, 10,000 keys, 100,000 streams by default) and would otherwise fill while the
larger export runs, which is the caches, not the export.
CARELEDGER_EXPORT_SCALE_PATIENTS sizes the run.
"""

import os
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest

from api.bootstrap import build
from api.container import Container
from application.context import Actor, RequestContext, Role
from application.fhir.export_jobs import BulkExports, ExportJob
from domain.values import ContactDetails, HumanName
from domain.vocabulary import AdministrativeSex, Plan, Purpose
from tests.conftest import ORG, make_settings

PATIENTS = int(os.environ.get("CARELEDGER_EXPORT_SCALE_PATIENTS", "10000"))
SPONSOR = "scale-sponsor"  # a tenth of the patients
WARM_UP = "warm-up-sponsor"  # a hundredth
CLINICIAN = RequestContext(Actor("dr-scale", Role.CLINICIAN, ORG), Purpose.TREAT, "scale")
ADMIN = RequestContext(Actor("admin-scale", Role.ADMIN, ORG), Purpose.HOPERAT, "scale")
MIB = 1024 * 1024


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Container]:
    monkeypatch.setenv("CARELEDGER_AGGREGATE_CACHE_MAXSIZE", "100")
    settings = make_settings(f"sqlite:///{tmp_path / 'scale.db'}", tmp_path / "var")
    container = build(settings.model_copy(update={"key_cache_size": 100}))
    container.ledger.mapper._stream_keys_max = 100  # type: ignore[attr-defined]
    today = datetime.now(UTC).date()
    try:
        for number in range(PATIENTS):
            registered = container.patients.register(
                CLINICIAN,
                mrn=f"SCALE-{number:06d}",
                name=HumanName("Ada", f"Scale{number}"),
                birth_date=date(1980, 1, 1) + timedelta(days=number % 9000),
                sex=AdministrativeSex.FEMALE,
                contact=ContactDetails(phone="+1-555-0100"),
            )
            sponsor = SPONSOR if number % 10 == 0 else WARM_UP if number % 100 == 5 else None
            container.memberships.enrol(
                ADMIN,
                patient_id=UUID(registered.result["id"]),
                plan=Plan.EMPLOYER if sponsor else Plan.INDIVIDUAL,
                sponsor_id=sponsor,
                annual_fee_cents=0,
                starts_on=today - timedelta(days=1),
                ends_on=today + timedelta(days=300),
            )
        container.catch_up()
        yield container
    finally:
        container.close()


def run(exports: BulkExports, group: str | None) -> tuple[ExportJob, int, float]:
    """The export's job, the peak memory above the start while it ran, and seconds."""
    started = time.monotonic()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    job = exports.kick_off(
        CLINICIAN,
        base="http://scale/fhir",
        request="http://scale/fhir/$export",
        params=[],
        group=group,
    )
    while job.state == "running":
        time.sleep(0.05)
    _, peak = tracemalloc.get_traced_memory()
    assert job.state == "complete", job.state
    return job, peak - base, time.monotonic() - started


def test_ten_times_the_patients_export_in_the_same_memory(seeded: Container) -> None:
    exports = seeded.exports
    assert exports is not None
    tracemalloc.start()
    try:
        run(exports, WARM_UP)  # warms what a first export loads once (imports, statements)
        small, small_peak, small_seconds = run(exports, SPONSOR)
        large, large_peak, large_seconds = run(exports, None)
    finally:
        tracemalloc.stop()
    assert small.patients == PATIENTS // 10 and large.patients == PATIENTS
    assert large.counts == {"Patient": PATIENTS, "Coverage": PATIENTS}
    size = sum(
        len(chunk)
        for kind in large.counts
        for chunk in exports.files.read(large.id, f"{kind}.ndjson")
    )
    print(
        f"\nexport of {small.patients}: peak +{small_peak / MIB:.2f} MiB in {small_seconds:.1f} s; "
        f"of {large.patients}: peak +{large_peak / MIB:.2f} MiB in {large_seconds:.1f} s; "
        f"{size / MIB:.1f} MiB of NDJSON"
    )
    # No more than the smaller export's peak, with room for noise; holding the larger
    # export's lines (their size, and more as Python objects) would be far beyond it.
    allowance = small_peak * 1.25 + MIB / 2
    assert large_peak <= allowance
    if PATIENTS >= 10_000:
        assert size > 4 * allowance, "the test could not tell streaming from holding"
