"""The cross-organisation matrix of /fhir: the same foreign actors as /v1's
(test_cross_organisation) call every FHIR route against org-main's patient and records.

Each attempt is refused (403 or 404, as an OperationOutcome), answers exactly as the
same call on unknown ids would, leaks nothing of ours (PHI, ids, and the hex ids FHIR
resources carry), and, where it addresses our patient, leaves a deny record that our
auditor sees, naming the actor. Searches an actor may make in its own organisation
answer 200 with none of ours. A new /fhir route without a row here fails
``test_the_fhir_matrix_covers_every_route``.
"""

from types import SimpleNamespace
from typing import Any
from uuid import UUID

import httpx
import orjson
import pytest

from api.app import create_app
from application.fhir.capability import ENTRY_TYPES
from domain.identifiers import default_mrn_system
from domain.patient import Patient
from tests.fhir.bodies import entry_body, patient_body
from tests.security.fhir_audit_rows import AUDIT_ROWS
from tests.security.fhir_export_rows import EXPORT_ROWS, our_export
from tests.security.test_cross_organisation import (
    ACTORS,
    CLINICIAN,
    REACH,
    READERS,
    WRITER,
    Call,
    Expect,
    Ids,
    Row,
    attempt,
    everyone,
    token,
)
from tests.security.two_orgs import ORG_MAIN, World, actor_of, settled


def hexes(world: World) -> list[str]:
    main = world.main
    return [UUID(i).hex for i in (main.patient_id, world.second_patient_id, *main.entries.values())]


def leaks(world: World, response: httpx.Response) -> list[str]:
    """Our secrets in the answer. A Bundle's links echo the caller's own query (FHIR's
    self link): they are left out of the scan, once checked to hold nothing else."""
    text, problems = response.text, []
    body = response.json() if response.headers.get("content-type", "").endswith("json") else {}
    if isinstance(body, dict) and body.get("resourceType") == "Bundle":
        asked = set(httpx.URL(str(response.request.url)).params.multi_items())
        for link in body.pop("link", []):
            extra = set(httpx.URL(link["url"]).params.multi_items()) - asked
            problems += [f"a link adds {name}" for name, _ in extra if name != "_cursor"]
        text = orjson.dumps(body).decode()
    found = [f"leaks {secret!r}" for secret in world.main.phi() if secret in text]
    secrets = [*world.main.secret_ids(), world.main.patient_id, *hexes(world)]
    found += [f"leaks id {secret}" for secret in secrets if secret in text]
    return problems + found


def no_patient_of_ours(world: World, actor: str, response: httpx.Response) -> list[str]:
    body = response.json()
    if body.get("resourceType") != "Bundle":
        return [f"answered a {body.get('resourceType')}, not a Bundle"]
    return [f"lists {e['resource']['id']}" for e in body.get("entry", [])]


def capability(world: World, actor: str, response: httpx.Response) -> list[str]:
    return [] if response.json().get("resourceType") == "CapabilityStatement" else ["not one"]


def entry_id(i: Ids) -> str:
    return UUID(i.patient).hex + UUID(i.entry).hex


DEMOGRAPHICS_READERS = READERS  # clinicians and patients read demographics; others 403


def created_theirs(world: World, actor: str, response: httpx.Response) -> list[str]:
    """A create in the actor's own organisation: its Location names none of ours."""
    location = response.headers.get("location", "")
    secrets = [world.main.patient_id, world.second_patient_id, *hexes(world)]
    return [f"answers with our id {s}" for s in secrets if s in location]


def planted(i: Ids, resource_type: str, **extra: Any) -> dict[str, Any]:
    return {**entry_body(resource_type, i.patient, "Planted by outsider"), **extra}


