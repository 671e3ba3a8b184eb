"""`careledger demo` seeds consistent, repeatable synthetic data."""

from pathlib import Path
from uuid import UUID

from api.bootstrap import build
from api.demo import seed_demo
from application.context import Role
from tests.conftest import make_settings
from tests.contract.stories import ctx


def test_the_demo_is_consistent_and_repeatable(tmp_path: Path) -> None:
    mrns = []
    for run in ("a", "b"):
        container = build(make_settings(f"sqlite:///{tmp_path / run}.db", tmp_path / "var"))
        try:
            summary = seed_demo(container, patients=6, seed=3)
            roster = container.memberships.roster(ctx(Role.ADMIN, "admin-1"))
            mrns.append(
                sorted(
                    container.patients.demographics(
                        ctx(Role.CLINICIAN), UUID(item["patient_id"])
                    ).json()["mrn"]
                    for item in roster
                )
            )
        finally:
            container.close()
        assert summary.startswith("seeded 6 patients,")
        assert len(roster) == 6
    assert mrns[0] == mrns[1] == [f"DEMO-{n:06d}" for n in range(6)]
