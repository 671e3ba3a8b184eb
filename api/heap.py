"""The collector and the process's long-lived heap.

A full collection walks every object the collector tracks: after start-up that is the
imported libraries, the wired container and its caches, over 80,000 objects, and a
walk over them was the tail of a replay (docs/benchmarks.md, A2), and a third of a
bulk import's time (W2). Once a long-running process (``careledger serve``, each of its
uvicorn workers, ``worker``, ``relay``, ``import``) has built what it serves, what is
alive is kept for the process's life, so it is moved to the collector's permanent
generation (``gc.freeze``), which full collections skip.
Frozen objects are still freed by their reference counts; only a cycle among them
waits for ``thaw``, which closing what was served calls.

It is done at a process's entry, once, and not in ``build()``: a routed process builds
a container per organisation, and a test process builds hundreds of containers.
"""

import gc
from collections.abc import Callable
from typing import Protocol


class Served(Protocol):
    """A container, or the organisations' containers: closing it runs its closers."""

    closers: list[Callable[[], None]]


def settle(served: Served) -> None:
    """Freeze what is alive now, until ``served`` closes."""
    # Not collected first: at start-up that finds about 70 objects and is most of a build.
    gc.freeze()
    served.closers.append(thaw)


def thaw() -> None:
    """Give the frozen objects back to the collector (a closed container's among them)."""
    gc.unfreeze()
