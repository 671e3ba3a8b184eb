"""Bulk export files are sealed in chunks: what is written reads back exactly, and a
flipped byte, a dropped or swapped chunk, a cut-short file or a file moved to another
export fails authentication rather than serving altered NDJSON."""

from pathlib import Path
from uuid import uuid4

import pytest

from application.errors import IntegrityViolation
from infrastructure.export_files import CHUNK, SealedExportFiles

LINE = b'{"resourceType":"Patient","id":"x","name":[{"family":"Quillfeather"}]}\n'


def written(tmp_path: Path, lines: int) -> tuple[SealedExportFiles, object, Path]:
    files = SealedExportFiles(tmp_path / "exports", stale_seconds=3600)
    files.open()
    export_id = uuid4()
    writer = files.writer(export_id, "Patient.ndjson")
    for _ in range(lines):
        writer.write(LINE)
    writer.finish()
    return files, export_id, files.directory / export_id.hex / "Patient.ndjson"


def read_all(files: SealedExportFiles, export_id: object) -> bytes:
    return b"".join(files.read(export_id, "Patient.ndjson"))  # type: ignore[arg-type]


def test_what_is_written_reads_back_exactly_and_is_not_plaintext(tmp_path: Path) -> None:
    lines = 3 * CHUNK // len(LINE)  # several chunks
    files, export_id, path = written(tmp_path, lines)
    assert read_all(files, export_id) == LINE * lines
    stored = path.read_bytes()
    assert b"Quillfeather" not in stored and b"resourceType" not in stored


def chunk_bounds(stored: bytes) -> list[tuple[int, int]]:
    bounds, at = [], 0
    while at < len(stored):
        length = int.from_bytes(stored[at : at + 4], "big")
        bounds.append((at, at + 4 + 12 + length))
        at += 4 + 12 + length
    return bounds


@pytest.mark.parametrize("damage", ["flip", "drop", "swap", "cut", "last-dropped"])
def test_a_damaged_file_fails_authentication(tmp_path: Path, damage: str) -> None:
    files, export_id, path = written(tmp_path, 3 * CHUNK // len(LINE))
    stored = path.read_bytes()
    bounds = chunk_bounds(stored)
    assert len(bounds) >= 3
    (a0, a1), (b0, b1) = bounds[0], bounds[1]
    if damage == "flip":
        altered = stored[:40] + bytes([stored[40] ^ 1]) + stored[41:]
    elif damage == "drop":
        altered = stored[:a0] + stored[b0:]
    elif damage == "swap":
        altered = stored[b0:b1] + stored[a0:a1] + stored[b1:]
    elif damage == "cut":
        altered = stored[:-5]
    else:
        altered = stored[: bounds[-1][0]]
    path.write_bytes(altered)
    with pytest.raises(IntegrityViolation):
        read_all(files, export_id)


def test_a_file_moved_to_another_export_or_name_fails(tmp_path: Path) -> None:
    files, export_id, path = written(tmp_path, 10)
    other = uuid4()
    files.writer(other, "Patient.ndjson").finish()
    target = files.directory / other.hex / "Patient.ndjson"
    target.write_bytes(path.read_bytes())
    with pytest.raises(IntegrityViolation):
        read_all(files, other)
    (path.parent / "Observation.ndjson").write_bytes(path.read_bytes())
    with pytest.raises(IntegrityViolation):
        b"".join(files.read(export_id, "Observation.ndjson"))


def test_removing_an_export_forgets_its_key_and_its_files(tmp_path: Path) -> None:
    files, export_id, path = written(tmp_path, 10)
    files.remove(export_id)
    assert not path.parent.exists()
    with pytest.raises(IntegrityViolation):
        read_all(files, export_id)


def test_a_new_process_clears_what_an_old_one_left_once_stale(tmp_path: Path) -> None:
    old, _, path = written(tmp_path, 10)
    fresh = SealedExportFiles(tmp_path / "exports", stale_seconds=3600)
    fresh.open()
    assert path.exists()  # not stale yet: it may be another live process's
    later = SealedExportFiles(tmp_path / "exports", stale_seconds=0)
    later.open()
    assert not old.directory.exists() and later.directory.exists()
