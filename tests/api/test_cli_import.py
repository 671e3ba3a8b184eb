"""`careledger import FILE|DIR`: an operator imports a directory of FHIR charts. Each
transaction file is written whole or not at all, a bad file is named with its reason
and the others go on, an NDJSON chart is one transaction, and importing the same
files again writes nothing."""

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import OperationalError

from api.cli_import import WAVE, import_files
from api.container import Container
from api.import_plans import planned_file, planner
from application.context import Role
from tests.api.test_cli_first_use import careledger, workdir
from tests.contract.stories import ctx
from tests.fhir.test_fhir_synthea_import import FIXTURE as SYNTHEA
from tests.fhir.test_fhir_transactions import FIXTURE

__all__ = ["workdir"]


def written(container: Container) -> int:
    """Events in the log other than access records."""
    recorder: Any = container.ledger.recorder
    notifications = recorder.select_notifications(start=1, limit=1_000_000)
    return sum(1 for n in notifications if not n.topic.startswith("domain.access_record:"))


def charts(directory: Path) -> Path:
    """A directory as an export might leave it: a transaction Bundle, an NDJSON chart,
    a Bundle with one entry this server cannot hold, and a file that is not JSON."""
    directory.mkdir()
    shutil.copy(FIXTURE, directory / "a-chart.json")
    bundle = json.loads(FIXTURE.read_text())
    patient = bundle["entry"][0]["resource"]
    ndjson = [
        {**patient, "id": "p-1", "identifier": [{"system": "urn:x", "value": "ND-1"}]},
        {
            **bundle["entry"][2]["resource"],
            "id": "o-1",
            "subject": {"reference": "Patient/p-1"},
        },
    ]
    lines = "\n".join(json.dumps(resource) for resource in ndjson)
    (directory / "b-chart.ndjson").write_text(lines + "\n")
    broken = json.loads(FIXTURE.read_text())
    broken["entry"][0]["resource"]["identifier"][0]["value"] = "BROKEN-1"
    broken["entry"][4]["resource"]["encounter"] = {"reference": "urn:uuid:x"}
    (directory / "c-broken.json").write_text(json.dumps(broken))
    (directory / "d-garbage.json").write_text("{not json")
    return directory


def test_a_directory_imports_file_by_file_and_again_writes_nothing(
    container: Container, tmp_path: Path
) -> None:
    directory = charts(tmp_path / "charts")
    files = sorted(directory.iterdir())
    clinician = ctx(Role.CLINICIAN, "importer")
    before = written(container)
    steps: list[int] = []
    summary = import_files(container, clinician, files, steps.append)
    assert steps == [1, 1, 1, 1]
    assert (summary.files, summary.imported, summary.resources) == (4, 2, 14 + 2)
    assert set(summary.failed) == {str(files[2]), str(files[3])}
    assert "Bundle.entry[4].resource.Observation.encounter" in summary.failed[str(files[2])]
    after = written(container)
    # Two charts: each chart's registration and entries, its consent and MRN claim.
    assert after - before == (1 + 13 + 2) + (1 + 1 + 2)
    # And nothing of the broken chart: its MRN is free in the directory
    container.catch_up()
    assert container.charts.views.directory.by_mrn(clinician.actor.org, "BROKEN-1", 1) == []
    again = import_files(container, clinician, files, steps.append)
    assert (again.repeated, again.resources) == (2, 0)
    assert written(container) == after


