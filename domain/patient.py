"""The patient's chart: demographics and an append-only list of clinical entries."""

from datetime import date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain import entry_records, errors
from domain.chart_rules import check_birth_date, check_modality, check_reason, check_value
from domain.chart_state import ChartState
from domain.events import AttributedEvent
from domain.identifiers import MedicalRecordNumber, default_mrn_system
from domain.values import (
    Coding,
    ContactDetails,
    EntryLinks,
    EntryValue,
    HumanName,
    Provenance,
    require_utc,
)
from domain.vocabulary import AdministrativeSex, EntryKind, EntryStatus, Modality, SensitivityLabel


class Patient(ChartState, Aggregate):
    """One stream per patient. Corrections are new events; nothing is edited. What the
    chart holds, its snapshot version and the checks on it are ``ChartState``'s."""

    id: UUID  # ids are passed in (uuid4 from the caller), never minted here

    class Event(AttributedEvent):
        pass

    class Registered(Event, Aggregate.Created):
        """``mrn`` is the value and ``mrn_system`` its numbering system (v2)."""

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Registered before MRN systems: the organisation's default system."""
            state["mrn_system"] = default_mrn_system(state["organisation_id"])

        consent_id: UUID
        organisation_id: str
        mrn: str
        mrn_system: str
        name: HumanName
        birth_date: date
        sex: str
        contact: ContactDetails | None

    class DemographicsUpdated(Event):
        """Only the fields that changed are set; None means unchanged."""

        name: HumanName | None
        birth_date: date | None
        sex: str | None
        contact: ContactDetails | None

    class EntryRecorded(Event):
        """``tags`` (v2) are security codes that are not sensitivity labels, such as
        HL7's HTEST (test data): kept as given and shown, never a policy input.
        ``links`` (v3) are the encounter and the practitioners, organisations and
        locations the entry names (None: none)."""

        class_version = 3

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["tags"] = []

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["links"] = None

        entry_id: UUID
        kind: str
        code: Coding
        value: EntryValue | None
        effective_at: datetime
        modality: str | None
        labels: list[str]
        tags: list[Coding]
        links: EntryLinks | None
        author: str

        def apply(self, aggregate: "Patient") -> None:
            # Written out rather than through ``@event``: an import makes this event a
            # hundred times a chart, and the decorator's argument matching made building
            # a chart of 100 events take 2.0 ms instead of 1.2 (docs/benchmarks.md).
            aggregate.entries[self.entry_id.hex] = entry_records.recorded(
                self.kind, self.effective_at, self.originator_version
            )

    class EntryAmended(Event):
        """Supersedes the entry. Fields left as None keep their recorded values."""

        class_version = 3

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["tags"] = None

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["links"] = None

        entry_id: UUID
        reason: str
        code: Coding | None
        value: EntryValue | None
        effective_at: datetime | None
        modality: str | None
        labels: list[str] | None
        tags: list[Coding] | None
        links: EntryLinks | None
        author: str

    class EntryEnteredInError(Event):
        entry_id: UUID
        reason: str

    class Deceased(Event):
        deceased_at: datetime

    class Erased(Event):
        """The key is shredded. No PHI: the care organisation (a random id) stays
        readable, so erasure is told only within reach (v1: None, told to nobody)."""

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["organisation_id"] = None

        legal_basis: str
        organisation_id: str | None

    @staticmethod
    def register(
        *,
        patient_id: UUID,
        consent_id: UUID,
        organisation_id: str,
        mrn: MedicalRecordNumber | str,
        name: HumanName,
        birth_date: date,
        sex: AdministrativeSex,
        contact: ContactDetails | None,
        by: Provenance,
    ) -> "Patient":
        check_birth_date(birth_date, by)
        if isinstance(mrn, str):  # a bare MRN: the organisation's own numbering
            mrn = MedicalRecordNumber.in_organisation(organisation_id, mrn)
        # The metaclass accepts ``id`` because of the ``id: UUID`` annotation; mypy only
        # sees ``__init__``, which must not take it.
        return Patient(  # type: ignore[call-arg]
            id=patient_id,
            consent_id=consent_id,
            organisation_id=organisation_id,
            mrn=mrn.value,
            mrn_system=mrn.system,
            name=name,
            birth_date=birth_date,
            sex=sex.value,
            contact=contact,
            actor_id=by.actor_id,
            timestamp=by.occurred_at,
        )

    @event(Registered)
    def __init__(
        self,
        *,
        consent_id: UUID,
        organisation_id: str,
        mrn: str,
        mrn_system: str,
        name: HumanName,
        birth_date: date,
        sex: str,
        contact: ContactDetails | None,
        actor_id: str,
        timestamp: datetime,
    ) -> None:
        self.consent_id = consent_id
        self.organisation_id = organisation_id
        self.mrn = mrn
        self.mrn_system = mrn_system
        self.name = name
        self.birth_date = birth_date
        self.sex = sex
        self.contact = contact
        self.deceased_at = None
        self.erased = False
        self.entries = {}

    # Demographics ---------------------------------------------------------------

    def update_demographics(
        self,
        *,
        name: HumanName | None = None,
        birth_date: date | None = None,
        sex: AdministrativeSex | None = None,
        contact: ContactDetails | None = None,
        by: Provenance,
    ) -> None:
        self._check_not_erased()
        if birth_date is not None:
            check_birth_date(birth_date, by)
        if name is None and birth_date is None and sex is None and contact is None:
            raise errors.InvalidValue("body", "names no demographic field to change")
        self._demographics_updated(
            name=name,
            birth_date=birth_date,
            sex=sex.value if sex else None,
            contact=contact,
            actor_id=by.actor_id,
            timestamp=by.occurred_at,
        )

    @event(DemographicsUpdated)
    def _demographics_updated(
        self,
        *,
        name: HumanName | None,
        birth_date: date | None,
        sex: str | None,
        contact: ContactDetails | None,
        actor_id: str,
        timestamp: datetime,
    ) -> None:
        self.name = name or self.name
        self.birth_date = birth_date or self.birth_date
        self.sex = sex or self.sex
        self.contact = contact or self.contact

    # Clinical entries -------------------------------------------------------------

    def record_entry(
        self,
        *,
        entry_id: UUID,
        kind: EntryKind,
        code: Coding,
        value: EntryValue | None,
        effective_at: datetime,
        modality: Modality | None,
        labels: frozenset[SensitivityLabel],
        by: Provenance,
        tags: tuple[Coding, ...] = (),
        links: EntryLinks | None = None,
    ) -> None:
        self._check_chart_open()
        require_utc("effective_at", effective_at)
        check_modality(kind, modality)
        check_value(kind, value)
        if entry_id.hex in self.entries:
            raise errors.InvalidValue("entry_id", "already used in this chart")
        self._check_links(entry_id, links)
        self.trigger_event(
            self.EntryRecorded,
            entry_id=entry_id,
            kind=kind.value,
            code=code,
            value=value,
            effective_at=effective_at,
            modality=modality.value if modality else None,
            labels=sorted(label.value for label in labels),
            tags=list(tags),
            links=links or None,
            author=by.actor_id,
            actor_id=by.actor_id,
            timestamp=by.occurred_at,
        )

    def amend_entry(
        self,
        *,
        entry_id: UUID,
        reason: str,
        code: Coding | None = None,
        value: EntryValue | None = None,
        effective_at: datetime | None = None,
        modality: Modality | None = None,
        labels: frozenset[SensitivityLabel] | None = None,
        by: Provenance,
        tags: tuple[Coding, ...] | None = None,
        links: EntryLinks | None = None,
    ) -> None:
        """Supersede an entry. Fields left as None keep their current values."""
        self._check_chart_open()
        entry = self._changeable_entry(entry_id)
        self._check_links(entry_id, links)
        check_reason(reason)
        if effective_at is not None:
            require_utc("effective_at", effective_at)
        if modality is not None:
            check_modality(EntryKind(entry["kind"]), modality)
        check_value(EntryKind(entry["kind"]), value)
        self._entry_amended(
            entry_id=entry_id,
            reason=reason,
            code=code,
            value=value,
            effective_at=effective_at,
            modality=modality.value if modality else None,
            labels=sorted(label.value for label in labels) if labels is not None else None,
            tags=list(tags) if tags is not None else None,
            links=links,
            author=by.actor_id,
            actor_id=by.actor_id,
            timestamp=by.occurred_at,
        )

    @event(EntryAmended)
    def _entry_amended(
        self,
        *,
        entry_id: UUID,
        reason: str,
        code: Coding | None,
        value: EntryValue | None,
        effective_at: datetime | None,
        modality: str | None,
        labels: list[str] | None,
        tags: list[Coding] | None,
        links: EntryLinks | None,
        author: str,
        actor_id: str,
        timestamp: datetime,
    ) -> None:
        self._entry_changed(entry_id, EntryStatus.AMENDED, effective_at)

    def mark_entered_in_error(self, *, entry_id: UUID, reason: str, by: Provenance) -> None:
        self._check_chart_open()
        self._changeable_entry(entry_id)
        check_reason(reason)
        self._entry_entered_in_error(
            entry_id=entry_id, reason=reason, actor_id=by.actor_id, timestamp=by.occurred_at
        )

    @event(EntryEnteredInError)
    def _entry_entered_in_error(
        self, *, entry_id: UUID, reason: str, actor_id: str, timestamp: datetime
    ) -> None:
        self._entry_changed(entry_id, EntryStatus.ENTERED_IN_ERROR, None)

    def _entry_changed(
        self, entry_id: UUID, status: EntryStatus, effective_at: datetime | None
    ) -> None:
        self.entries[entry_id.hex] = entry_records.changed(
            self.entries[entry_id.hex], status, effective_at, self._applying()
        )

    def _applying(self) -> int:
        """The version of the event being applied: the library sets ``version`` after
        the event's method body has run, so the aggregate is still one behind."""
        return self.version + 1

    # End of the chart --------------------------------------------------------------

    def record_death(self, *, deceased_at: datetime, by: Provenance) -> None:
        self._check_chart_open()
        require_utc("deceased_at", deceased_at)
        if deceased_at > by.occurred_at:
            raise errors.InvalidValue("deceased_at", "must not be in the future")
        self._deceased(deceased_at=deceased_at, actor_id=by.actor_id, timestamp=by.occurred_at)

    @event(Deceased)
    def _deceased(self, *, deceased_at: datetime, actor_id: str, timestamp: datetime) -> None:
        self.deceased_at = deceased_at

    def erase(self, *, legal_basis: str, by: Provenance) -> None:
        """Record the crypto-shredding. The event carries no PHI."""
        self._check_not_erased()
        if not legal_basis.strip():
            raise errors.InvalidValue("legal_basis", "must not be blank")
        self._erased(
            legal_basis=legal_basis,
            organisation_id=self.organisation_id,
            actor_id=by.actor_id,
            timestamp=by.occurred_at,
        )

    @event(Erased)
    def _erased(
        self,
        *,
        legal_basis: str,
        organisation_id: str | None,
        actor_id: str,
        timestamp: datetime,
    ) -> None:
        self.erased = True
        self.mrn = self.mrn_system = self.name = self.birth_date = self.sex = None
        self.contact = None
