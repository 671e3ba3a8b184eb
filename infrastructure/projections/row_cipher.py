"""PHI in read-model rows: encrypted under the patient's data key, searched by blind index.

A row's PHI is AES-256-GCM under the same per-patient key as the patient's events, so
crypto-shredding the patient makes their view rows unreadable too (and the projection
purges them). The associated data names the view and the row, so an encrypted value
copied to another row or another patient fails to decrypt. (The tables' column for it
is still named ``sealed``: stored tables keep their names; "seal" in the code means
the event log's encryption and chain link only.)

Exact-match search uses blind indexes: HMAC-SHA256 over a normalised value, under a
key of its own derived (HKDF) from the system key, never from a patient's key, so a
search needs no patient key and the index reveals nothing without the key.
"""

import hashlib
import hmac
import os
import unicodedata
from typing import Any
from uuid import UUID

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from infrastructure.keys import SYSTEM_KEY_ID, KeyRing

_NONCE = 12
_BLIND_INDEX_INFO = b"careledger/directory/blind-index/v1"


class RowCipher:
    def __init__(self, keys: KeyRing | None) -> None:
        self._keys = keys  # None only where tables are created and nothing is encrypted
        self._index_key: bytes | None = None

    @property
    def keys(self) -> KeyRing:
        assert self._keys is not None, "this RowCipher has no key ring"
        return self._keys

    def encrypt(self, patient_id: UUID, row: str, value: Any) -> bytes:
        nonce = os.urandom(_NONCE)
        plain = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
        aead = self.keys.aead(patient_id)
        return nonce + aead.encrypt(nonce, plain, _aad(patient_id, row))

    def decrypt(self, patient_id: UUID, row: str, encrypted: bytes) -> Any:
        """Raises ``DataKeyDestroyed`` for an erased patient, ``InvalidTag`` if moved."""
        aead = self.keys.aead(patient_id)
        encrypted = bytes(encrypted)
        return orjson.loads(
            aead.decrypt(encrypted[:_NONCE], encrypted[_NONCE:], _aad(patient_id, row))
        )

    def blind_index(self, field: str, value: str) -> bytes:
        """16 bytes of HMAC over the field name and the normalised value."""
        if self._index_key is None:
            self._index_key = HKDF(
                algorithm=hashes.SHA256(), length=32, salt=None, info=_BLIND_INDEX_INFO
            ).derive(self.keys.raw(SYSTEM_KEY_ID))
        material = field.encode() + b"\x00" + normalise(value).encode()
        return hmac.new(self._index_key, material, hashlib.sha256).digest()[:16]


def normalise(value: str) -> str:
    """Case, width, curly apostrophes and spacing do not matter to an exact match."""
    folded = unicodedata.normalize("NFKC", value).casefold().replace("\u2019", "'")
    return " ".join(folded.split())


def _aad(patient_id: UUID, row: str) -> bytes:
    return patient_id.bytes + row.encode()
