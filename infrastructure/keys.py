"""Envelope encryption: data keys wrapped by a key-encryption key (KEK).

Each patient has one AES-256-GCM data key for all of their streams. Non-patient
streams use the system key, access records the audit key, and the hash chain is keyed
by the chain key. The data keys live in the store, wrapped by the KEK; the KEK lives
outside it (configuration, a key file, or later a KMS behind ``KeyEncryptionKey``).
"""

import hmac
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from application.errors import DataKeyDestroyed, IntegrityViolation
from infrastructure.forks import call_in_forked_child
from infrastructure.nonces import Nonces

SYSTEM_KEY_ID = UUID(int=1)
AUDIT_KEY_ID = UUID(int=2)
CHAIN_KEY_ID = UUID(int=3)
_SERVICE_KEYS = (SYSTEM_KEY_ID, AUDIT_KEY_ID, CHAIN_KEY_ID)


class _Loaded(NamedTuple):
    """An unwrapped data key in memory."""

    at: float  # when it was loaded (the cache's time bound counts from here)
    aead: AESGCM
    key: bytes


_WRAP_CONTEXT = b"careledger-data-key\x00"
_wrap_nonces = Nonces()  # keys are wrapped a batch at a time (KeyRing.new_patient_id)


class WrongMasterKey(Exception):
    """The KEK cannot unwrap this store's data keys."""


class KeyEncryptionKey(Protocol):
    """The port a KMS or Vault transit backend implements to replace the local KEK."""

    @property
    def kek_id(self) -> str: ...

    def wrap(self, key_id: UUID, data_key: bytes) -> bytes: ...

    def unwrap(self, key_id: UUID, wrapped: bytes) -> bytes:
        """Raise ``WrongMasterKey`` if this KEK did not wrap it."""
        ...


