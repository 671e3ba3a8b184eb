"""The README's walk-through runs as written against a live server, and each step prints
what the README says it prints (ids aside, which are new on every run)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.server import BIN, running_server

pytestmark = pytest.mark.e2e
README = Path(__file__).resolve().parents[2] / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", flags=re.DOTALL | re.MULTILINE)
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MARK = "::readme step {}::"


def walkthrough() -> list[tuple[str, str | None]]:
    """Each ``sh`` block of the walk-through, with the ``text`` block after it (its
    expected output), if there is one."""
    section = README.read_text().split("\n## Walk-through\n", 1)[1].split("\n## ", 1)[0]
    blocks = FENCE.findall(section)
    steps: list[tuple[str, str | None]] = []
    for (language, body), after in zip(blocks, [*blocks[1:], ("", "")], strict=True):
        if language == "sh":
            steps.append((body, after[1] if after[0] == "text" else None))
        else:
            assert language == "text", f"a walk-through block is sh or its output: {body!r}"
    return steps


def same_output(text: str) -> list[str]:
    return [UUID.sub("<id>", line.rstrip()) for line in text.strip().splitlines()]


def test_the_walkthrough_covers_every_kind_of_user() -> None:
    script = "\n".join(body for body, _ in walkthrough())
    for step in (
        "careledger token --role clinician",  # a clinician's timeline
        "/timeline",
        "/v1/memberships",
        "/v1/subscribers",  # a downstream feed
        "/feed",
        "/replay",  # an auditor's replay and break-glass review
        "X-Break-Glass",
        "/review",
        "careledger token --role patient",  # a patient's own access log
        "/v1/me/access-log",
        "/disclosures",
    ):
        assert step in script, step
    # Every step but the first (the tokens) shows what it prints.
    assert all(expected is not None for _, expected in walkthrough()[1:])


def _serve_args() -> list[str]:
    """``--create`` where the CLI refuses to open a SQLite store that is not there yet."""
    usage = subprocess.run(
        [str(BIN / "careledger"), "serve", "--help"], capture_output=True, text=True, check=True
    ).stdout
    return ["--create"] if "--create" in usage else []


def test_the_walkthrough_works_as_written(tmp_path: Path) -> None:
    assert shutil.which("jq"), "the walk-through uses jq"
    # The blocks call .venv/bin/careledger relative to the project, as a reader would.
    (tmp_path / ".venv").symlink_to(BIN.parent)
    steps = walkthrough()
    script = "set -euo pipefail\n" + "\n".join(
        f"echo '{MARK.format(n)}'\n{body}" for n, (body, _) in enumerate(steps)
    )
    with running_server(f"sqlite:///{tmp_path / 'var' / 'walk.db'}", tmp_path, *_serve_args()) as (
        base,
        env,
        _,
    ):
        result = subprocess.run(
            ["bash", "-c", script],
            cwd=tmp_path,
            env={**env, "BASE": base},
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    assert result.returncode == 0, result.stderr + result.stdout
    printed = re.split(r"::readme step \d+::\n", result.stdout)[1:]
    assert len(printed) == len(steps)
    for n, ((body, expected), output) in enumerate(zip(steps, printed, strict=True)):
        if expected is not None:
            assert same_output(output) == same_output(expected), f"step {n}:\n{body}"
