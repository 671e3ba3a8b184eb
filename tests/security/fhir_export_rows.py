"""The Bulk Data rows of the /fhir cross-organisation matrix (``test_cross_organisation_fhir``):
another organisation's clinician may export their own organisation (and their own
sponsor's roster), and what they download holds nothing of ours; nobody but our
requester polls, downloads or cancels our export (404, as for an unknown one)."""

from typing import Any
from uuid import UUID

import httpx
import orjson

from tests.fhir.export_support import ASYNC, finished
from tests.security.test_cross_organisation import (
    ACTORS,
    CLINICIAN,
    Call,
    Expect,
    Ids,
    Row,
    everyone,
    token,
)
from tests.security.two_orgs import UNKNOWN_ID, World

UNKNOWN_EXPORT = "00000000-0000-4000-8000-0000000e4b0e"
_exports: dict[int, dict[str, Any]] = {}  # our clinician's export, made once per world


def our_export(world: World) -> dict[str, Any]:
    """An export our clinician kicked off and saw complete: its id and manifest."""
    found = _exports.get(id(world))
    if found is None:
        client = world.client
        response = client.get("/fhir/$export", headers={**world.main.clinician, **ASYNC})
        assert response.status_code == 202, response.text
        status = httpx.URL(response.headers["content-location"]).path
        manifest = finished(client, status, world.main.clinician)
        found = {"id": status.rsplit("/", 1)[1], "manifest": manifest}
        _exports[id(world)] = found
    return found


def export_id(world: World, ids: Ids) -> str:
    return UNKNOWN_EXPORT if ids.patient == UNKNOWN_ID else str(our_export(world)["id"])


def exported_none_of_ours(world: World, actor: str, response: httpx.Response) -> list[str]:
    """Their own export, polled and downloaded by them: none of our patients in it."""
    if response.status_code != 202:
        return [f"answered {response.status_code}, not 202"]
    auth = token(world, actor)
    status = httpx.URL(response.headers["content-location"]).path
    manifest = finished(world.client, status, auth)
    ours = {world.main.patient_id, world.second_patient_id}
    secrets = [*world.main.phi(), *ours, *(UUID(p).hex for p in ours)]
    problems = []
    for output in [*manifest["output"], *manifest["error"]]:
        got = world.client.get(httpx.URL(output["url"]).path, headers=auth)
        if got.status_code != 200:
            problems.append(f"{output['type']}: download answered {got.status_code}")
            continue
        text = got.text
        problems += [f"{output['type']} leaks {s!r}" for s in secrets if s in text]
        for line in got.content.splitlines():
            resource = orjson.loads(line)
            if resource.get("resourceType") == "Patient" and resource["id"] in ours:
                problems.append("exports our patient")
    if not manifest["output"]:
        problems.append("their export is empty: it shows nothing of their own")
    return problems


def _kick_off(path: str) -> Row:
    return Row(
        lambda w, i: [
            Call("GET", path, headers=ASYNC),
            Call("GET", path, params={"_type": "Patient,Observation"}, headers=ASYNC),
        ],
        expect={CLINICIAN: Expect.OWN},
        check=exported_none_of_ours,
        compare_unknown=False,
    )


def _status(i: Ids, w: World) -> str:
    return f"/fhir/$export-status/{export_id(w, i)}"


def _file(i: Ids, w: World) -> str:
    return f"/fhir/$export-file/{export_id(w, i)}/Patient.ndjson"


HIDDEN_TO_ALL = everyone(Expect.HIDDEN, *ACTORS)

EXPORT_ROWS: dict[str, Row] = {
    "GET /fhir/$export": _kick_off("/fhir/$export"),
    "GET /fhir/Patient/$export": _kick_off("/fhir/Patient/$export"),
    "GET /fhir/Group/{group_id}/$export": Row(
        # Both organisations have a sponsor of that id: theirs is exported, never ours.
        lambda w, i: [Call("GET", f"/fhir/Group/{w.main.sponsor_id}/$export", headers=ASYNC)],
        expect={CLINICIAN: Expect.OWN},
        check=exported_none_of_ours,
        compare_unknown=False,
    ),
    "GET /fhir/$export-status/{export_id}": Row(
        lambda w, i: [Call("GET", _status(i, w))], expect=HIDDEN_TO_ALL
    ),
    "DELETE /fhir/$export-status/{export_id}": Row(
        lambda w, i: [Call("DELETE", _status(i, w))], expect=HIDDEN_TO_ALL
    ),
    "GET /fhir/$export-file/{export_id}/{name}": Row(
        lambda w, i: [Call("GET", _file(i, w))], expect=HIDDEN_TO_ALL
    ),
}
