"""State a forked child must not share with its parent: random material drawn ahead
(nonces, the key ring's pool of new patients' ids) and locks another thread may hold
at the fork."""

import os
import weakref
from collections.abc import Callable


def call_in_forked_child(reset: Callable[[], None]) -> None:
    """Call ``reset`` (a bound method) first thing in every child forked from now on,
    for as long as its object lives. The hook holds it weakly; hooks cannot be removed,
    so one stays behind, doing nothing, for every object that is gone."""
    ref = weakref.WeakMethod(reset)

    def after_fork() -> None:
        alive = ref()
        if alive is not None:
            alive()

    os.register_at_fork(after_in_child=after_fork)
