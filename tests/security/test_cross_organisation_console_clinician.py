"""The cross-organisation matrix of the clinician's console pages: every clinician
route, called by a console session of every foreign actor (org-other's clinician,
auditor, admin, service and patient) and of our non-clinicians (auditor, admin,
patient), each having first tried to open org-main's patient's chart.

org-other's clinician is the one who may use these pages at all: a search of their
directory finds none of ours, and every page that would show or change our chart
answers 404, exactly as for an unknown id (the choice of our patient is kept in their
session, but reaches nothing). Every other role is refused (403) on every page. No
answer leaks our PHI or ids, nothing is written to our chart, and our own clinician
reads it (the positive control). test_cross_organisation_console.py's
``test_the_console_matrix_covers_every_route`` counts these rows too.
"""

from collections.abc import Callable
from dataclasses import dataclass

import httpx
from fastapi.testclient import TestClient

from tests.api.console_support import csrf_of
from tests.security.test_cross_organisation import leaks
from tests.security.test_cross_organisation_console import claims_of, console_session
from tests.security.two_orgs import World, settled

BASE = "/console/clinician"
JUSTIFICATION = "Collapsed in our waiting room, history needed now"
Call = Callable[[TestClient, World, str], httpx.Response]  # (client, world, csrf)


@dataclass(frozen=True)
class Row:
    route: str  # "METHOD /path" as the application declares it
    call: Call
    addresses_ours: bool  # a foreign clinician gets 404 (as for an unknown id), else 200


def _then(path: str, posted: Callable[[TestClient, World, str], httpx.Response]) -> Call:
    """A POST, then the page it redirects to (or the POST's refusal)."""

    def call(client: TestClient, world: World, csrf: str) -> httpx.Response:
        answer = posted(client, world, csrf)
        return client.get(path) if answer.status_code == 303 else answer

    return call


def _entry(world: World) -> str:
    return world.main.entries["plain"]


AMEND = {"reason": "not yours to amend", "version": "1", "quantity": "1", "unit": "kg"}
RECORD = {
    "version": "1",
    "kind": "note",
    "system": "loinc",
    "code": "11506-3",
    "display": "Progress note",
    "effective_at": "2026-11-20T09:30",
    "text": "written by a stranger",
}

ROWS = [
    Row(f"GET {BASE}/search", lambda c, w, t: c.get(f"{BASE}/search"), False),
    Row(
        f"POST {BASE}/search",
        _then(
            f"{BASE}/search",
            lambda c, w, t: c.post(f"{BASE}/search", data={"csrf": t, "mrn": w.main.mrn}),
        ),
        False,
    ),
    Row(
        f"POST {BASE}/chart",
        _then(
            f"{BASE}/chart",
            lambda c, w, t: c.post(
                f"{BASE}/chart", data={"csrf": t, "patient_id": w.main.patient_id}
            ),
        ),
        True,
    ),
    Row(f"GET {BASE}/chart", lambda c, w, t: c.get(f"{BASE}/chart"), True),
    Row(f"GET {BASE}/consents", lambda c, w, t: c.get(f"{BASE}/consents"), True),
    Row(f"GET {BASE}/timeline", lambda c, w, t: c.get(f"{BASE}/timeline"), True),
    Row(
        f"POST {BASE}/timeline",
        _then(
            f"{BASE}/timeline",
            lambda c, w, t: c.post(f"{BASE}/timeline", data={"csrf": t, "kind": "observation"}),
        ),
        True,
    ),
    Row(f"GET {BASE}/break-glass", lambda c, w, t: c.get(f"{BASE}/break-glass"), False),
    Row(
        f"POST {BASE}/break-glass",
        _then(
            f"{BASE}/timeline",
            lambda c, w, t: c.post(
                f"{BASE}/break-glass", data={"csrf": t, "justification": JUSTIFICATION}
            ),
        ),
        True,
    ),
    Row(f"GET {BASE}/entries/new", lambda c, w, t: c.get(f"{BASE}/entries/new"), False),
    Row(
        f"POST {BASE}/entries",
        lambda c, w, t: c.post(f"{BASE}/entries", data={"csrf": t, **RECORD}),
        True,
    ),
    Row(
        f"GET {BASE}/entries/{{entry_id}}/amend",
        lambda c, w, t: c.get(f"{BASE}/entries/{_entry(w)}/amend"),
        True,
    ),
    Row(
        f"POST {BASE}/entries/{{entry_id}}/amend",
        lambda c, w, t: c.post(f"{BASE}/entries/{_entry(w)}/amend", data={"csrf": t, **AMEND}),
        True,
    ),
    Row(
        f"POST {BASE}/trend",
        _then(
            f"{BASE}/trend",
            lambda c, w, t: c.post(f"{BASE}/trend", data={"csrf": t, "code": "2339-0"}),
        ),
        True,
    ),
    Row(f"GET {BASE}/trend", lambda c, w, t: c.get(f"{BASE}/trend"), True),
]


