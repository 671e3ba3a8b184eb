"""The elements of a FHIR resource a client writes, read strictly: each refusal names
the element (``InvalidValue``, a 422 OperationOutcome). Shared by ``intake`` and
``bundles``; pure, no store, no clock."""

from datetime import datetime
from typing import Any
from uuid import UUID

from application.fhir.resources import ACT_CODE, SECURITY_LABELS
from domain.errors import InvalidValue
from domain.values import Coding
from domain.vocabulary import SensitivityLabel

Resource = dict[str, Any]

# Elements every resource may carry that say nothing the chart keeps: the server
# assigns ids and versions, and a narrative or profile claim is not clinical content.
IGNORED = {"resourceType", "id", "text"}
META_IGNORED = {"versionId", "lastUpdated", "profile", "security"}
LABEL_OF_CODE = {code: SensitivityLabel(label) for label, (code, _) in SECURITY_LABELS.items()}


def json_copy(value: Any) -> Any:
    """A deep copy of parsed JSON (objects, arrays and immutable scalars), at a quarter
    of ``copy.deepcopy``'s cost, which an import pays on most entries."""
    if isinstance(value, dict):
        return {key: json_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_copy(item) for item in value]
    return value


def refuse(element: str, why: str) -> InvalidValue:
    return InvalidValue(element, why)


def only(resource: Resource, allowed: set[str], where: str) -> None:
    for name in resource:
        if name not in allowed:
            raise refuse(f"{where}.{name}", "is not held by this server")


def array(value: Any, element: str, most: int | None = 1) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise refuse(element, "must be a non-empty array")
    if most is not None and len(value) > most:
        raise refuse(element, f"holds at most {most} here")
    return value


def obj(value: Any, element: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise refuse(element, "must be an object")
    return value


def text_of(value: Any, element: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise refuse(element, "must be a non-empty string")
    return value


def coding(value: Any, element: str) -> Coding:
    """A Coding with system, code and display (the chart keeps all three)."""
    found = obj(value, element)
    only(found, {"system", "code", "display"}, element)
    display = found.get("display")
    return Coding(
        text_of(found.get("system"), f"{element}.system"),
        text_of(found.get("code"), f"{element}.code"),
        text_of(display, f"{element}.display"),
    )


def concept(value: Any, element: str) -> Coding:
    """A CodeableConcept of one coding; its ``text``, if any, must be that display."""
    found = obj(value, element)
    only(found, {"coding", "text"}, element)
    codings = array(found.get("coding"), f"{element}.coding")
    code = coding(codings[0], f"{element}.coding[0]")
    if "text" in found and found["text"] != code.display:
        raise refuse(f"{element}.text", "must equal the coding's display")
    return code


def moment(value: Any, element: str) -> datetime:
    """A FHIR dateTime to the second, with its zone: the chart keeps instants."""
    text = text_of(value, element)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise refuse(element, "must be a date-time with a time zone") from None
    if len(text) <= 10 or parsed.tzinfo is None:
        raise refuse(element, "must be a date-time with a time zone")
    return parsed


def security(meta: Any, element: str) -> tuple[frozenset[SensitivityLabel], tuple[Coding, ...]]:
    """``meta.security``: sensitivity labels (v3-ActCode ETH, MH, SEX, GDIS), and the
    other codes (HTEST ...) kept as tags."""
    labels: set[SensitivityLabel] = set()
    tags: list[Coding] = []
    if meta is None:
        return frozenset(), ()
    found = obj(meta, element)
    only(found, META_IGNORED, element)
    for index, item in enumerate(found.get("security", [])):
        where = f"{element}.security[{index}]"
        entry = obj(item, where)
        if entry.get("system") == ACT_CODE and entry.get("code") in LABEL_OF_CODE:
            labels.add(LABEL_OF_CODE[entry["code"]])
            continue
        # Security codes often come without display: the code stands for it.
        tags.append(coding({"display": entry.get("code"), **entry}, where))
    return frozenset(labels), tuple(tags)


def subject(value: Any, element: str) -> str:
    found = obj(value, element)
    only(found, {"reference", "display"}, element)
    return text_of(found.get("reference"), f"{element}.reference")


def patient_id_of(reference: str, element: str) -> UUID:
    """``Patient/{id}`` (or a full URL ending so) as a patient id."""
    _, _, tail = reference.rpartition("Patient/")
    try:
        return UUID(tail) if tail and "Patient/" in reference else _bad(element)
    except ValueError:
        raise refuse(element, "must reference a Patient of this server") from None


def _bad(element: str) -> UUID:
    raise refuse(element, "must reference a Patient of this server")
