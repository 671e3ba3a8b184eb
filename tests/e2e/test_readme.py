"""The README's walk-through runs as written against a live server."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.server import BIN, running_server

pytestmark = pytest.mark.e2e
README = Path(__file__).resolve().parents[2] / "README.md"


def walkthrough_blocks() -> list[str]:
    text = README.read_text()
    section = text.split("## Walk-through", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)


def test_the_walkthrough_has_the_promised_steps() -> None:
    script = "\n".join(walkthrough_blocks())
    for step in (
        "careledger token",
        "/v1/patients",
        "/entries",
        "/timeline",
        "/v1/memberships",
        "/v1/subscribers",
    ):
        assert step in script


def test_the_walkthrough_works_as_written(tmp_path: Path) -> None:
    # The blocks call .venv/bin/careledger relative to the project, as a reader would.
    (tmp_path / ".venv").symlink_to(BIN.parent)
    with running_server(f"sqlite:///{tmp_path / 'var' / 'walk.db'}", tmp_path) as (
        base,
        env,
        _,
    ):
        script = "set -euo pipefail\n" + "\n".join(walkthrough_blocks())
        result = subprocess.run(
            ["bash", "-c", script],
            cwd=tmp_path,
            env={**env, "BASE": base},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stderr + result.stdout
    assert re.search(r"registered patient [0-9a-f-]{36}", result.stdout)
    assert '{"plan":"employer","sponsor_id":"acme-corp","status":"active"}' in result.stdout
    assert '{"kind":"encounter","code":"185317003","status":"active"}' in result.stdout
    assert '{"kind":"observation","code":"8867-4","status":"active"}' in result.stdout
    assert '{"given":"Ada","family":"Example"}' in result.stdout
    assert '{"type":"EntryRecorded","kind":"medication","code":"197361"}' in result.stdout
    assert '"status":422' in result.stdout and '"field":"modality"' in result.stdout
    assert shutil.which("jq"), "the walk-through uses jq"