def sessions(world: World) -> dict[str, TestClient]:
    other, main = world.other, world.main
    actors = {
        "clinician of org-other": other.clinician,
        "auditor of org-other": other.auditor,
        "admin of org-other": other.admin,
        "service of org-other": other.service,
        "patient of org-other": other.patient,
        "our auditor": main.auditor,
        "our admin": main.admin,
        "our patient": main.patient,
    }
    return {name: console_session(world, claims_of(token)) for name, token in actors.items()}


def leaked(world: World, answer: httpx.Response, sent: str) -> list[str]:
    """Our PHI or ids in an answer, leaving out the search term the caller sent (a
    search form shows its own terms back)."""
    echo = httpx.Response(answer.status_code, text=answer.text.replace(sent, ""))
    return leaks(world, echo)


def test_foreign_clinicians_and_other_roles_get_nothing_of_our_charts(world: World) -> None:
    main = world.main
    before = world.client.get(
        f"/v1/patients/{main.patient_id}/timeline",
        params=settled(world.client, main.clinician),
        headers=main.clinician,
    ).json()["entries"]
    failures: list[str] = []
    for name, client in sessions(world).items():
        csrf = csrf_of(client.get("/console/").text)
        # Each first tries to open our patient's chart, kept in the session if it may.
        client.post(f"{BASE}/chart", data={"csrf": csrf, "patient_id": main.patient_id})
        foreign_clinician = name == "clinician of org-other"
        for row in ROWS:
            answer = row.call(client, world, csrf)
            expected = 403
            if foreign_clinician:
                expected = 404 if row.addresses_ours else 200
            where = f"{name}: {row.route}"
            if answer.status_code != expected:
                failures.append(f"{where} answered {answer.status_code}, not {expected}")
            failures += [f"{where} {leak}" for leak in leaked(world, answer, main.mrn)]
        if foreign_clinician:  # their own directory holds none of ours
            client.post(f"{BASE}/search", data={"csrf": csrf, "mrn": main.mrn})
            assert "0 patients found" in client.get(f"{BASE}/search").text
    assert failures == []
    after = world.client.get(
        f"/v1/patients/{main.patient_id}/timeline",
        params=settled(world.client, main.clinician),
        headers=main.clinician,
    ).json()["entries"]
    assert after == before  # nothing recorded or amended in our chart

    # The positive control: our clinician finds and reads the chart through the console.
    ours = console_session(world, claims_of(main.clinician))
    csrf = csrf_of(ours.get("/console/").text)
    ours.post(f"{BASE}/search", data={"csrf": csrf, "mrn": main.mrn})
    assert main.given in ours.get(f"{BASE}/search").text
    ours.post(f"{BASE}/chart", data={"csrf": csrf, "patient_id": main.patient_id})
    assert main.mrn in ours.get(f"{BASE}/chart").text
    assert "Consent directives" in ours.get(f"{BASE}/consents").text
    assert main.displays["plain"] in ours.get(f"{BASE}/timeline").text
    assert main.displays["mental"] not in ours.get(f"{BASE}/timeline").text  # its label
