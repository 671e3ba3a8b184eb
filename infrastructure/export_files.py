"""Bulk export files, sealed at rest: AES-256-GCM in chunks, under a key per export
that lives only in this process's memory.

A file is a run of chunks, each ``length (4 bytes) | nonce (12) | ciphertext and tag``
of at most ``CHUNK`` bytes of NDJSON. The associated data binds each chunk to its
export, its file name, its index and whether it is the last, so chunks cannot be
moved, reordered, dropped or the file cut short without failing authentication. The
key is never written anywhere: a file left behind by a crash or a restart is
ciphertext nobody can open, and is removed at the next start.
"""

import shutil
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from application.errors import IntegrityViolation
from infrastructure.nonces import Nonces

CHUNK = 64 * 1024
_LENGTH = struct.Struct(">I")
_INDEX = struct.Struct(">QB")
_nonces = Nonces()


class SealedWriter:
    """Appends NDJSON to one sealed file, a chunk at a time (constant memory)."""

    def __init__(self, path: Path, aead: AESGCM, context: bytes) -> None:
        self.path = path
        self.aead = aead
        self.context = context
        self.buffer = bytearray()
        self.index = 0
        self.file = path.open("wb")

    def write(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= CHUNK:
            self._seal(bytes(self.buffer[:CHUNK]), last=False)
            del self.buffer[:CHUNK]

    def finish(self) -> None:
        """The last chunk (possibly empty), marked as last, and the file closed."""
        self._seal(bytes(self.buffer), last=True)
        self.buffer.clear()
        self.file.close()

    def abandon(self) -> None:
        self.file.close()

    def _seal(self, plain: bytes, *, last: bool) -> None:
        nonce = _nonces.take()
        aad = self.context + _INDEX.pack(self.index, int(last))
        sealed = self.aead.encrypt(nonce, plain, aad)
        self.file.write(_LENGTH.pack(len(sealed)) + nonce + sealed)
        self.index += 1


class SealedExportFiles:
    """The export files of this process, under ``directory/<process id>/<export>/``."""

    def __init__(self, directory: Path, *, stale_seconds: float) -> None:
        self.root = directory
        self.directory = directory / uuid.uuid4().hex
        self.stale_seconds = stale_seconds
        self._keys: dict[UUID, AESGCM] = {}
        self._lock = threading.Lock()

    def open(self) -> None:
        """Make this process's directory; remove what earlier processes left (sealed
        under keys that died with them) once it is older than an export may live."""
        self.root.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - self.stale_seconds
        for leftover in self.root.iterdir():
            if leftover.is_dir() and leftover.stat().st_mtime < cutoff:
                shutil.rmtree(leftover, ignore_errors=True)
        self.directory.mkdir(mode=0o700)

    def writer(self, export_id: UUID, name: str) -> SealedWriter:
        with self._lock:
            aead = self._keys.get(export_id)
            if aead is None:
                aead = self._keys[export_id] = AESGCM(AESGCM.generate_key(256))
        folder = self.directory / export_id.hex
        folder.mkdir(mode=0o700, exist_ok=True)
        return SealedWriter(folder / name, aead, _context(export_id, name))

    def read(self, export_id: UUID, name: str) -> Iterator[bytes]:
        """The file's plaintext, a chunk at a time; a chunk altered, moved or missing
        (or the file cut short) is an ``IntegrityViolation``."""
        with self._lock:
            aead = self._keys.get(export_id)
        path = self.directory / export_id.hex / name
        if aead is None or not path.exists():
            raise IntegrityViolation(f"export {export_id}: the file {name} cannot be opened")
        return self._chunks(path, aead, _context(export_id, name))

    def remove(self, export_id: UUID) -> None:
        """Forget the key first: whatever is left on disk is unreadable from then on."""
        with self._lock:
            self._keys.pop(export_id, None)
        shutil.rmtree(self.directory / export_id.hex, ignore_errors=True)

    def size(self, export_id: UUID) -> int:
        folder = self.directory / export_id.hex
        return sum(p.stat().st_size for p in folder.iterdir()) if folder.exists() else 0

    @staticmethod
    def _chunks(path: Path, aead: AESGCM, context: bytes) -> Iterator[bytes]:
        with path.open("rb") as file:
            index = 0
            while True:
                head = file.read(_LENGTH.size + 12)
                if len(head) < _LENGTH.size + 12:
                    raise IntegrityViolation(f"{path.name}: the file ends before its last chunk")
                (length,) = _LENGTH.unpack(head[: _LENGTH.size])
                nonce, sealed = head[_LENGTH.size :], file.read(length)
                for last in (False, True):
                    try:
                        plain = aead.decrypt(nonce, sealed, context + _INDEX.pack(index, last))
                    except InvalidTag:
                        continue
                    break
                else:
                    raise IntegrityViolation(f"{path.name}: chunk {index} fails authentication")
                if plain:
                    yield plain
                if last:
                    return
                index += 1


def _context(export_id: UUID, name: str) -> bytes:
    return export_id.bytes + name.encode() + b"\x00"
