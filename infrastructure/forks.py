"""State a forked child must not share with its parent: random material handed out
ahead (nonces, reserved patient ids) and locks another thread may hold at the fork."""

import os
import weakref
from collections.abc import Callable


def call_in_forked_child(reset: Callable[[], None]) -> None:
    """Call ``reset`` (a bound method) first thing in every child forked from now on,
    for as long as its object lives (the hook holds it weakly)."""
    ref = weakref.WeakMethod(reset)

    def after_fork() -> None:
        alive = ref()
        if alive is not None:
            alive()

    os.register_at_fork(after_in_child=after_fork)
