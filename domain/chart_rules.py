"""Rules of the chart that need no history: what a valid MRN, birth date or entry is.

They are kept out of the aggregate so that the Patient module holds the event-sourced
behaviour, and these checks can be read (and reused by other callers) on their own.
"""

from datetime import date

from domain.errors import InvalidValue
from domain.values import Components, EntryValue, Provenance
from domain.vocabulary import EntryKind, Modality

EARLIEST_BIRTH_YEAR = 1850
MRN_MAX_LENGTH = 64


def check_mrn(mrn: str) -> None:
    if not mrn.strip() or len(mrn) > MRN_MAX_LENGTH:
        raise InvalidValue("mrn", f"must be 1 to {MRN_MAX_LENGTH} characters")


def check_birth_date(birth_date: date, by: Provenance) -> None:
    """Judged against the command's time, so replays and tests need no clock."""
    if birth_date > by.occurred_at.date():
        raise InvalidValue("birth_date", "must not be in the future")
    if birth_date.year < EARLIEST_BIRTH_YEAR:
        raise InvalidValue("birth_date", "is implausibly early")


def check_modality(kind: EntryKind, modality: Modality | None) -> None:
    """Only encounters have a modality, and every encounter needs one."""
    if kind is EntryKind.ENCOUNTER and modality is None:
        raise InvalidValue("modality", "is required for an encounter")
    if kind is not EntryKind.ENCOUNTER and modality is not None:
        raise InvalidValue("modality", "applies to encounters only")


def check_reason(reason: str) -> None:
    """A correction of the chart must say why; the reason is kept in its event."""
    if not reason.strip():
        raise InvalidValue("reason", "must not be blank")


def check_value(kind: EntryKind, value: EntryValue | None) -> None:
    """Components are the parts of a measured panel: observations and lab results."""
    panels = (EntryKind.OBSERVATION, EntryKind.LAB_RESULT)
    if isinstance(value, Components) and kind not in panels:
        raise InvalidValue("value.components", "apply to observations and lab results only")
