"""Random 96-bit AES-GCM nonces, drawn from the OS a batch at a time, for the sealing
mapper and the local KEK's key wrapping."""

import os
import threading

from infrastructure.forks import call_in_forked_child


class Nonces:
    """Random 96-bit GCM nonces, drawn from the OS 1,024 at a time.

    One ``os.urandom`` call per event cost a save about as much as the encryption
    itself (docs/benchmarks.md). The nonces are as random as before, and public
    anyway (each is stored in its record's header). A forked child must never hand out
    its parent's remaining nonces (a repeated nonce under one key breaks GCM), so it
    drops them.
    """

    _BATCH = 1024 * 12

    def __init__(self) -> None:
        self._drop()
        call_in_forked_child(self._drop)

    def _drop(self) -> None:
        # A new lock too: another thread may have held the parent's at the fork.
        self._lock = threading.Lock()
        self._buffer = b""
        self._next = 0

    def take(self) -> bytes:
        with self._lock:
            at = self._next
            if at + 12 > len(self._buffer):
                self._buffer, at = os.urandom(self._BATCH), 0
            self._next = at + 12
            return self._buffer[at : at + 12]
