"""The process that turns a sponsor's discontinuation into one termination per member.

It follows the log. For each ``SponsorProgramme.Discontinued`` event it terminates
every still-active membership enlisted in the programme at that version, and commits
those terminations together with its tracking position in one transaction. A restart
therefore resumes after the last committed discontinuation: nobody is skipped, and
nobody is terminated twice (an already-ended membership is left alone).
"""

from collections.abc import Callable
from uuid import UUID

from eventsourcing.domain import Aggregate, DomainEventProtocol
from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.utils import get_topic

from application.ledger.ledger import CONFLICT_RETRIES, CareLedger
from application.ports import Clock
from domain.membership import Membership
from domain.sponsor import SponsorProgramme
from domain.values import Provenance
from domain.vocabulary import MembershipStatus, TerminationReason

PROCESS_ACTOR = "process:sponsor-discontinuation"


class SponsorDiscontinuation:
    name = "sponsor_discontinuation"
    topics = (get_topic(SponsorProgramme.Discontinued),)

    def __init__(
        self,
        ledger: CareLedger,
        clock: Clock,
        before_commit: Callable[[int], None] | None = None,
    ) -> None:
        self.ledger = ledger
        self.clock = clock
        # A hook for fault-injection tests: called with the number of terminations
        # about to be committed.
        self.before_commit = before_commit

    def position(self) -> int:
        return self.ledger.recorder.max_tracking_id(self.ledger.name) or 0

    def process(self, event: DomainEventProtocol[UUID], tracking: Tracking) -> int:
        """Handle one discontinuation; returns how many memberships it terminated."""
        assert isinstance(event, SponsorProgramme.Discontinued)
        for _ in range(CONFLICT_RETRIES):
            if self.ledger.recorder.has_tracking_id(
                tracking.application_name, tracking.notification_id
            ):
                return 0  # another instance already committed this one
            terminated = self._terminations(event)
            if self.before_commit is not None:
                self.before_commit(len(terminated))
            try:
                self.ledger.save_tracked(terminated, tracking)
            except IntegrityError:
                continue  # a member changed meanwhile: terminate again on fresh state
            return len(terminated)
        raise RuntimeError("sponsor discontinuation kept conflicting; will retry later")

    def _terminations(self, event: SponsorProgramme.Discontinued) -> list[Membership]:
        programme: Aggregate = self.ledger.repository.get(
            event.originator_id, version=event.originator_version
        )
        assert isinstance(programme, SponsorProgramme)
        by = Provenance(PROCESS_ACTOR, self.clock())
        terminated = []
        for membership_id in programme.member_ids:
            membership: Aggregate = self.ledger.repository.get(membership_id)
            assert isinstance(membership, Membership)
            if membership.status != MembershipStatus.ACTIVE:
                continue
            membership.terminate(
                reason=TerminationReason.SPONSOR_PROGRAM_ENDED,
                effective_on=event.effective_on,
                by=by,
            )
            terminated.append(membership)
        return terminated
