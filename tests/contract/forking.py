"""Run a check in a real forked child, which reports back through a pipe."""

import os
from collections.abc import Callable


def report_from_forked_child(report: Callable[[], bytes]) -> bytes:
    """Fork; the child sends ``report()`` and leaves at once, whatever happens (it must
    never run on into the rest of the tests on this process's connections); the parent
    returns what it sent, and fails if the child did not finish cleanly."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        status = 1
        try:
            os.close(read_end)
            os.write(write_end, report())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        sent = pipe.read()
    _, wait_status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(wait_status) == 0, "the forked child's report failed"
    return sent
