"""Our Mapper: every stored event and snapshot is AES-256-GCM under its patient's key.

The library's ``Cipher`` sees only bytes, never the stream, so it can neither pick a
per-patient key nor bind a ciphertext to its row. Here the stored bytes are::

    format (1 byte) | key id (16 bytes) | nonce (12 bytes) | ciphertext and tag

and the associated data is the stream id, version and topic plus that header, so a
ciphertext copied to another row or stream fails authentication.
"""

import functools
import logging
import struct
import threading
from collections import OrderedDict
from typing import Any, cast
from uuid import UUID

from cryptography.exceptions import InvalidTag
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import (
    AggregateRecorder,
    Cipher,
    Compressor,
    Mapper,
    StoredEvent,
    Transcoder,
)
from eventsourcing.utils import get_topic
from prometheus_client import Counter

from application.errors import IntegrityViolation
from domain.access_record import AccessRecord
from domain.patient import Patient
from domain.sponsor import SponsorProgramme
from domain.subscriber import Subscriber
from infrastructure.forks import call_in_forked_child
from infrastructure.keys import AUDIT_KEY_ID, SYSTEM_KEY_ID, KeyRing
from infrastructure.nonces import Nonces

FORMAT_V1 = 1
_PATIENT_TOPIC = get_topic(Patient)
_SPONSOR_TOPIC = get_topic(SponsorProgramme)
HEADER_LENGTH = 1 + 16 + 12
_FORMAT_V1_BYTE = bytes([FORMAT_V1])
_VERSION = struct.Struct(">q")
_TOPICS: dict[str, bytes] = {}

INTEGRITY_VIOLATIONS = Counter(
    "careledger_integrity_violations_total",
    "Stored records that failed authentication (altered, moved or forged)",
)
security_log = logging.getLogger("careledger.security")


_nonces = Nonces()


# How an event's class decides its key, worked out once per class (``_rule_for``).
_OWN_STREAM = "own stream"  # a patient's stream: the key id is the stream id
_NEW_PATIENT = "new patient"  # the same, and the key is made with the stream
_ASK_EVENT = "ask the event"  # decided per event (snapshots, and the other streams)


@functools.cache
def _rule_for(cls: type) -> UUID | str:
    # The tombstone, sponsor programmes and subscribers carry no PHI and must stay
    # readable.
    if issubclass(cls, (Patient.Erased, SponsorProgramme.Event, Subscriber.Event)):
        return SYSTEM_KEY_ID
    # Access records outlive a patient's erasure: never the patient's key.
    if issubclass(cls, AccessRecord.Event):
        return AUDIT_KEY_ID
    if issubclass(cls, Patient.Registered):
        return _NEW_PATIENT
    if issubclass(cls, Patient.Event):
        return _OWN_STREAM
    return _ASK_EVENT