class LocalKeyEncryptionKey:
    """A 256-bit KEK held in memory; AES-256-GCM key wrapping bound to the key id."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise ValueError("the master key must be 32 bytes")
        self._aead = AESGCM(master_key)
        # A fingerprint, so that rows record which KEK wrapped them. It reveals nothing
        # about the key: an HMAC under the key itself of a fixed label.
        self._kek_id = hmac.digest(master_key, b"careledger-kek-id", "sha256")[:8].hex()

    @property
    def kek_id(self) -> str:
        return self._kek_id

    def wrap(self, key_id: UUID, data_key: bytes) -> bytes:
        nonce = _wrap_nonces.take()
        return nonce + self._aead.encrypt(nonce, data_key, _WRAP_CONTEXT + key_id.bytes)

    def unwrap(self, key_id: UUID, wrapped: bytes) -> bytes:
        try:
            return self._aead.decrypt(wrapped[:12], wrapped[12:], _WRAP_CONTEXT + key_id.bytes)
        except InvalidTag:
            message = f"data key {key_id} was not wrapped by KEK {self.kek_id}"
            raise WrongMasterKey(message) from None


@dataclass(frozen=True)
class WrappedKey:
    key_id: UUID
    kek_id: str
    wrapped: bytes | None  # None once destroyed


class KeyTable(Protocol):
    """Where wrapped data keys are stored: one row per key, destroyed in place."""

    def get(self, key_id: UUID) -> WrappedKey | None: ...

    def insert_if_absent(self, key: WrappedKey) -> bool:
        """True if inserted, False if a key with that id exists already."""
        ...

    def insert_all(self, keys: Sequence[WrappedKey]) -> None:
        """Insert new keys in one transaction; refuse it if any id is taken."""
        ...

    def stage(self, key: WrappedKey) -> WrappedKey:
        """Hold a new key until the first transaction that writes events under it.

        Returns the staged key: an earlier one with the same id, if there is one.
        """
        ...

    def staged(self, key_id: UUID) -> WrappedKey | None: ...

    def destroy(self, key_id: UUID) -> bool: ...

    def rewrap(self, keys: list[tuple[str, WrappedKey]]) -> None:
        """Replace each (old KEK id, key) in one transaction, if still under the old KEK."""
        ...

    def not_wrapped_by(self, kek_id: str, limit: int) -> list[WrappedKey]:
        """Live (not destroyed) keys wrapped by any other KEK."""
        ...

    def count_not_wrapped_by(self, kek_id: str) -> int: ...


# New patients' ids are handed out with their keys already stored, this many at a time
# (``KeyRing.new_patient_id``).
RESERVE_BATCH = 128


class KeyRing:
    """Unwrapped data keys, cached in memory with a size bound and a time bound.

    The time bound limits how long another process may keep using the key of a
    patient erased elsewhere.
    """

    def __init__(
        self,
        table: KeyTable,
        kek: KeyEncryptionKey,
        *,
        cache_size: int = 10_000,
        cache_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.table = table
        self.kek = kek
        self.cache_size = cache_size
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._cache: OrderedDict[UUID, _Loaded] = OrderedDict()
        # The ids handed out by ``new_patient_id`` whose registration has not sealed yet.
        self._reserved: OrderedDict[UUID, _Loaded] = OrderedDict()
        self._start_in_this_process()
        call_in_forked_child(self._start_in_this_process)

    def _start_in_this_process(self) -> None:
        """Locks, and a pool of keys stored ahead of the patients they are for (not
        handed out yet). Renewed in a forked child: it must not hand out its parent's
        ids, nor wait on a lock another thread held at the fork. Keys already handed
        out (``_reserved``) stay: the child may seal its parent's registration."""
        self._lock = threading.Lock()
        self._pool: list[tuple[UUID, AESGCM, bytes]] = []
        self._pool_lock = threading.Lock()

    def open(self) -> None:
        """Create the service keys on a new store; refuse a KEK that is not this store's."""
        foreign = self.table.count_not_wrapped_by(self.kek.kek_id)
        if foreign:
            raise WrongMasterKey(
                f"{foreign} data keys are not wrapped by the configured master key "
                f"(KEK id {self.kek.kek_id}); use the store's master key, or finish "
                "`careledger keys rotate`"
            )
        for key_id in _SERVICE_KEYS:
            if self.table.get(key_id) is None:
                # Stored at once: no event transaction is there to carry them.
                data_key = AESGCM.generate_key(256)
                self.table.insert_if_absent(self._wrap(key_id, data_key))
            self._load(key_id, create=False)

    # Use -------------------------------------------------------------------------

    def aead(self, key_id: UUID, *, create: bool = False) -> AESGCM:
        return self._load(key_id, create=create).aead

    def raw(self, key_id: UUID) -> bytes:
        return self._load(key_id, create=False).key

    def new_patient_id(self) -> UUID:
        """A random id for a new patient, whose data key is stored already.

        Storing a new patient's key with their first events cost a registration a
        second table's insert and its check, most of what sealing added to it
        (docs/benchmarks.md); keys stored a batch at a time, in a transaction of their
        own, cost a fraction of that each. A reserved id that is never used leaves a
        key of nobody in the store, which decrypts nothing.
        """
        with self._pool_lock:
            if not self._pool:
                self._pool = self._store_new_keys(RESERVE_BATCH)
            patient_id, aead, data_key = self._pool.pop()
        now = self._clock()
        loaded = _Loaded(now, aead, data_key)
        with self._lock:
            self._keep(patient_id, loaded, now)  # its registration finds it in the cache
            self._reserved[patient_id] = loaded
            self._trim(self._reserved, now)  # under the cache's own bounds
        return patient_id

    def _store_new_keys(self, n: int) -> list[tuple[UUID, AESGCM, bytes]]:
        # One draw from the OS for every id and key (made as uuid4 and generate_key
        # would make them), and every key's cipher made here in one loop, cost less than
        # a draw each and a cipher made in each registration's save (docs/benchmarks.md).
        drawn = os.urandom(48 * n)
        fresh = [
            (UUID(bytes=drawn[at : at + 16], version=4), drawn[at + 16 : at + 48])
            for at in range(0, 48 * n, 48)
        ]
        self.table.insert_all([self._wrap(key_id, data_key) for key_id, data_key in fresh])
        return [(key_id, AESGCM(data_key), data_key) for key_id, data_key in fresh]

    def destroy(self, patient_id: UUID) -> bool:
        """Crypto-shred: the wrapped key is overwritten in the store and forgotten here."""
        if patient_id in _SERVICE_KEYS:
            raise ValueError("service keys are never destroyed")
        destroyed = self.table.destroy(patient_id)
        with self._lock:
            self._cache.pop(patient_id, None)
            self._reserved.pop(patient_id, None)
        return destroyed

    def _load(self, key_id: UUID, *, create: bool) -> _Loaded:
        # Every stored event asks for its key, so a hit takes no lock (a dict read is
        # atomic under the GIL) and does not reorder the cache: keys are evicted in
        # the order loaded, not used. Each is reloaded when its time is up anyway, so
        # recency would only matter for more than ``cache_size`` keys in that time.
        now = self._clock()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached.at < self.cache_seconds:
            return cached
        # Kept after use (bounded), so that a registration retried after its key
        # left the cache still seals under the stored key, not a fresh one.
        reserved = self._reserved.get(key_id) if create else None
        if reserved is not None and now - reserved.at < self.cache_seconds:
            with self._lock:  # new_patient_id stored it; it has left the cache since
                self._keep(key_id, reserved, now)
            return reserved
        staged = self.table.staged(key_id)
        if staged is None and create:
            # A new patient's key is not written here, in a transaction (and a commit)
            # of its own: the recorder writes it in the transaction of the first events
            # sealed under it, and if that transaction fails it stays staged for the
            # next. Its id is random, so no look-up for an existing row is made first;
            # the recorder refuses the events if a different key was stored already.
            fresh = AESGCM.generate_key(256)
            wrapped = self._wrap(key_id, fresh)
            staged = self.table.stage(wrapped)
            if staged is wrapped:
                return self._cached(key_id, fresh, now)
        if staged is not None:  # not committed yet, and no longer (or never) cached here
            assert staged.wrapped is not None
            return self._cached(key_id, self.kek.unwrap(key_id, staged.wrapped), now)
        row = self.table.get(key_id)
        if row is None:
            raise IntegrityViolation(f"no data key {key_id} exists for a stored record")
        if row.wrapped is None:
            raise DataKeyDestroyed()
        return self._cached(key_id, self.kek.unwrap(key_id, row.wrapped), now)

    def _wrap(self, key_id: UUID, data_key: bytes) -> WrappedKey:
        return WrappedKey(key_id, self.kek.kek_id, self.kek.wrap(key_id, data_key))

    def _cached(self, key_id: UUID, data_key: bytes, now: float) -> _Loaded:
        loaded = _Loaded(now, AESGCM(data_key), data_key)
        with self._lock:
            self._keep(key_id, loaded, now)
        return loaded

    def _keep(self, key_id: UUID, loaded: _Loaded, now: float) -> None:
        """Cache a key; the caller holds ``_lock``."""
        self._cache[key_id] = loaded
        self._cache.move_to_end(key_id)
        self._trim(self._cache, now)

    def _trim(self, keys: "OrderedDict[UUID, _Loaded]", now: float) -> None:
        """Drop the oldest keys beyond the cache's size, and those past its time bound:
        a key an erasure elsewhere may have destroyed is not kept in memory, used or
        not. Keys are in the order loaded, so those are at the front."""
        while keys and (
            len(keys) > self.cache_size or now - next(iter(keys.values())).at >= self.cache_seconds
        ):
            keys.popitem(last=False)


@dataclass(frozen=True)
class RotationProgress:
    done: int
    total: int


def rotate(
    table: KeyTable,
    old: KeyEncryptionKey,
    new: KeyEncryptionKey,
    *,
    batch_size: int = 500,
) -> Iterator[RotationProgress]:
    """Re-wrap every live data key under ``new``; resumable, yields progress per batch.

    Each batch commits on its own, and rows already under ``new`` are skipped, so an
    interrupted rotation continues where it stopped when run again. Event rows are
    never touched: only the wrapping of the keys changes.
    """
    if old.kek_id == new.kek_id:
        raise ValueError("the new master key is the one already in use")
    total = table.count_not_wrapped_by(new.kek_id)
    done = 0
    yield RotationProgress(done, total)
    while batch := table.not_wrapped_by(new.kek_id, batch_size):
        rewrapped = []
        for key in batch:
            assert key.wrapped is not None
            data_key = old.unwrap(key.key_id, key.wrapped)
            rewrapped.append(
                (key.kek_id, WrappedKey(key.key_id, new.kek_id, new.wrap(key.key_id, data_key)))
            )
        table.rewrap(rewrapped)
        done += len(batch)
        yield RotationProgress(done, total)
