"""The patient directory: exact-match search by MRN, or family name plus birth date.

The view holds no plaintext PHI. The search keys are blind indexes (keyed HMAC over
normalised values); the name, birth date and MRN are encrypted under the patient's key.
The organisation id is plain, because every search is scoped to the actor's
organisation.
"""

from collections.abc import Callable, Sequence
from datetime import date
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from application.charts.disclosure_rendering import search_hit
from domain.identifiers import default_mrn_system
from domain.patient import Patient
from infrastructure.projections.engine import Decoded, active_version, delete_patient_rows
from infrastructure.projections.row_cipher import RowCipher
from infrastructure.projections.store import Cursor, ViewStore

TABLE = "view_directory"
# How many rows one MRN value may match in an organisation when filtering by system.
MRN_VALUE_HITS = 1000


class DirectoryProjection:
    name = "directory"
    topics = tuple(get_topic(cls) for cls in (Patient.Registered, Patient.DemographicsUpdated))

    def __init__(self, store: ViewStore, cipher: RowCipher) -> None:
        self.cipher = cipher
        self.table = store.table(TABLE)

    def table_names(self) -> list[str]:
        return [TABLE]

    def tables(self) -> list[str]:
        t = self.table
        return [
            f"CREATE TABLE IF NOT EXISTS {t} (version INTEGER NOT NULL, "
            "patient_id TEXT NOT NULL, organisation_id TEXT NOT NULL, mrn_index BLOB NOT NULL, "
            "name_index BLOB NOT NULL, position BIGINT NOT NULL, sealed BLOB NOT NULL, "
            "stream_version INTEGER NOT NULL, "
            "PRIMARY KEY (version, patient_id))",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_by_mrn ON {t} "
            "(version, organisation_id, mrn_index)",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_by_name ON {t} "
            "(version, organisation_id, name_index)",
        ]

    def apply(self, cursor: Cursor, version: int, batch: Sequence[Decoded]) -> None:
        pending: dict[UUID, dict[str, Any]] = {}
        for item in batch:
            event = item.event
            patient_id = event.originator_id
            if isinstance(event, Patient.Registered):
                pending[patient_id] = {
                    "organisation_id": event.organisation_id,
                    "position": item.position,
                    "stream_version": event.originator_version,
                    "phi": {
                        "mrn": event.mrn,
                        "mrn_system": event.mrn_system,
                        "name": {"given": event.name.given, "family": event.name.family},
                        "birth_date": event.birth_date.isoformat(),
                    },
                }
            elif isinstance(event, Patient.DemographicsUpdated):
                row = pending.get(patient_id) or self._load(cursor, version, patient_id)
                if row is None:
                    continue
                if event.name is not None:
                    row["phi"]["name"] = {"given": event.name.given, "family": event.name.family}
                if event.birth_date is not None:
                    row["phi"]["birth_date"] = event.birth_date.isoformat()
                row["position"] = item.position
                row["stream_version"] = event.originator_version
                pending[patient_id] = row
        cursor.executemany(
            f"INSERT INTO {self.table} (version, patient_id, organisation_id, mrn_index, "
            "name_index, position, sealed, stream_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (version, patient_id) DO UPDATE SET name_index = excluded.name_index, "
            "position = excluded.position, sealed = excluded.sealed, "
            "stream_version = excluded.stream_version",
            [
                (
                    version,
                    patient_id.hex,
                    row["organisation_id"],
                    self.cipher.blind_index("mrn", row["phi"]["mrn"]),
                    self.name_index(row["phi"]["name"]["family"], row["phi"]["birth_date"]),
                    row["position"],
                    self.cipher.encrypt(patient_id, TABLE, row["phi"]),
                    row["stream_version"],
                )
                for patient_id, row in pending.items()
            ],
        )

    def name_index(self, family: str, birth_date: str) -> bytes:
        return self.cipher.blind_index("family+birth_date", f"{family.strip()}\x00{birth_date}")

    def _load(self, cursor: Cursor, version: int, patient_id: UUID) -> dict[str, Any] | None:
        found = cursor.execute(
            f"SELECT organisation_id, position, sealed, stream_version FROM {self.table} "
            "WHERE version = ? AND patient_id = ?",
            (version, patient_id.hex),
        ).fetchone()
        if found is None:
            return None
        organisation_id, position, encrypted, stream_version = found
        return {
            "organisation_id": organisation_id,
            "position": position,
            "stream_version": stream_version,
            "phi": self.cipher.decrypt(patient_id, TABLE, encrypted),
        }

    def purge(self, cursor: Cursor, version: int, patient_id: UUID) -> None:
        delete_patient_rows(cursor, (self.table,), version, patient_id)


