"""How an entry appears on the timeline: one pure definition for the projection and replay.

The timeline view applies these to events as they arrive; replay applies the same
functions to a chart's events up to a recorded version. So a page rebuilt from the log
renders to the same bytes as the page that was served.
"""

from decimal import Decimal
from typing import Any

from application.read_models import sortable_time
from domain.patient import Patient
from domain.values import BooleanValue, CodedValue, Coding, EntryValue, Quantity, TextValue
from domain.vocabulary import EntryStatus

Row = dict[str, Any]  # {kind, status, effective_at (sortable text), phi: {...}}


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
    return None


def recorded(event: Patient.EntryRecorded) -> Row:
    return {
        "kind": event.kind,
        "status": EntryStatus.ACTIVE.value,
        "effective_at": sortable_time(event.effective_at),
        "phi": {
            "code": coding(event.code),
            "value": entry_value(event.value),
            "modality": event.modality,
            "labels": sorted(event.labels),
            "author": event.author,
        },
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
    value = phi["value"]
    if value is not None and "quantity" in value:
        phi["value"] = {**value, "quantity": Decimal(value["quantity"])}
    return {
        "entry_id": f"{entry_hex[:8]}-{entry_hex[8:12]}-{entry_hex[12:16]}-"
        f"{entry_hex[16:20]}-{entry_hex[20:]}",
        "kind": kind,
        **phi,
        "effective_at": effective_at,
        "status": status,
    }
