"""What every benchmark reports beside its figures: the machine and the exact command."""

import contextlib
import os
import platform
import shlex
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any


def machine(*packages: str) -> dict[str, Any]:
    """Platform, CPU model and count, Python, and the versions of ``packages``."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        **{name: version(name) for name in packages},
    }


def command_line(module: str) -> str:
    """The command that reproduces this run, relative to the project root."""
    python = Path(sys.executable)
    with contextlib.suppress(ValueError):
        python = python.relative_to(Path.cwd())
    return shlex.join([str(python), "-m", module, *sys.argv[1:]])


def yes(flag: bool) -> str:
    return "yes" if flag else "**no**"