FHIR_MATRIX: dict[str, Row] = {
    "GET /fhir/metadata": Row(
        lambda w, i: [Call("GET", "/fhir/metadata")],
        expect=everyone(Expect.OWN, *ACTORS),
        check=capability,
        compare_unknown=False,
    ),
    "GET /fhir/Patient?_id": Row(
        lambda w, i: [Call("GET", "/fhir/Patient", params={"_id": i.patient})],
        expect=DEMOGRAPHICS_READERS,
        denial=REACH,
    ),
    "GET /fhir/Patient?identifier": Row(
        lambda w, i: [
            Call("GET", "/fhir/Patient", params={"identifier": w.main.mrn}),
            Call(
                "GET",
                "/fhir/Patient",
                params={"identifier": f"{default_mrn_system(ORG_MAIN)}|{w.main.mrn}"},
            ),
            Call(
                "GET",
                "/fhir/Patient",
                params={"family": w.main.family, "birthdate": w.main.birth_date},
            ),
        ],
        expect={CLINICIAN: Expect.OWN},
        check=no_patient_of_ours,
        compare_unknown=False,
    ),
    "GET /fhir/Patient/{patient_id}": Row(
        lambda w, i: [Call("GET", f"/fhir/Patient/{i.patient}")],
        expect=DEMOGRAPHICS_READERS,
        denial=REACH,
    ),
    "GET /fhir/Patient/{patient_id}/$everything": Row(
        lambda w, i: [
            Call("GET", f"/fhir/Patient/{i.patient}/$everything"),
            Call("GET", f"/fhir/Patient/{i.patient}/$everything", params={"_type": "Patient"}),
            Call(
                "GET",
                f"/fhir/Patient/{i.patient}/$everything",
                params={"_type": "Observation", "_since": "2020"},
            ),
        ],
        expect=READERS,
        denial=REACH,
    ),
    "GET /fhir/Coverage": Row(
        lambda w, i: [
            Call("GET", "/fhir/Coverage", params={"beneficiary": i.patient}),
            Call("GET", "/fhir/Coverage", params={"beneficiary": f"Patient/{i.patient}"}),
            Call("GET", "/fhir/Coverage", params={"beneficiary": i.patient, "status": "active"}),
        ],
        expect=READERS,
        denial=REACH,
    ),
    "GET /fhir/Coverage/{resource_id}": Row(
        lambda w, i: [Call("GET", f"/fhir/Coverage/{entry_id(i)}")],
        expect=READERS,
        denial=REACH,
    ),
    "GET /fhir/Consent": Row(
        lambda w, i: [
            Call("GET", "/fhir/Consent", params={"patient": i.patient}),
            Call("GET", "/fhir/Consent", params={"patient": i.patient, "status": "active"}),
        ],
        expect=READERS,
        denial=REACH,
    ),
    "GET /fhir/Consent/{resource_id}": Row(
        lambda w, i: [Call("GET", f"/fhir/Consent/{entry_id(i)}")],
        expect=READERS,
        denial=REACH,
    ),
    "GET /fhir/Patient/{patient_id}/_history": Row(
        lambda w, i: [Call("GET", f"/fhir/Patient/{i.patient}/_history")],
        expect=DEMOGRAPHICS_READERS,
        denial=REACH,
    ),
    "GET /fhir/Patient/{patient_id}/_history/{vid}": Row(
        lambda w, i: [Call("GET", f"/fhir/Patient/{i.patient}/_history/1")],
        expect=DEMOGRAPHICS_READERS,
        denial=REACH,
    ),
    "POST /fhir/Patient": Row(
        lambda w, i: [Call("POST", "/fhir/Patient", body=patient_body("FHIR-THEIRS-0001"))],
        expect={CLINICIAN: Expect.OWN},
        check=created_theirs,
        compare_unknown=False,
    ),
    "POST /fhir": Row(
        lambda w, i: [
            Call(
                "POST",
                "/fhir",
                body={
                    "resourceType": "Bundle",
                    "type": "transaction",
                    "entry": [
                        {"resource": planted(i, kind), "request": {"method": "POST", "url": kind}}
                        for kind in ("Observation", "Condition")
                    ],
                },
            )
        ],
        expect=WRITER,
        denial=REACH,
    ),
    "PUT /fhir/Patient/{patient_id}": Row(
        lambda w, i: [
            Call(
                "PUT",
                f"/fhir/Patient/{i.patient}",
                body={**patient_body(w.main.mrn, default_mrn_system(ORG_MAIN)), "id": i.patient},
            )
        ],
        expect=WRITER,
        denial=REACH,
    ),
}