class SealingMapper(Mapper[UUID]):
    """Encrypts with the stream's key; the key ring is bound once the store is open."""

    def __init__(
        self,
        transcoder: Transcoder,
        compressor: Compressor | None = None,
        cipher: Cipher | None = None,
    ) -> None:
        if compressor is not None or cipher is not None:
            raise ValueError("SealingMapper encrypts itself: configure no COMPRESSOR or CIPHER")
        super().__init__(transcoder)
        self.keys: KeyRing | None = None
        self.recorder: AggregateRecorder | None = None
        # Which key a stream is sealed with, learnt when it is read or written.
        self._stream_keys: OrderedDict[UUID, UUID] = OrderedDict()
        self._stream_keys_max = 100_000
        self._new_lock()
        call_in_forked_child(self._new_lock)

    def _new_lock(self) -> None:
        # Renewed in a forked child: another thread may have held the parent's.
        self._lock = threading.Lock()

    def bind(self, keys: KeyRing, recorder: AggregateRecorder) -> None:
        self.keys = keys
        self.recorder = recorder

    # Writing ---------------------------------------------------------------------

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        # On every save, so kept to few calls: each one costs far more in a save, with
        # the CPU's caches cold after a commit, than in a tight loop (docs/benchmarks.md).
        plain = super().to_stored_event(domain_event)
        stream_bytes = _stream_bytes(plain.originator_id)
        rule = _rule_for(type(domain_event))
        if rule is _OWN_STREAM or rule is _NEW_PATIENT:
            key_id, key_bytes = domain_event.originator_id, stream_bytes
        else:
            key_id = self._key_for(domain_event) if rule is _ASK_EVENT else cast(UUID, rule)
            key_bytes = key_id.bytes
        aead = self._keys().aead(key_id, create=rule is _NEW_PATIENT)
        nonce = _nonces.take()
        header = _FORMAT_V1_BYTE + key_bytes + nonce
        associated = _associated_data(stream_bytes, plain.originator_version, plain.topic, header)
        sealed = header + aead.encrypt(nonce, plain.state, associated)
        if rule is _ASK_EVENT:  # the only streams whose key is ever looked up
            self._remember(plain.originator_id, key_id)
        return StoredEvent(plain.originator_id, plain.originator_version, plain.topic, sealed)

    def _key_for(self, event: DomainEventProtocol[UUID]) -> UUID:
        """The key of an event whose class does not decide it (see ``_rule_for``)."""
        snapshot_of = getattr(event, "topic", None)  # a snapshot names its aggregate's class
        if snapshot_of == _PATIENT_TOPIC:
            return event.originator_id
        if snapshot_of == _SPONSOR_TOPIC:
            return SYSTEM_KEY_ID
        patient_id = getattr(event, "patient_id", None)  # a stream's first event names it
        if isinstance(patient_id, UUID):
            return patient_id
        with self._lock:
            known = self._stream_keys.get(event.originator_id)
        return known if known is not None else self._key_of_stream(event.originator_id)

    def _key_of_stream(self, stream_id: UUID) -> UUID:
        """The key of the stream's first event, read from its header."""
        assert self.recorder is not None, "SealingMapper is not bound"
        first = self.recorder.select_events(stream_id, lte=1, limit=1)
        if not first:
            raise IntegrityViolation(f"stream {stream_id} has no first event to take a key from")
        return _header_key(first[0])

    # Reading ---------------------------------------------------------------------

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        state = stored_event.state
        if len(state) < HEADER_LENGTH + 16 or state[0] != FORMAT_V1:
            raise self._violation(stored_event, "unknown format")
        key_id = _header_key(stored_event)
        aead = self._keys().aead(key_id)
        try:
            associated = _associated_data(
                _stream_bytes(stored_event.originator_id),
                stored_event.originator_version,
                stored_event.topic,
                state[:HEADER_LENGTH],
            )
            plain = aead.decrypt(state[17:HEADER_LENGTH], state[HEADER_LENGTH:], associated)
        except InvalidTag:
            raise self._violation(stored_event, "authentication failed") from None
        self._remember(stored_event.originator_id, key_id)
        return super().to_domain_event(
            StoredEvent(
                stored_event.originator_id,
                stored_event.originator_version,
                stored_event.topic,
                plain,
            )
        )

    # -----------------------------------------------------------------------------

    def _keys(self) -> KeyRing:
        assert self.keys is not None, "SealingMapper is not bound to a key ring"
        return self.keys

    def _remember(self, stream_id: Any, key_id: UUID) -> None:
        if key_id in (SYSTEM_KEY_ID, AUDIT_KEY_ID):  # decided by the event's class, so
            return  # never looked up (and an access record is a stream of its own)
        if key_id == stream_id:  # a patient's own stream: _key_for never looks it up
            return
        with self._lock:
            self._stream_keys[stream_id] = key_id
            self._stream_keys.move_to_end(stream_id)
            if len(self._stream_keys) > self._stream_keys_max:
                self._stream_keys.popitem(last=False)

    @staticmethod
    def _violation(stored_event: StoredEvent, reason: str) -> IntegrityViolation:
        INTEGRITY_VIOLATIONS.inc()
        security_log.error(
            "integrity violation",
            extra={
                "stream_id": str(stored_event.originator_id),
                "version": stored_event.originator_version,
                "reason": reason,
            },
        )
        return IntegrityViolation(
            f"stored record {stored_event.originator_id} version "
            f"{stored_event.originator_version} failed authentication ({reason})"
        )


def _header_key(stored_event: StoredEvent) -> UUID:
    return UUID(bytes=bytes(stored_event.state[1:17]))


def sealing_key_id(state: bytes) -> bytes | None:
    """The raw 16-byte id of the key a stored record is sealed under, if it is sealed."""
    if len(state) < HEADER_LENGTH + 16 or state[0] != FORMAT_V1:
        return None
    return bytes(state[1:17])


def _stream_bytes(stream_id: Any) -> bytes:
    return stream_id.bytes if isinstance(stream_id, UUID) else UUID(str(stream_id)).bytes


def _associated_data(stream_id: bytes, version: int, topic: str, header: bytes) -> bytes:
    """stream id (16 bytes) | version (8, big-endian, signed) | topic | NUL | header."""
    encoded = _TOPICS.get(topic)
    if encoded is None:
        encoded = topic.encode() + b"\x00"
        if len(_TOPICS) < 512:  # the event classes' topics: each is encoded once
            _TOPICS[topic] = encoded
    return b"".join((stream_id, _VERSION.pack(int(version)), encoded, header))
