"""Every date and time a query takes (/v1 and /fhir), from the year 1 to 9999 and at any offset, is
answered (200) or refused as bad input (422), never a 500; and a bound's text sorts as
its time does, whatever its year (issue 23: ``until=9999-12-31`` answered 500, and a
year below 1000 lost its fixed width and sorted after 2026).
"""

from datetime import UTC, date, datetime, timedelta, timezone

from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.api.support import AUDITOR, CLINICIAN, record_entry, register, settled, under_care

OFFSETS = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
MOMENTS = st.one_of(
    st.dates().map(date.isoformat),
    st.builds(
        lambda moment, zone: moment.replace(tzinfo=zone).isoformat(),
        st.datetimes(),
        OFFSETS,
    ),
    st.sampled_from(
        ["9999-12-31", "0001-01-01", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"]
    ),
)
TIME_QUERIES = (
    ("/v1/patients/{patient}/timeline", CLINICIAN),
    ("/v1/audit/accesses", AUDITOR),
)


def _chart(client: TestClient) -> str:
    patient = register(client)
    under_care(client, patient)
    record_entry(client, patient)
    return patient


def test_a_time_bound_is_answered_or_refused_never_a_server_error(client: TestClient) -> None:
    patient = _chart(client)

    @settings(max_examples=60, deadline=None)
    @given(since=st.none() | MOMENTS, until=st.none() | MOMENTS)
    def each(since: str | None, until: str | None) -> None:
        query = {name: value for name, value in (("since", since), ("until", until)) if value}
        for path, headers in TIME_QUERIES:
            response = client.get(path.format(patient=patient), params=query, headers=headers)
            assert response.status_code in (200, 422), (path, query, response.text)
            if response.status_code == 422:
                assert response.headers["content-type"] == "application/problem+json"
        # FHIR's date parameter spans a whole year, month or day, or one instant.
        for prefix in ("eq", "ge", "gt", "le", "lt"):
            for value in {since, until, (since or "")[:4], (until or "")[:7]} - {None, ""}:
                response = client.get(
                    "/fhir/Observation",
                    params={"patient": patient, "date": f"{prefix}{value}"},
                    headers=CLINICIAN,
                )
                assert response.status_code in (200, 422), (value, response.text)

    each()


def test_a_bound_before_the_year_1000_still_sorts_before_today(client: TestClient) -> None:
    patient = _chart(client)
    seen = settled(client)

    def timeline(**bounds: str) -> list[str]:
        response = client.get(
            f"/v1/patients/{patient}/timeline", params={**seen, **bounds}, headers=CLINICIAN
        )
        assert response.status_code == 200, response.text
        return [row["entry_id"] for row in response.json()["entries"]]

    everything = timeline()
    assert len(everything) == 1
    assert timeline(since="0999-01-01T00:00:00Z") == everything
    assert timeline(until="0999-01-01") == []
    assert timeline(until="9999-12-31") == everything
    tomorrow = (datetime.now(UTC) + timedelta(days=400)).date()
    assert timeline(since=tomorrow.isoformat()) == []


# Every date and time parameter the service declares: /v1's from its OpenAPI document,
# /fhir's from its CapabilityStatement (type date) and $everything's _since. A parameter
# added later without a line here fails the inventory check below.
V1_TIME_PARAMETERS = {
    ("/v1/patients", "birth_date"): CLINICIAN,
    ("/v1/patients/{patient}/timeline", "since"): CLINICIAN,
    ("/v1/patients/{patient}/timeline", "until"): CLINICIAN,
    ("/v1/audit/accesses", "since"): AUDITOR,
    ("/v1/audit/accesses", "until"): AUDITOR,
}
FHIR_PREFIXES = st.sampled_from(["", "eq", "ne", "ge", "gt", "le", "lt", "sa", "eb", "ap", "xx"])
ANY_TEXT = st.text(alphabet="0123456789-:T+Z.", max_size=30)


def _declared_v1(client: TestClient) -> set[tuple[str, str]]:
    found = set()
    for path, operations in client.app.openapi()["paths"].items():  # type: ignore[attr-defined]
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                schema = str(parameter.get("schema", ""))
                described = parameter.get("schema", {}).get("description", "")
                if parameter["in"] == "query" and ("'date" in schema or "a date" in described):
                    found.add((path.replace("{patient_id}", "{patient}"), parameter["name"]))
    return found


def _declared_fhir(client: TestClient) -> set[tuple[str, str]]:
    statement = client.get("/fhir/metadata").json()
    found = {("Patient/{patient}/$everything", "_since")}
    for resource in statement["rest"][0]["resource"]:
        for parameter in resource.get("searchParam", []):
            if parameter["type"] == "date":
                found.add((resource["type"], parameter["name"]))
    return found


def test_every_date_and_time_parameter_of_every_route_is_never_a_server_error(
    client: TestClient,
) -> None:
    patient = _chart(client)
    assert _declared_v1(client) == set(V1_TIME_PARAMETERS)
    fhir = sorted(_declared_fhir(client))
    assert ("Observation", "date") in fhir and ("AuditEvent", "date") in fhir

    def fhir_get(resource: str, name: str, value: str) -> int:
        if resource.endswith("$everything"):
            url, params = f"/fhir/{resource.format(patient=patient)}", {name: value}
        elif resource in ("Patient", "AuditEvent"):
            url, params = f"/fhir/{resource}", {name: value}
        else:
            url, params = f"/fhir/{resource}", {"patient": patient, name: value}
        headers = AUDITOR if resource == "AuditEvent" else CLINICIAN
        return client.get(url, params=params, headers=headers).status_code

    @settings(max_examples=40, deadline=None)
    @given(value=MOMENTS | ANY_TEXT, prefix=FHIR_PREFIXES, cut=st.sampled_from([4, 7, 10, 99]))
    def each(value: str, prefix: str, cut: int) -> None:
        for (path, name), headers in V1_TIME_PARAMETERS.items():
            response = client.get(
                path.format(patient=patient), params={name: value}, headers=headers
            )
            assert response.status_code < 500, (path, name, value, response.text)
        for resource, name in fhir:
            status = fhir_get(resource, name, f"{prefix}{value[:cut]}")
            assert status < 500, (resource, name, prefix, value[:cut])

    each()
