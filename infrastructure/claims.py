"""Ids of claim streams: a keyed hash of what is claimed, so that an id discloses
nothing, and the same claim always lands on the same stream (docs/events.md)."""

import hashlib
import hmac
from uuid import UUID

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from domain.identifiers import MedicalRecordNumber
from infrastructure.keys import SYSTEM_KEY_ID, KeyRing
from infrastructure.projections.row_cipher import normalise

_CLAIM_INFO = b"careledger-claim-ids-v1"


class ClaimIds:
    def __init__(self, keys: KeyRing) -> None:
        self._keys = keys
        self._key: bytes | None = None

    def mrn(self, organisation_id: str, mrn: MedicalRecordNumber) -> UUID:
        """The claim of an MRN in its system within an organisation. The value is
        normalised as the directory's search is, so that two MRNs one search cannot
        tell apart cannot both be registered."""
        material = "\x00".join(("mrn", organisation_id, mrn.system, normalise(mrn.value)))
        return UUID(bytes=self._digest(material.encode())[:16], version=4)

    def _digest(self, material: bytes) -> bytes:
        if self._key is None:
            # A key of its own, derived from the system key: never the blind index's.
            self._key = HKDF(
                algorithm=hashes.SHA256(), length=32, salt=None, info=_CLAIM_INFO
            ).derive(self._keys.raw(SYSTEM_KEY_ID))
        return hmac.new(self._key, material, hashlib.sha256).digest()