def entry_rows(kind: str) -> dict[str, Row]:
    search = Row(
        lambda w, i: [
            Call("GET", f"/fhir/{kind}", params={"patient": i.patient}),
            Call("GET", f"/fhir/{kind}", params={"patient": f"Patient/{i.patient}"}),
            Call("GET", f"/fhir/{kind}", params={"patient": i.patient, "code": "2339-0"}),
        ],
        expect=READERS,
        denial=REACH,
    )
    read = Row(
        lambda w, i: [Call("GET", f"/fhir/{kind}/{entry_id(i)}")], expect=READERS, denial=REACH
    )
    history = Row(
        lambda w, i: [Call("GET", f"/fhir/{kind}/{entry_id(i)}/_history")],
        expect=READERS,
        denial=REACH,
    )
    version = Row(
        lambda w, i: [Call("GET", f"/fhir/{kind}/{entry_id(i)}/_history/1")],
        expect=READERS,
        denial=REACH,
    )
    create = Row(
        lambda w, i: [Call("POST", f"/fhir/{kind}", body=planted(i, kind))],
        expect=WRITER,
        denial=REACH,
    )
    update = Row(
        lambda w, i: [
            Call("PUT", f"/fhir/{kind}/{entry_id(i)}", body=planted(i, kind, id=entry_id(i)))
        ],
        expect=WRITER,
        denial=REACH,
    )
    return {
        f"POST /fhir/{kind}": create,
        f"PUT /fhir/{kind}/{{resource_id}}": update,
        f"GET /fhir/{kind}": search,
        f"GET /fhir/{kind}/{{resource_id}}": read,
        f"GET /fhir/{kind}/{{resource_id}}/_history": history,
        f"GET /fhir/{kind}/{{resource_id}}/_history/{{vid}}": version,
    }


for _type in ENTRY_TYPES:
    FHIR_MATRIX |= entry_rows(_type)
FHIR_MATRIX |= AUDIT_ROWS
FHIR_MATRIX |= EXPORT_ROWS


def fhir_routes(app: Any) -> set[str]:
    """Every "METHOD /fhir/path" the application serves, however FastAPI nests them."""
    found: set[str] = set()

    def visit(route: Any) -> None:
        path, methods = getattr(route, "path", None), getattr(route, "methods", None)
        if isinstance(path, str) and methods and path.startswith("/fhir"):
            found.update(f"{m} {path}" for m in methods if m not in ("HEAD", "OPTIONS"))
        contexts = getattr(route, "effective_route_contexts", None)
        if callable(contexts):
            for context in contexts():
                visit(context)
        for child in getattr(route, "routes", None) or ():
            visit(child)

    for route in app.routes:
        visit(route)
    return found


def test_the_fhir_matrix_covers_every_route() -> None:
    stub = SimpleNamespace(settings=SimpleNamespace(max_body_bytes=1_000_000))
    routes = fhir_routes(create_app(stub))
    rows = {key.split("?", maxsplit=1)[0] for key in FHIR_MATRIX}
    assert len(routes) == 13 + 6 * len(ENTRY_TYPES) + 4 + 6, sorted(routes)
    assert routes == rows


