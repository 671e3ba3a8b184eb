"""The read models, told as stories on SQLite and PostgreSQL: the timeline, the
directory, consent state and the roster; erasure tombstones; rebuilds beside the live
version; and read-your-writes through ``min_position``."""

import json
import random
import threading
import time
from datetime import date
from typing import Any
from uuid import UUID

import pytest

from api.container import Container
from application.charts.disclosure_rendering import consent_state
from application.charts.read_models import ViewsBehind
from application.context import Role
from application.errors import Gone
from domain.consent import Consent
from domain.patient import Patient
from domain.subscriber import ContentLevel
from domain.values import HumanName, TextValue
from domain.vocabulary import EntryKind, MembershipStatus, Plan, Purpose, SensitivityLabel
from infrastructure.projections.rebuild import rebuild, start_rebuild
from tests.conftest import ORG
from tests.contract.raw_store import RawStore
from tests.contract.read_model_support import (
    T0,
    TABLES,
    VIEWS,
    actor,
    admin,
    all_digests,
    clinician,
    grant,
    minutes,
    record,
    record_many,
    recorded_statements,
    register,
    rows_per_version,
    under_care,
    versions,
    view_digest,
)

OTHER_ORG = "org-elsewhere"
MENTAL = SensitivityLabel.MENTAL_HEALTH
SUBSTANCE = SensitivityLabel.SUBSTANCE_USE


def timeline(container: Container, patient_id: UUID, **query: Any) -> list[dict[str, Any]]:
    return container.charts.timeline(clinician(), patient_id, **query).json()["entries"]


def ids(entries: list[dict[str, Any]]) -> list[UUID]:
    return [UUID(e["entry_id"]) for e in entries]


def projector(container: Container, name: str) -> Any:
    return next(p for p in container.projectors if p.name == name)


def enrol(container: Container, patient_id: UUID, sponsor: str | None) -> UUID:
    outcome = container.memberships.enrol(
        admin(),
        patient_id=patient_id,
        plan=Plan.EMPLOYER if sponsor else Plan.INDIVIDUAL,
        sponsor_id=sponsor,
        annual_fee_cents=0 if sponsor else 19900,
        starts_on=date(2026, 1, 1),
        ends_on=date(2026, 12, 31),
    )
    return UUID(outcome.result["id"])


def patient_rows(container: Container, patient_id: UUID) -> dict[str, int]:
    """Rows naming the patient in each view table, in every version."""
    store = container.views
    counts = {}
    with store.reading() as cursor:
        for name, spec in TABLES.items():
            [(n,)] = cursor.execute(
                f"SELECT count(*) FROM {store.table(spec.table)} WHERE patient_id = ?",
                (patient_id.hex,),
            ).fetchall()
            counts[name] = int(n)
    return counts


def populated(container: Container, mrn: str, sponsor: str | None = None) -> UUID:
    """A patient with entries (one amended, one entered in error), a directive and a
    membership."""
    patient_id = register(container, mrn, family=f"Family-{mrn}")
    first, _ = record(container, patient_id, at=T0, kind=EntryKind.OBSERVATION)
    second, _ = record(container, patient_id, at=T0 + minutes(5), labels=frozenset({MENTAL}))
    record(container, patient_id, at=T0 + minutes(10), kind=EntryKind.CONDITION)
    container.patients.amend_entry(
        clinician(),
        patient_id,
        first,
        reason="typo",
        code=None,
        value=TextValue("amended"),
        effective_at=None,
        modality=None,
        labels=None,
    )
    container.patients.mark_entered_in_error(clinician(), patient_id, second, reason="dup")
    grant(container, patient_id, labels=frozenset({MENTAL}))
    enrol(container, patient_id, sponsor)
    return patient_id


# The timeline --------------------------------------------------------------------------


