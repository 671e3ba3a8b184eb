"""The read models CareLedger keeps, wired to one store and key ring."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper

from infrastructure.keys import KeyRing
from infrastructure.projections.access_log import AccessLogProjection, AccessLogReader
from infrastructure.projections.consent_state import ConsentStateProjection, ConsentStateReader
from infrastructure.projections.deliveries import DeliveryProjection
from infrastructure.projections.delivery_reader import DeliveryReader
from infrastructure.projections.delivery_rows import CURSORS
from infrastructure.projections.directory import DirectoryProjection, DirectoryReader
from infrastructure.projections.engine import Projection, Projector, view_tables
from infrastructure.projections.roster import RosterProjection, RosterReader
from infrastructure.projections.row_cipher import RowCipher
from infrastructure.projections.store import ViewStore
from infrastructure.projections.timeline import TimelineProjection, TimelineReader

# The views in build order; a name is a class attribute, so help texts list them unbuilt.
KINDS: tuple[type[Any], ...] = (
    TimelineProjection,
    DirectoryProjection,
    ConsentStateProjection,
    RosterProjection,
    AccessLogProjection,
    DeliveryProjection,
)
NAMES: tuple[str, ...] = tuple(kind.name for kind in KINDS)


def projections(store: ViewStore, cipher: RowCipher) -> list[Projection]:
    # The roster holds no PHI, so it is the one view built without a cipher.
    return [kind(store) if kind is RosterProjection else kind(store, cipher) for kind in KINDS]


def table_names(store: ViewStore) -> list[str]:
    return [*view_tables(projections(store, RowCipher(None))), CURSORS]


@dataclass
class Readers:
    timeline: TimelineReader
    directory: DirectoryReader
    consents: ConsentStateReader
    roster: RosterReader
    access_log: AccessLogReader
    deliveries: DeliveryReader


def readers(store: ViewStore, keys: KeyRing) -> Readers:
    cipher = RowCipher(keys)
    return Readers(
        TimelineReader(store, cipher),
        DirectoryReader(store, cipher),
        ConsentStateReader(store, cipher),
        RosterReader(store),
        AccessLogReader(store, cipher),
        DeliveryReader(store, cipher),
    )


def projectors(
    store: ViewStore,
    mapper: Mapper[UUID],
    keys: KeyRing,
    *,
    batch_size: int = 1000,
    on_commit: Callable[[str, int], None] | None = None,
) -> list[Projector]:
    return [
        Projector(store, mapper, projection, batch_size=batch_size, on_commit=on_commit)
        for projection in projections(store, RowCipher(keys))
    ]