class DirectoryReader:
    def __init__(self, store: ViewStore, cipher: RowCipher) -> None:
        self.store = store
        self.cipher = cipher
        self.projection = DirectoryProjection(store, cipher)

    def by_mrn(
        self,
        organisation_id: str,
        mrn: str,
        limit: int,
        system: str | None = None,
        after: str | None = None,
    ) -> list[dict[str, Any]]:
        """Patients with this MRN value, in any system unless ``system`` is given. The
        index is of the value alone; the system is sealed with the row (a row written
        before systems were kept is in the organisation's default one)."""
        index = self.cipher.blind_index("mrn", mrn)
        if system is None:
            return self._search("mrn_index", index, organisation_id, limit, after=after)
        default = default_mrn_system(organisation_id)
        return self._search(
            "mrn_index",
            index,
            organisation_id,
            MRN_VALUE_HITS,  # one per system at most: few, whatever the limit
            keep=lambda phi: phi.get("mrn_system", default) == system,
            after=after,
        )[:limit]

    def by_name(
        self,
        organisation_id: str,
        family: str,
        birth_date: date,
        limit: int,
        after: str | None = None,
    ) -> list[dict[str, Any]]:
        index = self.projection.name_index(family, birth_date.isoformat())
        return self._search("name_index", index, organisation_id, limit, after=after)

    def organisation_of(self, patient_id: UUID) -> str | None:
        """The organisation whose chart this is, if the directory knows the patient."""
        with self.store.reading() as cursor:
            version = active_version(cursor, self.store, DirectoryProjection.name)
            row = cursor.execute(
                f"SELECT organisation_id FROM {self.projection.table} "
                "WHERE version = ? AND patient_id = ?",
                (version, patient_id.hex),
            ).fetchone()
        return None if row is None else str(row[0])

    def patient_ids(self, organisation_id: str, after: UUID | None, limit: int) -> list[UUID]:
        sql = (
            f"SELECT patient_id FROM {self.projection.table} "
            "WHERE version = ? AND organisation_id = ?"
        )
        params: list[Any] = [organisation_id]
        if after is not None:
            sql += " AND patient_id > ?"
            params.append(after.hex)
        with self.store.reading() as cursor:
            version = active_version(cursor, self.store, DirectoryProjection.name)
            rows = cursor.execute(
                sql + " ORDER BY patient_id LIMIT ?", (version, *params, limit)
            ).fetchall()
        return [UUID(row[0]) for row in rows]

    def _search(
        self,
        column: str,
        index: bytes,
        organisation_id: str,
        limit: int,
        keep: Callable[[dict[str, Any]], bool] | None = None,
        after: str | None = None,
    ) -> list[dict[str, Any]]:
        """Hits in patient id order, after the ``after`` patient (hex) when given."""
        sql = (
            f"SELECT patient_id, sealed, stream_version FROM {self.projection.table} "
            f"WHERE version = ? AND organisation_id = ? AND {column} = ?"
        )
        params: list[Any] = [organisation_id, index]
        if after is not None:
            sql += " AND patient_id > ?"
            params.append(after)
        with self.store.reading() as cursor:
            version = active_version(cursor, self.store, DirectoryProjection.name)
            rows = cursor.execute(
                sql + " ORDER BY patient_id LIMIT ?", (version, *params, limit)
            ).fetchall()
        found = []
        for patient_hex, encrypted, stream_version in rows:
            patient_id = UUID(patient_hex)
            phi = self.cipher.decrypt(patient_id, TABLE, encrypted)
            if keep is not None and not keep(phi):
                continue
            name = phi["name"]
            hit = search_hit(patient_id, name["given"], name["family"], phi["birth_date"])
            # The version is for the access record, not the body: the search pops it.
            found.append({**hit, "_version": int(stream_version)})
        return found