def test_the_timeline_is_ordered_by_effective_time_and_filters_by_kind_and_period(
    container: Container,
) -> None:
    # Given entries recorded out of effective-time order, of two kinds
    patient_id = register(container, "MRN-T1")
    under_care(container, patient_id)
    at = {}
    for offset, kind in (
        (30, EntryKind.NOTE),
        (10, EntryKind.CONDITION),
        (20, EntryKind.NOTE),
        (40, EntryKind.CONDITION),
        (0, EntryKind.NOTE),
    ):
        entry_id, _ = record(container, patient_id, at=T0 + minutes(offset), kind=kind)
        at[offset] = entry_id
    container.catch_up()

    # When the timeline is read, Then it is in effective-time order
    assert ids(timeline(container, patient_id)) == [at[m] for m in (0, 10, 20, 30, 40)]
    # And a kind filter keeps only that kind, still in order
    conditions = timeline(container, patient_id, kind="condition")
    assert ids(conditions) == [at[10], at[40]]
    assert {e["kind"] for e in conditions} == {"condition"}
    # And since is inclusive, until exclusive
    window = timeline(container, patient_id, since=T0 + minutes(10), until=T0 + minutes(30))
    assert ids(window) == [at[10], at[20]]
    assert [e["effective_at"] for e in window] == [
        "2026-03-01T08:10:00.000000Z",
        "2026-03-01T08:20:00.000000Z",
    ]
    # And the kind and the period combine
    assert ids(timeline(container, patient_id, kind="note", since=T0 + minutes(5))) == [
        at[20],
        at[30],
    ]


