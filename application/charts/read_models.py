"""What the read side offers the use cases: ports to the projected views.

The views are eventually consistent. A query that passes ``min_position`` (the
position a command returned) waits until every view it reads has reached it, woken by
the projection's commit; past ``wait_seconds`` it gives up with ``ViewsBehind`` (503
with Retry-After) rather than answer from a view that does not yet show the write. A
``min_position`` past the log's head is refused (422): no write returned it.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol
from uuid import UUID

from application.errors import ApplicationError
from domain.errors import InvalidValue

SORTABLE_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


def sortable_time(moment: datetime) -> str:
    """Fixed-width UTC text, so that text order is time order on both databases."""
    utc = moment.astimezone(UTC)
    # strftime's %Y drops a year's leading zeros, which would break the fixed width.
    return f"{utc.year:04d}" + utc.strftime(SORTABLE_TIME.removeprefix("%Y"))


def time_bound(field: str, moment: datetime | None) -> str | None:
    """A query's time bound as sortable text; a time without a zone is refused."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise InvalidValue(field, "must carry a time zone")
    try:
        return sortable_time(moment)
    except OverflowError:
        raise InvalidValue(field, "is outside the years 1 to 9999 in UTC") from None


Admit = Callable[[dict[str, Any]], bool]
Key = tuple[str, str]


@dataclass(frozen=True)
class TimelinePage:
    entries: list[dict[str, Any]]
    next_key: Key | None
    chart_version: int  # the patient stream's version the view reflects


class TimelineView(Protocol):
    def page(
        self,
        patient_id: UUID,
        *,
        kind: str | None,
        since: str | None,
        until: str | None,
        after: Key | None,
        limit: int,
        admit: Admit,
    ) -> TimelinePage: ...


class PatientDirectory(Protocol):
    def by_mrn(
        self,
        organisation_id: str,
        mrn: str,
        limit: int,
        system: str | None = None,
        after: str | None = None,
    ) -> list[dict[str, Any]]: ...

    def by_name(
        self,
        organisation_id: str,
        family: str,
        birth_date: date,
        limit: int,
        after: str | None = None,
    ) -> list[dict[str, Any]]: ...

    def organisation_of(self, patient_id: UUID) -> str | None: ...

    def patient_ids(self, organisation_id: str, after: UUID | None, limit: int) -> list[UUID]:
        """The organisation's patients in id order, after ``after``: a bulk export's keyset
        walk, one page in memory at a time."""
        ...


class ConsentStates(Protocol):
    def of_patient(self, patient_id: UUID) -> dict[str, Any] | None: ...


class MembershipRoster(Protocol):
    def memberships(
        self,
        organisation_id: str,
        *,
        patient_id: UUID | None,
        sponsor_id: str | None,
        status: str | None,
        limit: int,
        today: date | None = None,
        after: tuple[str, str] | None = None,
    ) -> list[dict[str, Any]]: ...

    def member_ids(
        self, organisation_id: str, sponsor_id: str, today: date, after: UUID | None, limit: int
    ) -> list[UUID]:
        """The patients with a membership of this sponsor in force on ``today`` (its
        roster, a FHIR Group), in id order, after ``after``."""
        ...


class ViewPositions(Protocol):
    def head(self) -> int: ...

    def within_log(self, position: int) -> bool: ...

    def wait_for(self, names: Sequence[str], position: int, timeout: float) -> bool: ...


class ViewsBehind(ApplicationError):
    """The views did not reach the asked-for position in time; retry shortly."""

    def __init__(self, retry_after: int = 1) -> None:
        super().__init__("the read models have not reached min_position yet; retry shortly")
        self.retry_after = retry_after


class ReadModels:
    """The ports together, and the read-your-writes wait."""

    def __init__(
        self,
        timeline: TimelineView,
        directory: PatientDirectory,
        consents: ConsentStates,
        roster: MembershipRoster,
        positions: ViewPositions,
        *,
        wait_seconds: float = 5.0,
    ) -> None:
        self.timeline = timeline
        self.directory = directory
        self.consents = consents
        self.roster = roster
        self.positions = positions
        self.wait_seconds = wait_seconds

    def caught_up(self, names: Sequence[str], min_position: int | None) -> None:
        """Wait until the views show ``min_position``; a position the log has not reached
        is a client error (422), not something to wait for."""
        if min_position is None or min_position <= 0:
            return
        if not self.positions.within_log(min_position):
            raise InvalidValue(
                "min_position", "is past the log's head; pass a position a write returned"
            )
        if not self.positions.wait_for(names, min_position, self.wait_seconds):
            raise ViewsBehind()

    def caught_up_with_log(self, names: Sequence[str], timeout: float) -> bool:
        """Wait, at most ``timeout`` (and never past ``wait_seconds``), until the views
        show every write the log holds now; True once they do. For a decision that may
        rest on a write acknowledged a moment ago, where the caller passed no position."""
        wait = min(timeout, self.wait_seconds)
        return self.positions.wait_for(names, self.positions.head(), wait)