def test_the_command_shows_a_summary_and_names_each_failed_file(
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARELEDGER_DATABASE_URL", f"sqlite:///{workdir / 'clinic.db'}")
    assert careledger("migrate").exit_code == 0
    directory = charts(workdir / "charts")
    result = careledger("import", str(directory))
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["files"] == 4 and summary["imported"] == 2 and summary["failed"] == 2
    assert summary["resources"] == 16
    failures = [line for line in result.stderr.splitlines() if line.startswith("careledger:")]
    assert [line.split(":")[1].strip() for line in failures] == [
        str(directory / "c-broken.json"),
        str(directory / "d-garbage.json"),
    ]
    assert "importing" in result.stderr  # the progress bar
    missing = careledger("import", str(workdir / "nowhere"))
    assert missing.exit_code == 2 and "no such file" in missing.stderr


def test_a_synthea_export_imports_with_its_practitioner_and_hospital_bundles(
    container: Container, tmp_path: Path
) -> None:
    """Synthea writes the hospitals and practitioners in Bundles of their own, beside
    one per patient: every file imports, and only the patient's chart is written."""
    directory = tmp_path / "synthea"
    directory.mkdir()
    bundle = json.loads(SYNTHEA.read_text())
    hospitals = {**bundle, "entry": bundle["entry"][:2]}
    practitioners = {**bundle, "entry": bundle["entry"][2:3]}
    (directory / "hospitalInformation1.json").write_text(json.dumps(hospitals))
    (directory / "practitionerInformation1.json").write_text(json.dumps(practitioners))
    (directory / "Dianna947_Lang846.json").write_text(json.dumps(bundle))
    before = written(container)
    clinician = ctx(Role.CLINICIAN, "importer")
    summary = import_files(container, clinician, sorted(directory.iterdir()), lambda _: None)
    assert summary.failed == {} and summary.imported == 3
    # 20 of the patient's 32 entries are written; the 3 + 12 others are not kept
    assert (summary.resources, summary.not_kept) == (20, 3 + 12)
    # The chart: its registration and 19 entries, its consent and MRN claim
    assert written(container) - before == 1 + 19 + 2


def ndjson_chart(mrn: str, family: str, observations: int = 2) -> str:
    """A patient's NDJSON chart: a Patient and heart-rate Observations."""
    bundle = json.loads(FIXTURE.read_text())
    patient = {
        **bundle["entry"][0]["resource"],
        "id": "p-1",
        "identifier": [{"system": "urn:x", "value": mrn}],
        "name": [{"family": family, "given": ["Ada"]}],
    }
    observation = {**bundle["entry"][2]["resource"], "subject": {"reference": "Patient/p-1"}}
    lines = [patient] + [{**observation, "id": f"o-{n}"} for n in range(observations)]
    return "\n".join(json.dumps(resource) for resource in lines) + "\n"


def imported_mrns(container: Container, mrns: list[str]) -> set[str]:
    container.catch_up()
    directory = container.charts.views.directory
    return {mrn for mrn in mrns if directory.by_mrn(ORG_OF_IMPORTER, mrn, 1)}


ORG_OF_IMPORTER = ctx(Role.CLINICIAN, "importer").actor.org


def test_files_in_flight_together_are_answered_as_one_at_a_time(
    container: Container, tmp_path: Path
) -> None:
    """The importer plans files in waves whose saves share a commit: each file is
    still all or nothing, and its outcome is the one it would have alone, in file
    order. A second claim of an MRN fails alone; a copy of a file in flight is
    answered as imported before."""
    directory = tmp_path / "charts"
    directory.mkdir()
    (directory / "a.ndjson").write_text(ndjson_chart("MRN-A", "First"))
    (directory / "b.ndjson").write_text(ndjson_chart("MRN-B", "Second"))
    (directory / "c.ndjson").write_text(ndjson_chart("MRN-A", "Another"))
    (directory / "d.ndjson").write_text(ndjson_chart("MRN-A", "First"))  # a's bytes
    (directory / "e.ndjson").write_text(ndjson_chart("MRN-E", "Fifth"))
    files = sorted(directory.iterdir())
    before = written(container)
    steps: list[int] = []
    summary = import_files(container, ctx(Role.CLINICIAN, "importer"), files, steps.append)
    assert steps == [1] * 5
    assert (summary.imported, summary.repeated, summary.resources) == (3, 1, 3 * 3)
    assert list(summary.failed) == [str(files[2])]
    assert "another patient of this organisation has this MRN" in summary.failed[str(files[2])]
    # Three charts, each its registration, 2 entries, consent and MRN claim.
    assert written(container) - before == 3 * (1 + 2 + 2)


def test_a_wave_is_looked_up_at_once_and_only_its_files_imported_before_are_answered(
    container: Container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether a file was imported before is asked once for each wave of files, not
    once a file: each question is a read that waits for the commit in flight."""
    directory = tmp_path / "charts"
    directory.mkdir()
    for n in range(WAVE + 3):
        (directory / f"{n:02d}.ndjson").write_text(ndjson_chart(f"MRN-W{n}", f"Wave{n}"))
    files = sorted(directory.iterdir())
    importer = ctx(Role.CLINICIAN, "importer")
    first = import_files(container, importer, files[::2], lambda _n: None)
    assert first.imported == (WAVE + 4) // 2
    recorder = container.ledger.recorder
    lookups: list[int] = []
    answered: list[str] = []
    claimed_scopes, find_outcome = recorder.claimed_scopes, recorder.find_outcome
    monkeypatch.setattr(
        recorder,
        "claimed_scopes",
        lambda scopes: lookups.append(len(scopes)) or claimed_scopes(scopes),
    )
    monkeypatch.setattr(
        recorder, "find_outcome", lambda scope: answered.append(scope) or find_outcome(scope)
    )
    before = written(container)
    again = import_files(container, importer, files, lambda _n: None)
    # Two waves, one lookup each; only the files imported before are answered from claims
    assert lookups == [WAVE, 3]
    assert len(answered) == first.imported
    assert (again.repeated, again.imported, again.failed) == (first.imported, 5, {})
    assert written(container) - before == (len(files) - first.imported) * (1 + 2 + 2)


def test_a_file_seen_earlier_in_the_run_is_answered_as_imported_after_its_wave_lookup(
    container: Container, tmp_path: Path
) -> None:
    """A wave's lookup is made before its files are written: a copy of a file written
    since (after a batch Bundle settled it, or a copy settled it) is still answered
    from its claim, as imported before, and nothing is disclosed or written twice."""
    directory = tmp_path / "charts"
    directory.mkdir()
    chart_a, chart_x = ndjson_chart("MRN-SA", "Seen"), ndjson_chart("MRN-SX", "Twice")
    empty_batch = json.dumps({"resourceType": "Bundle", "type": "batch", "entry": []})
    for name, text in [
        ("1-a.ndjson", chart_a),
        ("2-batch.json", empty_batch),
        ("3-a.ndjson", chart_a),
    ]:
        (directory / name).write_text(text)
    other = tmp_path / "other"
    other.mkdir()
    for name, text in [
        ("1-a.ndjson", chart_a.replace("MRN-SA", "MRN-SB")),
        ("2-x.ndjson", chart_x),
    ]:
        (other / name).write_text(text)
    (other / "3-x.ndjson").write_text(chart_x)
    (other / "4-a.ndjson").write_text(chart_a.replace("MRN-SA", "MRN-SB"))
    importer = ctx(Role.CLINICIAN, "importer")
    before = written(container)
    first = import_files(container, importer, sorted(directory.iterdir()), lambda _n: None)
    assert (first.imported, first.repeated, first.failed) == (2, 1, {})
    second = import_files(container, importer, sorted(other.iterdir()), lambda _n: None)
    assert (second.imported, second.repeated, second.failed) == (2, 2, {})
    # Three charts, each its registration, 2 entries, consent and MRN claim
    assert written(container) - before == 3 * (1 + 2 + 2)


def test_a_commit_that_fails_mid_import_fails_its_files_whole_and_no_other(
    container: Container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store fails the second commit of an import: the files it held are named as
    failed and none of their events is in the log, and every file counted as
    imported is whole in it."""
    directory = tmp_path / "charts"
    directory.mkdir()
    mrns = [f"MRN-{n}" for n in range(12)]
    for n, mrn in enumerate(mrns):
        (directory / f"chart-{n:02d}.ndjson").write_text(ndjson_chart(mrn, f"Family{n}", 5))
    group_writes = container.ledger.group_writes
    assert group_writes is not None
    commit, calls = group_writes.commit, []

    def failing_once(group: Any) -> Any:
        calls.append(len(group))
        if len(calls) == 2:
            raise OperationalError("the disk went away")
        return commit(group)

    monkeypatch.setattr(group_writes, "commit", failing_once)
    before = written(container)
    files = sorted(directory.iterdir())
    summary = import_files(container, ctx(Role.CLINICIAN, "importer"), files, lambda _: None)
    # The first wave's files shared one commit; the second's failed, whole.
    assert calls[0] == WAVE
    assert len(summary.failed) == calls[1] >= 1
    assert summary.imported == len(files) - len(summary.failed)
    names = {str(path): mrn for path, mrn in zip(files, mrns, strict=True)}
    kept = imported_mrns(container, mrns)
    assert kept == {mrn for name, mrn in names.items() if name not in summary.failed}
    assert written(container) - before == summary.imported * (1 + 5 + 2)
    assert summary.resources == summary.imported * 6


def test_files_planned_by_planning_processes_import_as_planned_here(
    container: Container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--jobs 2`: another process reads and plans the files, without the service's
    settings in its environment, and this one writes them in file order, each all or
    nothing; a refused entry and a file that is not JSON are named as in-process, and
    importing again writes nothing."""
    directory = charts(tmp_path / "charts")
    files = sorted(directory.iterdir())
    clinician = ctx(Role.CLINICIAN, "importer")
    before = written(container)
    monkeypatch.setenv("CARELEDGER_MASTER_KEY", "not-for-planners")
    planners = planner(2)
    assert planners is not None
    submitted: list[object] = []
    submit = planners.submit
    monkeypatch.setattr(planners, "submit", lambda fn, *a: submitted.append(a) or submit(fn, *a))
    try:
        assert planners.submit(os.getenv, "CARELEDGER_MASTER_KEY").result() is None
        assert os.environ["CARELEDGER_MASTER_KEY"] == "not-for-planners"  # here, restored
        steps: list[int] = []
        summary = import_files(container, clinician, files, steps.append, planners=planners)
        assert [a for a in submitted[1:]] == [(path,) for path in files]  # planned there
        assert steps == [1, 1, 1, 1]
        assert (summary.files, summary.imported, summary.resources) == (4, 2, 14 + 2)
        assert set(summary.failed) == {str(files[2]), str(files[3])}
        assert "Bundle.entry[4].resource.Observation.encounter" in summary.failed[str(files[2])]
        with pytest.raises(ValueError) as not_json:
            json.loads(files[3].read_bytes())
        assert summary.failed[str(files[3])] == str(not_json.value)
        assert planned_file(files[3]).unreadable == str(not_json.value)
        after = written(container)
        assert after - before == (1 + 13 + 2) + (1 + 1 + 2)
        again = import_files(container, clinician, files, steps.append, planners=planners)
        assert (again.repeated, again.resources, len(again.failed)) == (2, 0, 2)
        assert written(container) == after
    finally:
        planners.shutdown()
    assert planner(1) is None  # one job: planned in-process
    assert planner(2, files=3) is None  # a few files: not worth a process's start
