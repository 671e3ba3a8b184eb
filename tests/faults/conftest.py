"""The fault suite's figures: each experiment records a row, and the run ends with
them as one table (``make faults`` prints it; CI's short run does too)."""

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.table import Table

from tests.conftest import drop_database, new_database
from tests.faults.figures import FIGURES


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:
    """An experiment's own database on the shared server, dropped after it."""
    made, url = new_database(postgres_server)
    try:
        yield url
    finally:
        drop_database(postgres_server, made)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    table = Table(title="Fault experiments")
    for column in ("fault", "cycles", "acknowledged", "lost", "duplicated", "503/507", "500"):
        table.add_column(column, justify="left" if column == "fault" else "right")
    table.add_column("recovery (s): max / median", justify="right")
    table.add_column("note")
    table.add_column("result")
    for row in FIGURES:
        table.add_row(
            row.fault,
            str(row.cycles),
            f"{row.acknowledged:,}",
            str(row.lost),
            str(row.duplicated),
            str(row.unavailable),
            str(row.server_errors),
            row.recovery_text(),
            row.note,
            "held" if row.passed else "FAILED",
        )
    # The reporter's own stream: pytest has stopped capturing by now.
    stream = getattr(terminalreporter._tw, "_file", None) or sys.stdout
    Console(file=stream, width=120).print(table)
    target = os.environ.get("CARELEDGER_FAULTS_REPORT")
    if target:
        Path(target).write_text(json.dumps([row.as_dict() for row in FIGURES], indent=2))
