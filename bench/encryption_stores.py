"""E1's three stores: sealed as the service opens it, plain (the library's mapper), and
the cipher-only floor, whose records are checked here, in the run, to be exactly as long
as sealed ones and to read back (see ``bench.encryption``)."""

import base64
import secrets
from pathlib import Path
from typing import Any
from uuid import UUID

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder
from eventsourcing.utils import get_topic

from api.bootstrap import open_ledger
from api.settings import Settings
from application.ledger.ledger import CareLedger
from infrastructure.keys import KeyRing
from infrastructure.migrations import migrate
from infrastructure.nonces import Nonces
from infrastructure.sealing import FORMAT_V1, HEADER_LENGTH, SealingMapper
from infrastructure.stores import environment_for


def open_sealed(url: str, var_dir: Path) -> tuple[CareLedger, KeyRing]:
    """Our store, as the service opens it."""
    master_key = secrets.token_bytes(32)
    settings = Settings(
        database_url=url,
        master_key=base64.b64encode(master_key).decode(),
        jwt_secret=secrets.token_urlsafe(40),
        var_dir=var_dir,
    )
    ledger, keys = open_ledger(settings, master_key)
    assert isinstance(ledger.mapper, SealingMapper)
    return ledger, keys


class CipherOnlyMapper(Mapper[UUID]):
    """E1's floor: the library's mapping and one AES-256-GCM call per event, no more.

    One key for every stream, nonces drawn as the sealing mapper draws them, the header
    as the only associated data: no key per patient, no lookup, no binding to the row.
    Unfit for any store; it measures what the mandated cipher alone costs a save.
    """

    def __init__(self, transcoder: Transcoder, **library_options: Any) -> None:
        super().__init__(transcoder, **library_options)  # no compressor or cipher is set
        self._aead = AESGCM(AESGCM.generate_key(256))
        self._nonces = Nonces()

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        plain = super().to_stored_event(domain_event)
        nonce = self._nonces.take()
        header = bytes([FORMAT_V1]) + bytes(16) + nonce  # the sealing mapper's layout
        sealed = header + self._aead.encrypt(nonce, plain.state, header)
        return StoredEvent(plain.originator_id, plain.originator_version, plain.topic, sealed)

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        state, at = stored_event.state, HEADER_LENGTH
        opened = self._aead.decrypt(state[at - 12 : at], state[at:], state[:at])
        return super().to_domain_event(
            StoredEvent(
                stored_event.originator_id,
                stored_event.originator_version,
                stored_event.topic,
                opened,
            )
        )


def open_plain(url: str, mapper: type[Mapper[UUID]] = Mapper) -> CareLedger:
    """The same application and recorders, with the library's Mapper and no cipher (or,
    for E1's floor, ``CipherOnlyMapper``)."""
    env = environment_for(url)
    del env["MAPPER_TOPIC"]
    migrate(env, None)  # the same tables and triggers as the sealed store
    ledger = CareLedger({**env, "MAPPER_TOPIC": get_topic(mapper), "CREATE_TABLE": "n"})
    assert type(ledger.mapper) is mapper and ledger.mapper.cipher is None
    ledger.recorder.seal_with(b"k" * 32)  # type: ignore[attr-defined]
    return ledger


def check_floor(sealed: CareLedger, floor: CipherOnlyMapper) -> int:
    """The floor compares like with like: each sealed record of the run, stored by the
    floor instead, is exactly as long, holds no plaintext, and reads back. Returns how
    many records were checked; a difference stops the benchmark."""
    mapper = sealed.mapper
    plain = Mapper(mapper.transcoder)
    checked = 0
    for notification in sealed.recorder.select_notifications(start=1, limit=200):
        event = mapper.to_domain_event(notification)
        theirs = floor.to_stored_event(event)
        if len(theirs.state) != len(notification.state):
            raise SystemExit(
                f"bench: the cipher-only floor writes {len(theirs.state)} bytes where "
                f"sealing writes {len(notification.state)}; E1 would compare unlike records"
            )
        if plain.to_stored_event(event).state in theirs.state:
            raise SystemExit("bench: the cipher-only floor stored plaintext")
        if floor.to_domain_event(theirs) != event:
            raise SystemExit("bench: the cipher-only floor does not read back")
        checked += 1
    return checked