def refused(response: httpx.Response) -> list[str]:
    problems = []
    if response.status_code not in (403, 404):
        problems.append(f"answered {response.status_code}, not 403 or 404")
    elif response.headers.get("content-type", "").split(";")[0] != "application/fhir+json":
        problems.append("a refusal that is not application/fhir+json")
    elif response.json().get("resourceType") != "OperationOutcome":
        problems.append("a refusal that is not an OperationOutcome")
    if "X-Access-Id" in response.headers:
        problems.append("a refusal that names an access record (X-Access-Id)")
    return problems


def judge(world: World, actor: str, row: Row, response: httpx.Response) -> list[str]:
    expected = row.expected(actor)
    status = response.status_code
    problems = leaks(world, response)
    if expected is Expect.HIDDEN:
        if status != 404:
            problems.append(f"answered {status}, not 404 (outside the actor's reach)")
        problems += [p for p in refused(response) if "403 or 404" not in p]
    elif expected is Expect.REFUSED:
        problems += refused(response)
    elif status not in (200, 201, 202):  # 201: a create; 202: an export kicked off
        problems.append(f"answered {status}, not 200 within its own organisation")
    else:
        assert row.check is not None
        problems += row.check(world, actor, response)
    return problems


def diagnostics(response: httpx.Response) -> str | None:
    try:
        return str(response.json()["issue"][0]["diagnostics"])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def same_answer(ours: httpx.Response, unknown: httpx.Response) -> list[str]:
    if ours.status_code not in (403, 404):
        return []
    mine, theirs = (
        (ours.status_code, diagnostics(ours)),
        (unknown.status_code, diagnostics(unknown)),
    )
    return [] if mine == theirs else [f"answers {mine}, but for unknown ids {theirs}"]


@pytest.mark.parametrize("actor", ACTORS)
def test_another_organisation_gets_nothing_of_ours_through_fhir(world: World, actor: str) -> None:
    client = world.client
    settled(client)
    auth = token(world, actor)
    deviations: list[str] = []
    awaiting_denial: dict[str, str] = {}
    n = 0
    ledger = client.app.state.container.ledger  # type: ignore[attr-defined]
    chart_before = ledger.load(Patient, UUID(world.main.patient_id), "patient").version
    for key, row in FHIR_MATRIX.items():
        ours, unknown = row.probes(world, Ids.ours(world)), row.probes(world, Ids.unknown())
        for call, stranger in zip(ours, unknown, strict=True):
            n += 1
            request_id = f"fhir-{ACTORS.index(actor)}-{n}"
            response = attempt(client, call, auth, request_id)
            problems = judge(world, actor, row, response)
            if row.compare_unknown:
                problems += same_answer(
                    response, attempt(client, stranger, auth, f"{request_id}-unknown")
                )
            if actor in row.denial:
                awaiting_denial[request_id] = f"{call.method} {call.path} {call.params or ''}"
            deviations += [f"{key}: {call.params or ''}: {p}" for p in problems]
    denials = world.records(patient_id=world.main.patient_id, decision="deny")
    by_request = {r.get("request_id"): r for r in denials}
    who = actor_of(auth)
    for request_id, call in awaiting_denial.items():
        record = by_request.get(request_id)
        if record is None:
            deviations.append(f"{call}: no deny record for our auditor")
        elif {k: record["actor"].get(k) for k in who} != who:
            deviations.append(f"{call}: the deny record names {record['actor']}")
    assert awaiting_denial, "the matrix addresses our patient"
    # And nothing was written into our chart by any of their writes.
    chart_after = ledger.load(Patient, UUID(world.main.patient_id), "patient").version
    assert chart_after == chart_before
    assert not deviations, "\n" + "\n".join(deviations)


def test_our_export_outlives_every_attempt_of_theirs(world: World) -> None:
    """Every foreign actor's cancel of our export is 404, and our requester still has it."""
    export = our_export(world)
    client, ours = world.client, world.main.clinician
    for actor in ACTORS:
        cancel = client.delete(f"/fhir/$export-status/{export['id']}", headers=token(world, actor))
        assert cancel.status_code == 404, (actor, cancel.text)
    assert client.get(f"/fhir/$export-status/{export['id']}", headers=ours).status_code == 200
    for output in export["manifest"]["output"]:
        path = httpx.URL(output["url"]).path
        assert client.get(path, headers=ours).status_code == 200


