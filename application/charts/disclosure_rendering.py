"""The bytes of a disclosure: every function that fixes what a disclosed response says.

The served read and its replay both render through this module, so a response rebuilt
from the log at the versions an access record names hashes to the digest it recorded.
It holds the JSON encoding, the timeline's rows and its one page scan, the cursor
codec, and the demographics, consents and search-hit bodies. Old render versions stay
here for as long as old access records may be replayed.
"""

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

import orjson

from application.charts.read_models import SORTABLE_TIME, Admit, Key, sortable_time
from domain.consent import Consent
from domain.errors import InvalidValue
from domain.patient import Patient
from domain.values import (
    BooleanValue,
    CodedValue,
    Coding,
    Components,
    ConsentEvidence,
    EntryLinks,
    EntryValue,
    Period,
    Quantity,
    TextValue,
)
from domain.vocabulary import EntryStatus

Row = dict[str, Any]  # {kind, status, effective_at (sortable text), phi: {...}}
Found = TypeVar("Found")  # what a page's source knows of a candidate before rendering it


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(type(value).__name__)


def render(content: Any) -> bytes:
    """The exact bytes of a JSON response; replay renders through the same function."""
    return orjson.dumps(content, default=_default, option=orjson.OPT_NON_STR_KEYS)


# --- the timeline -------------------------------------------------------------------


def coding(code: Coding) -> dict[str, str]:
    return {"system": code.system, "code": code.code, "display": code.display}


def entry_value(value: EntryValue | None) -> dict[str, Any] | None:
    if isinstance(value, Quantity):
        return {"quantity": str(value.quantity), "unit": value.unit}  # exact, as text
    if isinstance(value, TextValue):
        return {"text": value.text}
    if isinstance(value, CodedValue):
        return {"code": coding(value.code)}
    if isinstance(value, BooleanValue):
        return {"boolean": value.boolean}
    if isinstance(value, Components):
        return {
            "components": [
                {"code": coding(part.code), "value": entry_value(part.value)}
                for part in value.components
            ]
        }
    return None


def _as_number(value: dict[str, Any]) -> dict[str, Any]:
    """A value as the API shows it: quantities, a panel's too, as JSON numbers."""
    if "quantity" in value:
        return {**value, "quantity": Decimal(value["quantity"])}
    if "components" in value:
        parts = value["components"]
        return {"components": [{**part, "value": _as_number(part["value"])} for part in parts]}
    return value


def _tags(phi: dict[str, Any], tags: list[Coding]) -> None:
    """Security tags that are not labels (HTEST): a key only when there are some, so
    that rows and bodies from before them stay as they were."""
    phi.pop("tags", None)
    if tags:
        phi["tags"] = [coding(tag) for tag in tags]


def _links(phi: dict[str, Any], links: EntryLinks | None) -> None:
    """The entry's encounter and who took part: keys only when there are some, so
    that rows and bodies from before them stay as they were."""
    phi.pop("encounter", None)
    phi.pop("attributions", None)
    if links is None:
        return
    if links.encounter is not None:
        phi["encounter"] = str(UUID(hex=links.encounter))
    if links.attributions:
        phi["attributions"] = [
            {
                "role": item.role,
                "type": item.resource_type,
                "system": item.system,
                "value": item.value,
                **({"display": item.display} if item.display is not None else {}),
            }
            for item in links.attributions
        ]


def recorded(event: Patient.EntryRecorded) -> Row:
    phi = {
        "code": coding(event.code),
        "value": entry_value(event.value),
        "modality": event.modality,
        "labels": sorted(event.labels),
        "author": event.author,
    }
    _tags(phi, event.tags)
    _links(phi, event.links)
    return {
        "kind": event.kind,
        "status": EntryStatus.ACTIVE.value,
        "effective_at": sortable_time(event.effective_at),
        "phi": phi,
    }