def test_cursor_paging_returns_every_entry_exactly_once(container: Container) -> None:
    # Given 120 entries, several sharing each effective time, recorded in random order
    patient_id = register(container, "MRN-T2")
    under_care(container, patient_id)
    moments = [T0 + minutes(i // 4) for i in range(120)]
    random.Random(7).shuffle(moments)
    written = record_many(container, patient_id, moments[:60], EntryKind.NOTE)
    written += record_many(container, patient_id, moments[60:], EntryKind.NOTE)
    container.catch_up()

    # When it is read 50 at a time, following the cursor
    pages: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        page = container.charts.timeline(clinician(), patient_id, cursor=cursor, limit=50).json()
        pages.append(page["entries"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(pages) < 10, "the cursor never ends"

    # Then the pages are 50, 50 and 20, and together hold each entry exactly once
    assert [len(p) for p in pages] == [50, 50, 20]
    seen = [e for p in pages for e in p]
    assert len(set(ids(seen))) == 120 and set(ids(seen)) == set(written)
    # And in strictly increasing (effective time, entry id) order across page boundaries
    keys = [(e["effective_at"], UUID(e["entry_id"]).hex) for e in seen]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


def test_an_amended_entry_shows_its_latest_version_and_an_erroneous_one_stays_visible(
    container: Container,
) -> None:
    # Given three entries; the first is amended (value and time), the second in error
    patient_id = register(container, "MRN-T3")
    under_care(container, patient_id)
    first, _ = record(container, patient_id, at=T0, text="first draft")
    second, _ = record(container, patient_id, at=T0 + minutes(1), text="duplicate")
    third, _ = record(container, patient_id, at=T0 + minutes(2), text="untouched")
    container.patients.amend_entry(
        clinician(),
        patient_id,
        first,
        reason="corrected",
        code=None,
        value=TextValue("second draft"),
        effective_at=None,
        modality=None,
        labels=None,
    )
    container.patients.amend_entry(
        clinician(),
        patient_id,
        first,
        reason="later",
        code=None,
        value=TextValue("final"),
        effective_at=T0 + minutes(9),
        modality=None,
        labels=None,
    )
    container.patients.mark_entered_in_error(clinician(), patient_id, second, reason="dup")
    container.catch_up()

    # When the timeline is read
    entries = {UUID(e["entry_id"]): e for e in timeline(container, patient_id)}

    # Then the amended entry shows only its latest version, and moved to its new time
    assert ids(timeline(container, patient_id)) == [second, third, first]
    assert entries[first]["status"] == "amended"
    assert entries[first]["value"] == {"text": "final"}
    assert entries[first]["effective_at"] == "2026-03-01T08:09:00.000000Z"
    # And the entry in error is present, marked so, with its content
    assert entries[second]["status"] == "entered_in_error"
    assert entries[second]["value"] == {"text": "duplicate"}
    assert entries[third]["status"] == "active"


def test_labelled_entries_need_a_directive_naming_the_org_and_the_label(
    container: Container,
) -> None:
    # Given a chart with a plain, a mental-health and a substance-use entry
    patient_id = register(container, "MRN-T4")
    under_care(container, patient_id)
    plain, _ = record(container, patient_id, at=T0)
    mental, _ = record(container, patient_id, at=T0 + minutes(1), labels=frozenset({MENTAL}))
    substance, _ = record(container, patient_id, at=T0 + minutes(2), labels=frozenset({SUBSTANCE}))
    container.catch_up()

    # Then without a directive a clinician sees only the plain entry
    assert ids(timeline(container, patient_id)) == [plain]
    # And a directive naming another organisation changes nothing
    grant(container, patient_id, grantee=OTHER_ORG, labels=frozenset({MENTAL, SUBSTANCE}))
    container.catch_up()
    assert ids(timeline(container, patient_id)) == [plain]
    # When a directive names the clinician's organisation and the mental-health label
    directive = grant(container, patient_id, grantee=ORG, labels=frozenset({MENTAL}))
    container.catch_up()
    # Then the mental-health entry appears, the substance-use one stays hidden
    assert ids(timeline(container, patient_id)) == [plain, mental]
    # And the patient themself always sees everything
    own = container.charts.timeline(
        actor(Role.PATIENT, "pat-1", patient=patient_id), patient_id
    ).json()
    assert ids(own["entries"]) == [plain, mental, substance]
    # When the directive is revoked, Then the labelled entry is hidden again
    container.consents.revoke_directive(clinician(), patient_id, directive, reason="withdrawn")
    container.catch_up()
    assert ids(timeline(container, patient_id)) == [plain]


def _plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += _plan_nodes(child)
    return nodes


def test_a_page_of_a_long_chart_reads_only_a_page_of_rows(
    container: Container, database_url: str
) -> None:
    # Given a chart of 2,000 entries
    patient_id = register(container, "MRN-T5")
    under_care(container, patient_id)
    moments = [T0 + minutes(i) for i in range(2000)]
    for start in range(0, 2000, 200):
        record_many(container, patient_id, moments[start : start + 200], EntryKind.NOTE)
    container.catch_up()
    if database_url.startswith("postgres"):
        with RawStore(database_url).as_superuser() as conn:
            conn.execute("ANALYZE view_timeline")

    # When the first and the second page are read, recording the statements they run
    with recorded_statements(container) as statements:
        first = container.charts.timeline(clinician(), patient_id, limit=50).json()
        second = container.charts.timeline(
            clinician(), patient_id, limit=50, cursor=first["next_cursor"]
        ).json()
    assert [e["effective_at"] for e in first["entries"] + second["entries"]] == [
        m.strftime("%Y-%m-%dT%H:%M:%S.000000Z") for m in moments[:100]
    ]
    pages = [(s, p) for s, p in statements if "view_timeline" in s and "ORDER BY" in s]
    assert len(pages) == 2

    # Then each is an index range scan that touches about a page of rows, not the chart
    store = container.views
    for sql, params in pages:
        with store.reading() as cursor:
            if store.is_postgres:
                [(plan,)] = cursor.execute(
                    "EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params
                ).fetchall()
                plan = plan if isinstance(plan, list) else json.loads(plan)
                nodes = _plan_nodes(plan[0]["Plan"])
                kinds = {n["Node Type"] for n in nodes}
                assert "Seq Scan" not in kinds and "Sort" not in kinds, kinds
                [scan] = [n for n in nodes if n.get("Relation Name") == "view_timeline"]
                assert scan["Index Name"] == "view_timeline_by_time", scan
                assert scan["Actual Rows"] <= 51, scan
                assert scan.get("Rows Removed by Filter", 0) == 0, scan
            else:
                details = [
                    r[-1] for r in cursor.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
                ]
                assert any("USING INDEX view_timeline_by_time" in d for d in details), details
                assert not any("TEMP B-TREE" in d for d in details), details
                assert not any(d.startswith("SCAN") for d in details), details


# The directory -------------------------------------------------------------------------


def search(container: Container, org: str = ORG, **query: Any) -> list[UUID]:
    found = container.charts.search(clinician(org), **query).json()
    return [UUID(i["id"]) for i in found["items"]]


def test_the_directory_finds_by_mrn_or_family_and_birth_date_within_the_org(
    container: Container,
) -> None:
    # Given a patient registered with a mixed-case MRN and a curly apostrophe
    patient_id = register(
        container, "MRN-Ab-0042", family="O\u2019Brien", given="Siobhan", birth=date(1990, 2, 3)
    )
    someone_else = register(container, "MRN-Ab-0043", family="Brien", birth=date(1990, 2, 3))
    container.catch_up()

    # Then an exact MRN finds them whatever the case and spacing
    for mrn in ("MRN-Ab-0042", "  mrn-ab-0042 ", "MRN-AB-0042"):
        assert search(container, mrn=mrn) == [patient_id], mrn
    # And a near miss finds nothing (exact match, not prefix)
    assert search(container, mrn="MRN-Ab-004") == []
    # And family name plus birth date finds them, normalised
    found = container.charts.search(
        clinician(), family="  o'BRIEN ", birth_date=date(1990, 2, 3)
    ).json()
    assert [UUID(i["id"]) for i in found["items"]] == [patient_id]
    assert found["items"][0]["name"] == {"given": "Siobhan", "family": "O\u2019Brien"}
    assert search(container, family="Brien", birth_date=date(1990, 2, 3)) == [someone_else]
    assert search(container, family="O'Brien", birth_date=date(1990, 2, 4)) == []
    # And another organisation finds nothing
    assert search(container, OTHER_ORG, mrn="MRN-Ab-0042") == []
    assert search(container, OTHER_ORG, family="O'Brien", birth_date=date(1990, 2, 3)) == []


def test_updated_demographics_are_found_by_the_new_name_only(container: Container) -> None:
    # Given a registered, projected patient
    patient_id = register(container, "MRN-D2", family="Example", birth=date(1984, 7, 12))
    container.catch_up()
    assert search(container, family="Example", birth_date=date(1984, 7, 12)) == [patient_id]

    # When their family name and birth date change
    container.patients.update_demographics(
        clinician(),
        patient_id,
        name=HumanName("Ada", "Lovelace"),
        birth_date=date(1984, 7, 13),
        sex=None,
        contact=None,
    )
    container.catch_up()

    # Then the new name finds them, the old one does not, and the MRN still does
    assert search(container, family="lovelace", birth_date=date(1984, 7, 13)) == [patient_id]
    assert search(container, family="Example", birth_date=date(1984, 7, 12)) == []
    assert search(container, family="Lovelace", birth_date=date(1984, 7, 12)) == []
    assert search(container, mrn="mrn-d2") == [patient_id]


def test_the_view_tables_hold_no_plaintext_identifiers(
    container: Container, database_url: str
) -> None:
    # Given a patient with distinctive identifiers, projected into every view
    canaries = ["MRN-CANARY-Q7Z", "Zyxwvutsrq", "Qponmlkji", "1971-05-06"]
    patient_id = register(
        container, canaries[0], family=canaries[1], given=canaries[2], birth=date(1971, 5, 6)
    )
    record(container, patient_id, text="CANARYNOTE-4411")
    grant(container, patient_id, grantee="org-canary-grantee")
    container.catch_up()
    assert search(container, mrn=canaries[0]) == [patient_id]

    # When the view tables are read raw, as a superuser
    raw = RawStore(database_url)
    cells: list[bytes] = []
    with raw.as_superuser() as conn:
        for spec in TABLES.values():
            for row in raw.run(conn, f"SELECT * FROM {spec.table}"):
                cells += [
                    bytes(v) if isinstance(v, memoryview | bytes) else str(v).encode() for v in row
                ]
    assert cells

    # Then no cell holds any identifier or the note, in any case
    blob = b"\x00".join(cells)
    for canary in [*canaries, "CANARYNOTE-4411", "org-canary-grantee"]:
        for form in {canary, canary.lower(), canary.upper()}:
            assert form.encode() not in blob, form


# Consent state -------------------------------------------------------------------------


def test_consent_state_carries_directives_and_version_as_the_aggregate_does(
    container: Container,
) -> None:
    readers = container.charts.views
    # Given a patient whose consent record has not been projected yet
    patient_id = register(container, "MRN-C1")
    assert readers.consents.of_patient(patient_id) is None
    container.catch_up()
    consent_id = container.ledger.load(Patient, patient_id, "patient").consent_id
    assert readers.consents.of_patient(patient_id) == {
        "consent_id": str(consent_id),
        "consent_version": 1,
        "directives": {},
        "restrictions": {},
    }

    # When two directives are granted, one revoked and a restriction asked for
    kept = grant(container, patient_id, grantee="org-pharmacy")
    container.catch_up()
    assert container.consents.current(clinician(), patient_id).json()["consent_version"] == 2
    revoked = grant(container, patient_id, grantee=ORG, labels=frozenset({MENTAL}))
    container.consents.revoke_directive(clinician(), patient_id, revoked, reason="withdrawn")
    container.consents.request_restriction(
        clinician(),
        patient_id,
        purposes=frozenset({Purpose.HMARKT}),
        labels=frozenset(),
        recipient="org-marketing",
    )
    container.catch_up()

    # Then the view's state is exactly the aggregate's state
    consent_id = container.ledger.load(Patient, patient_id, "patient").consent_id
    aggregate = container.ledger.load(Consent, consent_id, "consent")
    view = readers.consents.of_patient(patient_id)
    assert view == {"consent_id": str(consent_id), **consent_state(aggregate)}
    assert view is not None and view["consent_version"] == aggregate.version == 5
    # And the use case, served from the view, shows each directive's status
    current = container.consents.current(clinician(), patient_id).json()
    statuses = {UUID(d["directive_id"]): d["status"] for d in current["directives"]}
    assert current["consent_version"] == 5
    assert statuses == {kept: "active", revoked: "revoked"}
    assert [r["recipient"] for r in current["restrictions"]] == ["org-marketing"]


# The roster ----------------------------------------------------------------------------


def test_the_roster_lists_by_patient_sponsor_and_status(container: Container) -> None:
    # Given three members: two sponsored by acme, one individual
    first, second, third = (register(container, f"MRN-R{i}") for i in range(3))
    m1 = enrol(container, first, "acme")
    m2 = enrol(container, second, "acme")
    m3 = enrol(container, third, None)
    # When one is cancelled and another renewed
    container.memberships.cancel(admin(), m2, reason="moved away")
    container.memberships.renew(admin(), m3, ends_on=date(2027, 12, 31))
    container.catch_up()

    def listed(**query: Any) -> dict[UUID, dict[str, Any]]:
        items = container.memberships.roster(admin(), **query)
        return {UUID(i["id"]): i for i in items}

    # Then each filter finds exactly its memberships
    assert set(listed(patient_id=first)) == {m1}
    assert set(listed(sponsor_id="acme")) == {m1, m2}
    assert set(listed(status=MembershipStatus.CANCELLED)) == {m2}
    assert set(listed(status=MembershipStatus.ACTIVE)) == {m1, m3}
    assert set(listed(sponsor_id="acme", status=MembershipStatus.ACTIVE)) == {m1}
    # And the cancellation and renewal are reflected
    everyone = listed()
    assert set(everyone) == {m1, m2, m3}
    assert everyone[m2]["status"] == "cancelled" and everyone[m2]["version"] == 2
    assert everyone[m3]["ends_on"] == "2027-12-31" and everyone[m3]["version"] == 2
    assert everyone[m3]["plan"] == "individual" and everyone[m1]["sponsor_id"] == "acme"
    # And another organisation's admin sees none of them
    assert container.memberships.roster(admin(OTHER_ORG)) == []


# Erasure tombstones --------------------------------------------------------------------


def test_erasing_a_patient_purges_their_rows_and_rebuilds_skip_their_events(
    container: Container,
) -> None:
    # Given a public-health registry (it needs no membership), and three patients
    # projected into every view, its outbox included
    container.subscriptions.register(
        admin(),
        name="Registry",
        recipient_org=ORG,
        purpose=Purpose.PUBHLTH,
        kinds=list(EntryKind),
        labels=[],
        content=ContentLevel.FULL,
    )
    erased = populated(container, "MRN-E1", sponsor="acme")
    kept = [populated(container, "MRN-E2", sponsor="acme"), populated(container, "MRN-E3")]
    container.catch_up()
    assert all(n > 0 for n in patient_rows(container, erased).values())
    before = all_digests(container, without={erased})

    # When one of them is erased and the views catch up
    container.erasure.erase(admin(), erased, legal_basis="GDPR Art. 17 request 2026-77")
    container.catch_up()

    # Then the erased patient's rows are gone from every view
    assert patient_rows(container, erased) == dict.fromkeys(TABLES, 0)
    # And the other patients' views are unchanged
    assert all_digests(container) == before
    assert all(n > 0 for p in kept for n in patient_rows(container, p).values())

    # When every view is rebuilt from the log
    skipped = {}
    for p in (p for p in container.projectors if p.name in TABLES):  # the patients' views
        already = p.skipped_erased
        assert rebuild(p) == 2
        skipped[p.name] = p.skipped_erased - already
    # Then each rebuild skipped the erased patient's undecryptable events
    assert all(n > 0 for n in skipped.values()), skipped
    # And produced the same views, still without the erased patient
    assert all_digests(container) == before
    assert patient_rows(container, erased) == dict.fromkeys(TABLES, 0)
    # And the erased patient's timeline answers Gone, and search no longer finds them
    with pytest.raises(Gone):
        container.charts.timeline(clinician(), erased)
    assert search(container, mrn="MRN-E1") == []
    assert search(container, mrn="MRN-E2") == [kept[0]]


# Rebuilds ------------------------------------------------------------------------------


def test_reads_use_the_active_version_while_a_rebuild_fills_the_next(
    container: Container,
) -> None:
    # Given projected patients
    patients = [populated(container, f"MRN-B{i}", sponsor="acme") for i in range(3)]
    container.catch_up()
    page_before = timeline(container, patients[0])

    # When a timeline rebuild has applied only its first small batch
    timeline_projector = projector(container, "timeline")
    timeline_projector.batch_size = 3
    building = start_rebuild(timeline_projector)
    building, advanced = timeline_projector.step(building)
    assert advanced > 0
    head = container.ledger.recorder.max_notification_id() or 0
    assert [(v, s) for v, s, _ in versions(container, "timeline")] == [
        (1, "active"),
        (2, "building"),
    ]
    partial = rows_per_version(container, "timeline")
    assert 0 < partial.get(2, 0) < partial[1]

    # Then reads still answer from the whole active version
    assert timeline(container, patients[0]) == page_before
    # And a write made meanwhile reaches the active version
    late, _ = record(container, patients[1], at=T0 + minutes(99), text="late")
    container.catch_up()
    assert late in ids(timeline(container, patients[1]))
    before = all_digests(container)

    # When the rebuild resumes and finishes, and the other views are rebuilt too
    assert rebuild(timeline_projector) == 2
    for p in container.projectors:
        if p.name != "timeline":
            assert rebuild(p) == 2

    # Then every active version moved from 1 to 2 at the log's head
    head = container.ledger.recorder.max_notification_id() or 0
    for name in VIEWS:
        assert versions(container, name) == [(2, "active", head)], name
        # And the retired version's rows were dropped
        assert set(rows_per_version(container, name)) == {2}, name
    # And the content is what it was before the rebuild
    assert all_digests(container) == before
    assert late in ids(timeline(container, patients[1]))


def test_an_interrupted_rebuild_resumes_its_building_version(container: Container) -> None:
    # Given a directory rebuild stopped after one batch
    for i in range(5):
        register(container, f"MRN-I{i}")
    container.catch_up()
    before = view_digest(container, "directory")
    directory = projector(container, "directory")
    directory.batch_size = 2
    directory.step(start_rebuild(directory))

    # When rebuild runs again, Then it finishes that version rather than starting another
    assert rebuild(directory) == 2
    assert [(v, s) for v, s, _ in versions(container, "directory")] == [(2, "active")]
    assert view_digest(container, "directory") == before


# Read-your-writes ----------------------------------------------------------------------


def test_a_min_position_wait_wakes_when_a_projector_commits(container: Container) -> None:
    # Given a write the views have not projected, and no fallback refresh to help
    patient_id = register(container, "MRN-W1")
    under_care(container, patient_id)
    entry_id, position = record(container, patient_id, text="fresh")
    container.positions.refresh_every = 60.0
    assert container.projection_host is not None
    outcome: dict[str, Any] = {}

    def wait() -> None:
        started = time.monotonic()
        outcome["reached"] = container.positions.wait_for(["timeline"], position, timeout=30)
        outcome["waited"] = time.monotonic() - started

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive(), "the wait returned before anything projected"

    # When the projection host starts and commits
    container.projection_host.start()
    waiter.join(20)

    # Then the waiter was woken by the commit, long before its timeout or a refresh
    assert outcome["reached"] is True
    assert outcome["waited"] < 10, outcome
    # And a read with that min_position shows the write
    page = container.charts.timeline(clinician(), patient_id, min_position=position).json()
    assert ids(page["entries"]) == [entry_id]


def test_a_min_position_read_gives_up_with_views_behind_when_nothing_projects(
    container: Container,
) -> None:
    # Given a short bound and writes that nothing projects
    container.charts.views.wait_seconds = 0.3
    patient_id = register(container, "MRN-W2")
    under_care(container, patient_id)
    _, position = record(container, patient_id)
    membership = enrol(container, patient_id, None)
    del membership

    # When each view is read at that position, Then each gives up after the bound
    reads = [
        lambda: container.charts.timeline(clinician(), patient_id, min_position=position).json(),
        lambda: container.charts.search(clinician(), mrn="MRN-W2", min_position=position).json(),
        lambda: container.consents.current(clinician(), patient_id, min_position=position).json(),
        lambda: container.memberships.roster(admin(), min_position=position),
    ]
    for read in reads:
        started = time.monotonic()
        with pytest.raises(ViewsBehind):
            read()
        assert 0.25 <= time.monotonic() - started < 5

    # And once the views catch up the same reads answer
    container.catch_up()
    assert len(reads[0]()["entries"]) == 1
    assert [i["id"] for i in reads[1]()["items"]] == [str(patient_id)]
    assert reads[2]()["consent_version"] == 1
    assert len(reads[3]()) == 2  # the care membership and the one enrolled above
