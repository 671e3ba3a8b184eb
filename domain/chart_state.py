"""What a patient's chart holds between its events, and the checks and queries that read it.

``Patient`` (domain.patient) inherits this: its events build the state, and its
commands refuse what these checks refuse. Nothing here is stored by name, so the
events' and snapshots' topics stay those of ``domain.patient``.
"""

from copy import deepcopy
from datetime import date, datetime
from typing import Any, Self
from uuid import UUID

from domain import entry_records, errors
from domain.identifiers import default_mrn_system
from domain.values import ContactDetails, EntryLinks, HumanName
from domain.vocabulary import EntryKind, EntryStatus


class ChartState:
    """The fields a chart keeps; ``Patient.__init__`` and its events set them. A snapshot
    stores them: ``class_version`` and its upcasts read an older snapshot's shape."""

    # 2: entry records say where their content is (see domain.entry_records).
    # 3: the MRN's system is kept beside its value.
    class_version = 3

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["entries"] = entry_records.from_version_1(state["entries"])

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        """A snapshot from before MRN systems: its MRN is in the organisation's default
        system, as ``Registered.upcast_v1_v2`` reads the event (none once erased)."""
        has_mrn = state.get("mrn") is not None
        state["mrn_system"] = default_mrn_system(state["organisation_id"]) if has_mrn else None

    consent_id: UUID
    organisation_id: str
    mrn: str | None
    mrn_system: str | None
    name: HumanName | None
    birth_date: date | None
    sex: str | None
    contact: ContactDetails | None
    deceased_at: datetime | None
    erased: bool
    # Per entry, its kind and status, and where its content is (entry_records).
    entries: dict[str, entry_records.EntryRecord]

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        """The copy of the cached chart a command works on (the library deep-copies it
        so that a failed command cannot corrupt the cache). Entry records are never
        changed in place, so the copy shares them: a copy costs a dict copy, not a deep
        copy of every entry, which made each write to a long chart O(chart)."""
        copied = object.__new__(type(self))
        memo[id(self)] = copied
        for name, value in self.__dict__.items():
            copied.__dict__[name] = dict(value) if name == "entries" else deepcopy(value, memo)
        return copied

    # Invariants and queries -----------------------------------------------------------

    def _check_not_erased(self) -> None:
        if self.erased:
            raise errors.PatientErased()

    def _check_chart_open(self) -> None:
        self._check_not_erased()
        if self.deceased_at is not None:
            raise errors.PatientDeceased()

    def _changeable_entry(self, entry_id: UUID) -> entry_records.EntryRecord:
        """An entry entered in error is final: it can be neither amended nor re-marked."""
        entry = self.entries.get(entry_id.hex)
        if entry is None:
            raise errors.EntryNotFound()
        if entry["status"] == EntryStatus.ENTERED_IN_ERROR:
            raise errors.EntryEnteredInError()
        return entry

    def _check_links(self, entry_id: UUID, links: EntryLinks | None) -> None:
        """An entry's encounter is an encounter entry of this chart, not itself."""
        if links is None or links.encounter is None:
            return
        encounter = self.entries.get(links.encounter)
        if encounter is None or encounter["kind"] != EntryKind.ENCOUNTER.value:
            raise errors.InvalidValue("encounter", "must be an encounter entry of this chart")
        if links.encounter == entry_id.hex:
            raise errors.InvalidValue("encounter", "an entry is not its own encounter")

    def entry_status(self, entry_id: UUID) -> EntryStatus:
        entry = self.entries.get(entry_id.hex)
        if entry is None:
            raise errors.EntryNotFound()
        return EntryStatus(entry["status"])

    @property
    def entry_count(self) -> int:
        return len(self.entries)

    def demographics(self) -> dict[str, Any]:
        self._check_not_erased()
        return {
            "mrn": self.mrn,
            "mrn_system": self.mrn_system,
            "name": self.name,
            "birth_date": self.birth_date,
            "sex": self.sex,
            "contact": self.contact,
            "deceased_at": self.deceased_at,
        }
