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