def amended(row: Row, event: Patient.EntryAmended) -> None:
    """The latest version of the entry, with the amendment's fields where it set them."""
    row["status"] = EntryStatus.AMENDED.value
    phi = row["phi"]
    phi["author"] = event.author
    if event.code is not None:
        phi["code"] = coding(event.code)
    if event.value is not None:
        phi["value"] = entry_value(event.value)
    if event.modality is not None:
        phi["modality"] = event.modality
    if event.labels is not None:
        phi["labels"] = sorted(event.labels)
    if event.tags is not None:
        _tags(phi, event.tags)
    if event.links is not None:
        _links(phi, event.links)
    if event.effective_at is not None:
        row["effective_at"] = sortable_time(event.effective_at)


def entered_in_error(row: Row) -> None:
    row["status"] = EntryStatus.ENTERED_IN_ERROR.value


def changed(row: Row, event: Patient.EntryAmended | Patient.EntryEnteredInError) -> None:
    """An amendment or an entry in error, applied to the entry's row."""
    if isinstance(event, Patient.EntryEnteredInError):
        entered_in_error(row)
    else:
        amended(row, event)


def rendered(entry_hex: str, kind: str, status: str, effective_at: str, phi: dict[str, Any]) -> Row:
    """An entry as the API shows it; quantities go out as JSON numbers."""
    phi = dict(phi)
    if phi["value"] is not None:
        phi["value"] = _as_number(phi["value"])
    return {
        "entry_id": f"{entry_hex[:8]}-{entry_hex[8:12]}-{entry_hex[12:16]}-"
        f"{entry_hex[16:20]}-{entry_hex[20:]}",
        "kind": kind,
        **phi,
        "effective_at": effective_at,
        "status": status,
    }


def scan_page(
    candidates: Callable[[Key | None, int], Sequence[tuple[Key, Found]]],
    rows: Callable[[Sequence[tuple[Key, Found]]], Sequence[Row]],
    *,
    after: Key | None,
    limit: int,
    admit: Admit,
) -> tuple[list[Row], Key | None]:
    """Up to ``limit`` admitted entries after the ``after`` key, and the key to go on from.

    ``candidates(after, count)`` gives up to ``count`` of the chart's next entries in
    ``(effective_at, entry_hex)`` order; ``rows`` renders a run of them, in that order.
    Entries ``admit`` refuses (a label the decision hides) are left out, not masked, and
    the scan goes on until the page is full or the chart ends. Only the entries examined
    are rendered, so a page costs O(page) plus the hidden entries it passes over.
    """
    if limit < 1:
        raise ValueError("a page holds at least one entry")
    entries: list[Row] = []
    while True:
        needed = limit - len(entries)
        # One more than can be examined, to know whether the chart goes on after them.
        found = candidates(after, needed + 1)
        examined = found[:needed]
        shown = rows(examined)
        assert len(shown) == len(examined), "one row for each entry examined"
        entries += [entry for entry in shown if admit(entry)]
        if len(found) <= needed:
            return entries, None
        after = examined[-1][0]
        if len(entries) == limit:
            return entries, after


def timeline_body(patient_id: UUID, entries: list[Row], next_key: Key | None) -> dict[str, Any]:
    return {
        "patient_id": str(patient_id),
        "entries": entries,
        "next_cursor": encode_cursor(next_key) if next_key else None,
    }


