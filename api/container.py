"""What the routes need, built once by the composition root."""

from collections.abc import Callable
from dataclasses import dataclass, field

from api.auth import TokenVerifier
from api.settings import Settings
from application.access.access_log import Disclosures, GroupCommit
from application.access.audit_trail import AuditTrail
from application.access.integrity import Integrity
from application.access.replay import Replays
from application.charts.chart_reads import ChartReads
from application.charts.erasure import Erasure
from application.charts.patients import Patients
from application.consents.consents import Consents
from application.fhir.export_jobs import BulkExports
from application.ledger.ledger import CareLedger
from application.memberships.memberships import Memberships
from application.subscriptions.subscriptions import Subscriptions
from infrastructure.chain import ChainVerifier
from infrastructure.follower import LogFollower
from infrastructure.keys import KeyRing
from infrastructure.nats_relay import RelayHost
from infrastructure.projections.engine import PositionMoved, Projector
from infrastructure.projections.live import Listener, Positions, ProjectionHost
from infrastructure.projections.store import ViewStore


@dataclass
class Container:
    settings: Settings
    ledger: CareLedger
    verifier: TokenVerifier
    patients: Patients
    memberships: Memberships
    consents: Consents
    erasure: Erasure
    integrity: Integrity
    chain: ChainVerifier  # the same verifier, for the CLI's progress bar
    keys: KeyRing
    charts: ChartReads
    views: ViewStore
    positions: Positions
    group_commit: GroupCommit
    disclosures: Disclosures
    audit: AuditTrail
    replays: Replays
    subscriptions: Subscriptions
    exports: BulkExports | None = None
    projectors: list[Projector] = field(default_factory=list)
    projection_host: ProjectionHost | None = None
    listener: Listener | None = None
    followers: list[LogFollower] = field(default_factory=list)
    relay_host: RelayHost | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)

    def catch_up(self) -> None:
        """Bring every view up to the log's head now, in this thread. A projection host
        running beside it (a server's, on the same store) may commit a batch first: the
        step is discarded and taken again from where that one left the view."""
        for projector in self.projectors:
            while True:
                try:
                    if projector.step()[1] == 0:
                        break
                except PositionMoved:
                    continue

    def start_followers(self) -> None:
        """Start the log processes, the projections and the NOTIFY listener, if any."""
        if self.listener is not None:
            self.listener.start()
        if self.projection_host is not None:
            self.projection_host.start()
        for follower in self.followers:
            follower.start()
        if self.relay_host is not None:
            self.relay_host.start()

    def close(self) -> None:
        if self.relay_host is not None:
            self.relay_host.stop()
        for close in self.closers:
            close()
        if self.exports is not None:
            self.exports.close()
        for follower in self.followers:
            follower.stop()
        if self.projection_host is not None:
            self.projection_host.stop()
        if self.listener is not None:
            self.listener.stop()
        self.group_commit.close()
        if self.ledger.group_writes is not None:
            self.ledger.group_writes.close()
        self.ledger.close()