def test_a_conditional_create_with_our_mrn_never_finds_our_patient(world: World) -> None:
    """Their clinician's If-None-Exist names our MRN: their organisation has no such
    patient, so it registers one of theirs; ours is neither answered nor changed."""
    client = world.client
    settled(client)
    ledger = client.app.state.container.ledger  # type: ignore[attr-defined]
    before = ledger.load(Patient, UUID(world.main.patient_id), "patient").version
    criteria = f"identifier={default_mrn_system(ORG_MAIN)}|{world.main.mrn}"
    response = client.post(
        "/fhir/Patient",
        json=patient_body("FHIR-THEIRS-0002"),
        headers={**world.other.clinician, "If-None-Exist": criteria},
    )
    assert response.status_code == 201, response.text
    assert created_theirs(world, CLINICIAN, response) == []
    assert leaks(world, response) == []
    assert ledger.load(Patient, UUID(world.main.patient_id), "patient").version == before


def test_a_batch_from_another_organisation_writes_nothing_into_our_chart(world: World) -> None:
    """Their clinician's batch names our patient in every entry: each is 404, recorded
    against our patient, and our chart stays as it was."""
    client = world.client
    settled(client)
    ledger = client.app.state.container.ledger  # type: ignore[attr-defined]
    before = ledger.load(Patient, UUID(world.main.patient_id), "patient").version
    ours = Ids.ours(world)
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": planted(ours, "Observation"),
                "request": {"method": "POST", "url": "Observation"},
            },
            {
                "resource": planted(ours, "Observation", id=entry_id(ours)),
                "request": {"method": "PUT", "url": f"Observation/{entry_id(ours)}"},
            },
        ],
    }
    headers = {**world.other.clinician, "X-Request-Id": "fhir-batch-outsider"}
    response = client.post("/fhir", json=bundle, headers=headers)
    assert response.status_code == 200, response.text
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses == ["404 Not Found", "404 Not Found"]
    assert leaks(world, response) == []
    assert ledger.load(Patient, UUID(world.main.patient_id), "patient").version == before
    denials = world.records(patient_id=world.main.patient_id, decision="deny")
    assert len([r for r in denials if r.get("request_id") == "fhir-batch-outsider"]) == 2


def test_their_entries_cannot_name_our_entries_as_their_encounter(world: World) -> None:
    """An entry's encounter must be an encounter of its own chart: their clinician
    naming one of our entries as the encounter of an entry of their patient is refused
    exactly as an unknown id is, in a single write and in a transaction, and writes
    nothing to either chart."""
    client = world.client
    settled(client)
    ledger = client.app.state.container.ledger  # type: ignore[attr-defined]
    before = ledger.load(Patient, UUID(world.main.patient_id), "patient").version
    theirs = ledger.load(Patient, UUID(world.other.patient_id), "patient").version
    ours = Ids.ours(world)
    unknown = Ids.unknown()
    answers = []
    for ids in (ours, unknown):
        body = entry_body("Observation", world.other.patient_id, "Their reading")
        body["encounter"] = {"reference": f"Encounter/{entry_id(ids)}"}
        single = client.post("/fhir/Observation", json=body, headers=world.other.clinician)
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"resource": body, "request": {"method": "POST", "url": "Observation"}}],
        }
        transaction = client.post("/fhir", json=bundle, headers=world.other.clinician)
        for response in (single, transaction):
            assert response.status_code == 422, response.text
            assert leaks(world, response) == []
        answers.append([single.json(), transaction.json()])
    assert answers[0] == answers[1]
    assert ledger.load(Patient, UUID(world.main.patient_id), "patient").version == before
    assert ledger.load(Patient, UUID(world.other.patient_id), "patient").version == theirs