def encode_cursor(key: Key) -> str:
    return base64.urlsafe_b64encode(f"{key[0]}|{key[1]}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Key:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        effective_at, entry_id = text.split("|")
        UUID(hex=entry_id)
        datetime.strptime(effective_at, SORTABLE_TIME)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidValue("cursor", "is not a cursor this API issued") from None
    return effective_at, entry_id


# --- demographics, consents, search hits ----------------------------------------------

# 2: no ``entry_count``, which counted entries the reader may not see (their existence
# is not disclosed); replay renders a record without a render version as 1.
# 3: ``deceased_at`` in RFC 3339 UTC with ``Z``, as every other time the API sends.
# 4: ``mrn_system`` beside ``mrn``, the system the MRN's value is unique in.
DEMOGRAPHICS_RENDER = 4
# 2: ``granted_at``, ``revoked_at`` and ``requested_at`` with ``Z``; a record without a
# render version is 1 (``+00:00``).
CONSENTS_RENDER = 2


def zulu(moment: datetime | str) -> str:
    """A time as the API sends it: RFC 3339 in UTC with ``Z`` (the timeline's form)."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return sortable_time(moment)


def render_demographics(patient: Patient, render: int = DEMOGRAPHICS_RENDER) -> dict[str, Any]:
    """The demographics body; replay renders the patient at the recorded version."""
    body: dict[str, Any] = {"id": str(patient.id), "version": patient.version, "mrn": patient.mrn}
    if render >= 4:
        body["mrn_system"] = patient.mrn_system
    body |= {
        "name": asdict(patient.name) if patient.name else None,
        "birth_date": patient.birth_date.isoformat() if patient.birth_date else None,
        "sex": patient.sex,
        "contact": asdict(patient.contact) if patient.contact else None,
        "deceased_at": patient.deceased_at,
    }
    if render == 1:
        body["entry_count"] = patient.entry_count
    if render >= 3 and patient.deceased_at is not None:
        body["deceased_at"] = zulu(patient.deceased_at)
    return body


def render_consents(
    patient_id: UUID, state: dict[str, Any], day: date, render: int = CONSENTS_RENDER
) -> dict[str, Any]:
    """The consents body; replay renders through the same function, at the render
    version the access record names."""
    today = day.isoformat()
    directives = [_render_directive(UUID(key), d, today) for key, d in state["directives"].items()]
    restrictions = [
        {"restriction_id": str(UUID(key)), **r} for key, r in state["restrictions"].items()
    ]
    if render >= 2:
        for directive in directives:
            for field in ("granted_at", "revoked_at"):
                if directive[field] is not None:
                    directive[field] = zulu(directive[field])
        for restriction in restrictions:
            restriction["requested_at"] = zulu(restriction["requested_at"])
    return {
        "patient_id": str(patient_id),
        "consent_version": state["consent_version"],
        "directives": directives,
        "restrictions": restrictions,
    }


def consent_state(consent: Consent) -> dict[str, Any]:
    """The aggregate's state in the JSON shape the consent-state view keeps."""
    state: dict[str, Any] = orjson.loads(
        orjson.dumps(
            {
                "consent_version": consent.version,
                "directives": consent.directives,
                "restrictions": consent.restrictions,
            },
            default=_jsonable,
        )
    )
    return state


def _jsonable(value: Any) -> Any:
    if isinstance(value, Period | ConsentEvidence):
        return asdict(value)
    raise TypeError(type(value).__name__)


def _render_directive(directive_id: UUID, d: dict[str, Any], today: str) -> dict[str, Any]:
    period = d["period"]
    revoked_at = d["revoked_at"]
    in_period = period["start"] <= today and (period["end"] is None or today < period["end"])
    active = in_period and revoked_at is None
    return {
        "directive_id": str(directive_id),
        "grantee": d["grantee"],
        "purposes": d["purposes"],
        "labels": d["labels"],
        "period": period,
        "evidence": d["evidence"],
        "status": "active" if active else ("revoked" if revoked_at else "inactive"),
        "granted_at": d["granted_at"],
        "revoked_at": revoked_at,
        "revocation_reason": d["revocation_reason"],
    }


# 2: ``next_cursor`` beside ``items``, as every list (its value is kept in the access
# record's request, since the hits alone do not say whether more followed).
SEARCH_RENDER = 2


def search_body(
    items: list[dict[str, Any]], next_cursor: str | None, render: int = SEARCH_RENDER
) -> dict[str, Any]:
    """The body of a directory search; replay renders through the same function."""
    if render == 1:
        return {"items": items}
    return {"items": items, "next_cursor": next_cursor}


def encode_search_cursor(patient_id: str) -> str:
    return base64.urlsafe_b64encode(f"p|{UUID(patient_id).hex}".encode()).decode().rstrip("=")


def decode_search_cursor(cursor: str) -> str:
    """The patient (as hex) a search's page ended at."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, patient_hex = text.split("|")
        if tag != "p":
            raise ValueError(tag)
        return UUID(hex=patient_hex).hex
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidValue("cursor", "is not a cursor this API issued") from None


def search_hit(patient_id: UUID, given: str, family: str, birth_date: str) -> dict[str, Any]:
    """One item of a directory search: who the patient is, and nothing of their chart."""
    return {
        "id": str(patient_id),
        "name": {"given": given, "family": family},
        "birth_date": birth_date,
    }
