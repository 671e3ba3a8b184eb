"""``_typeFilter`` parsing: queries split at a new ``Type?`` (a comma elsewhere joins a
parameter's alternatives), each parsed into what an entry search would scan, and the
matcher keeps the filtered types' matching entries and every entry of other types."""

import pytest

from application.errors import Unsupported
from application.fhir import search
from application.fhir.export_lines import EXPORT_TYPES
from application.fhir.type_filter import keeps_resource, queries, type_filters
from domain.errors import InvalidValue

TYPES = list(EXPORT_TYPES)


def row(kind: str, code: str, at: str = "2026-11-20T09:30:00.000000Z") -> dict[str, object]:
    return {
        "kind": kind,
        "entry_id": "e",
        "effective_at": at,
        "code": {"system": "http://loinc.org", "code": code},
    }


def test_queries_split_at_each_type_and_keep_alternatives_together() -> None:
    joined = "Observation?code=a,b&date=ge2026,Condition?code=c,Observation?category=laboratory"
    assert queries([joined, "Consent?status=active"]) == [
        "Observation?code=a,b&date=ge2026",
        "Condition?code=c",
        "Observation?category=laboratory",
        "Consent?status=active",
    ]


def test_filters_narrow_only_their_types_any_alternative_keeps() -> None:
    filters = type_filters(
        ["Observation?category=laboratory,Observation?code=8867-4&date=lt2026-11-20"], TYPES
    )
    assert [f["kinds"] for f in filters["Observation"]] == [
        ["lab_result"],
        ["observation", "lab_result"],
    ]
    query = {"kinds": ["observation", "lab_result", "condition"], "codes": []}
    keeps = search.matcher(query | {"filters": filters})
    assert keeps(row("lab_result", "2339-0"))
    assert not keeps(row("observation", "8867-4"))  # the vital sign is not before the 20th
    assert keeps(row("observation", "8867-4", at="2026-11-19T09:30:00.000000Z"))
    assert not keeps(row("observation", "9279-1", at="2026-11-19T09:30:00.000000Z"))
    assert keeps(row("condition", "anything"))  # Condition is not filtered
    coverage = {"Coverage": type_filters(["Coverage?status=active"], TYPES)["Coverage"]}
    assert keeps_resource(coverage, {"resourceType": "Coverage", "status": "active"})
    assert not keeps_resource(coverage, {"resourceType": "Coverage", "status": "cancelled"})
    assert keeps_resource(coverage, {"resourceType": "Consent", "status": "inactive"})


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("Observation?status=final", "Observation?status"),
        ("Patient?_id=x", "Patient?_id"),
        ("Encounter?patient=x", "Encounter?patient"),
        ("Group?code=x", "Type?query"),
        ("code=x", "Type?query"),
        # Repeated, FHIR means both codes at once; matching either would export more
        ("Observation?code=1234-5&code=9999-9", "Observation?code is repeated"),
        ("Coverage?status=active&status=cancelled", "Coverage?status is repeated"),
    ],
)
def test_what_the_server_cannot_apply_is_unsupported(value: str, named: str) -> None:
    with pytest.raises(Unsupported, match=named.replace("?", r"\?")):
        type_filters([value], TYPES)


def test_a_type_not_exported_and_a_bad_value_are_refused() -> None:
    with pytest.raises(Unsupported, match="not among the _type"):
        type_filters(["Condition?code=x"], ["Patient", "Observation"])
    with pytest.raises(InvalidValue, match=r"_typeFilter: Observation\?date"):
        type_filters(["Observation?date=yesterday"], TYPES)


def test_a_date_range_is_two_date_parameters() -> None:
    found = type_filters(["Observation?date=ge2026-01-01&date=le2026-06-30"], TYPES)
    assert len(found["Observation"]) == 1
