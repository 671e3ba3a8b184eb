"""The collector and the process's long-lived heap.

A full collection walks every object the collector tracks: after start-up that is the
imported libraries, the wired container and its caches, well over 100,000 objects, and
a walk over them is the tail of a replay (docs/benchmarks.md, A2). Once the container
is built, what is alive is kept for the process's life, so it is collected once and
moved to the collector's permanent generation (``gc.freeze``), which full collections
skip. Frozen objects are still freed by their reference counts; only a cycle among them
would wait for ``thaw``, which a container's close calls.
"""

import gc


def settle() -> None:
    """Collect what start-up left, then freeze the rest (cheap to call again)."""
    gc.collect()
    gc.freeze()


def thaw() -> None:
    """Give the frozen objects back to the collector (a closed container's among them)."""
    gc.unfreeze()
