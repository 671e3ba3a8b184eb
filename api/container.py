"""What the routes need, built once by the composition root."""

from dataclasses import dataclass, field

from api.auth import TokenVerifier
from api.settings import Settings
from application.consents import Consents
from application.erasure import Erasure
from application.integrity import Integrity
from application.ledger import CareLedger
from application.memberships import Memberships
from application.patients import Patients
from infrastructure.chain import ChainVerifier
from infrastructure.follower import LogFollower
from infrastructure.keys import KeyRing


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
    followers: list[LogFollower] = field(default_factory=list)

    def start_followers(self) -> None:
        for follower in self.followers:
            follower.start()

    def close(self) -> None:
        for follower in self.followers:
            follower.stop()
        self.ledger.close()
