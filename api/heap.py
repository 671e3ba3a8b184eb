"""The collector and the process's long-lived heap.

A full collection walks every object the collector tracks: after start-up that is the
imported libraries, the wired container and its caches, over 80,000 objects, and a
walk over them was the tail of a replay (docs/benchmarks.md, A2). Once the container
is built, what is alive is kept for the process's life, so it is moved to the
collector's permanent generation (``gc.freeze``), which full collections skip. Frozen
objects are still freed by their reference counts; only a cycle among them waits for
``thaw``, which a container's close calls.
"""

import gc


def settle() -> None:
    """Freeze what is alive now (cheap to call again)."""
    # Not collected first: at start-up that finds about 70 objects and is most of a build.
    gc.freeze()


def thaw() -> None:
    """Give the frozen objects back to the collector (a closed container's among them)."""
    gc.unfreeze()
