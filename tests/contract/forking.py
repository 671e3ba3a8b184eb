"""Run a check in a real forked child, which reports back through a pipe."""

import os
from collections.abc import Callable


def report_from_forked_child(report: Callable[[], bytes]) -> bytes:
    """Fork; the child sends ``report()`` and leaves at once (touching nothing of this
    process's connections); the parent returns what it sent."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read_end)
        os.write(write_end, report())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        sent = pipe.read()
    os.waitpid(child, 0)
    return sent
