"""FHIR search parameters, parsed into the timeline's own query (pure, no I/O).

A search is the timeline's page scan with the resource's kinds, a time window from
``date`` and a filter on ``code``: the served page and its replay build the same
query from what the access record keeps, so both pass over the same entries.
"""

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from application.charts.disclosure_rendering import Row
from application.charts.read_models import time_bound
from application.fhir.resources import (
    CATEGORY_OF_KIND,
    KINDS_OF_RESOURCE,
    OBSERVATION_CATEGORY,
    RESOURCE_OF_KIND,
)
from domain.errors import InvalidValue

Params = list[tuple[str, str]]  # the query string's pairs, in order, repeats kept

MAX_COUNT = 200
DEFAULT_COUNT = 50
ENTRY_PARAMS = {"patient", "code", "date", "_count", "_cursor"}
EXTRA_PARAMS = {"Observation": {"category"}}
PATIENT_PARAMS = {"_id", "identifier", "family", "birthdate", "_count", "_cursor"}
IGNORED = {"_format"}  # answered by the response's media type


def known(params: Params, allowed: set[str]) -> dict[str, list[str]]:
    """The parameters by name; one this slice does not support is refused (422), not
    ignored, so that a client never takes a wider answer for a narrower one."""
    found: dict[str, list[str]] = {}
    for name, value in params:
        if name in IGNORED:
            continue
        if name not in allowed:
            raise InvalidValue(name, "is not a search parameter this server supports")
        found.setdefault(name, []).append(value)
    return found


def single(found: dict[str, list[str]], name: str) -> str | None:
    values = found.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise InvalidValue(name, "may be given once")
    return values[0]


def chart_of(found: dict[str, list[str]], name: str) -> UUID:
    """The one patient a search names (``patient``, ``beneficiary``): required, since
    this server searches one chart at a time."""
    subject = single(found, name)
    if subject is None:
        raise InvalidValue(name, "is required: this server searches one chart at a time")
    try:
        return UUID(subject.removeprefix("Patient/"))
    except ValueError:
        raise InvalidValue(name, "is not a patient id") from None


def statuses(found: dict[str, list[str]], allowed: tuple[str, ...]) -> list[str]:
    """``status`` codes, each one of ``allowed`` (alternatives by commas)."""
    codes = [code for _, code in tokens(found.get("status", []), "status")]
    if any(code not in allowed for code in codes):
        raise InvalidValue("status", "is " + " or ".join(allowed))
    return [str(code) for code in codes]


def count(found: dict[str, list[str]]) -> int:
    text = single(found, "_count")
    if text is None:
        return DEFAULT_COUNT
    if not text.isdigit() or not 1 <= int(text) <= MAX_COUNT:
        raise InvalidValue("_count", f"must be a whole number from 1 to {MAX_COUNT}")
    return int(text)


def _bounds(text: str) -> tuple[datetime, datetime]:
    """The instants a FHIR date (year, month, day or date-time with zone) spans."""
    try:
        if len(text) == 4:
            start = datetime(int(text), 1, 1, tzinfo=UTC)
            return start, _end(lambda: start.replace(year=start.year + 1))
        if len(text) == 7:
            start = datetime(int(text[:4]), int(text[5:7]), 1, tzinfo=UTC)
            year, month = divmod(start.month, 12)
            return start, _end(lambda: start.replace(year=start.year + year, month=month + 1))
        if len(text) == 10:
            start = datetime.fromisoformat(text).replace(tzinfo=UTC)
            return start, _end(lambda: start + timedelta(days=1))
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidValue("date", "must be a FHIR date or a date-time with zone") from None
    if moment.tzinfo is None:
        raise InvalidValue("date", "a date-time must carry a time zone")
    return moment, _end(lambda: moment + timedelta(microseconds=1))


def _end(step: Callable[[], datetime]) -> datetime:
    """The instant after a span; the last span of the year 9999 runs to the end of time."""
    try:
        return step()
    except (OverflowError, ValueError):
        return datetime.max.replace(tzinfo=UTC)


def window(values: list[str]) -> tuple[str | None, str | None]:
    """``date`` parameters (eq, ge, gt, le, lt; all must hold) as the timeline's
    ``since`` (inclusive) and ``until`` (exclusive), in its sortable text."""
    since: datetime | None = None
    until: datetime | None = None
    for value in values:
        prefix, text = (value[:2], value[2:]) if value[:2].isalpha() else ("eq", value)
        start, end = _bounds(text)
        low = {"eq": start, "ge": start, "gt": end}.get(prefix)
        high = {"eq": end, "le": end, "lt": start}.get(prefix)
        if prefix not in ("eq", "ge", "gt", "le", "lt"):
            raise InvalidValue("date", "takes the prefixes eq, ge, gt, le and lt")
        if low is not None:
            since = low if since is None else max(since, low)
        if high is not None:
            until = high if until is None else min(until, high)
    return time_bound("date", since), time_bound("date", until)


def tokens(values: list[str], field: str) -> list[list[str | None]]:
    """Token parameters: each ``[system, code]`` (system None when not given); the
    values of one parameter are alternatives (a comma), repeated ones all apply."""
    found: list[list[str | None]] = []
    for value in values:
        for part in value.split(","):
            system, bar, code = part.rpartition("|")
            if not code:
                raise InvalidValue(field, "must be a code, or system|code")
            found.append([system if bar else None, code])
    return found


def kinds_for(resource_type: str, categories: list[str]) -> list[str]:
    """The entry kinds a search of this resource type covers."""
    kinds = list(KINDS_OF_RESOURCE[resource_type])
    if categories:
        wanted = tokens(categories, "category")
        kinds = [
            kind
            for kind in kinds
            if any(
                code == CATEGORY_OF_KIND[kind] and system in (None, OBSERVATION_CATEGORY)
                for system, code in wanted
            )
        ]
    return kinds


def matcher(query: dict[str, Any]) -> Callable[[Row], bool]:
    """Which rows of the page scan a search keeps, besides the policy's labels: the
    same for the served page and its replay, since both read the access record's
    query. Refused rows are passed over, never counted."""
    kinds = set(query["kinds"])
    codes = query["codes"]
    entry = query.get("entry")
    filters = query.get("filters")  # an export's ``_typeFilter``

    def keeps(row: Row) -> bool:
        if row["kind"] not in kinds or (entry is not None and row["entry_id"] != entry):
            return False
        if filters and not _filtered_in(filters, row):
            return False
        return _coded(row, codes)

    return keeps


def _coded(row: Row, codes: list[list[str | None]]) -> bool:
    code = row["code"]
    return not codes or any(
        code["code"] == c and (s is None or code["system"] == s) for s, c in codes
    )


def _filtered_in(filters: dict[str, list[dict[str, Any]]], row: Row) -> bool:
    """Whether an entry passes its type's ``_typeFilter`` queries (any one of them);
    a type without any is exported whole."""
    alternatives = filters.get(RESOURCE_OF_KIND[row["kind"]])
    at = row["effective_at"]
    return alternatives is None or any(
        row["kind"] in each["kinds"]
        and (each["since"] is None or at >= each["since"])
        and (each["until"] is None or at < each["until"])
        and _coded(row, each["codes"])
        for each in alternatives
    )


def url(base: str, resource_type: str, pairs: Params) -> str:
    return f"{base}/{resource_type}" + (f"?{urlencode(pairs)}" if pairs else "")


def day(text: str) -> date:
    try:
        return date.fromisoformat(text) if len(text) == 10 else date.fromisoformat("")
    except ValueError:
        raise InvalidValue("birthdate", "must be a date (YYYY-MM-DD)") from None
