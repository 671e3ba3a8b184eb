"""An Observation's value[x] and components, as the entry value the chart keeps."""

from decimal import Decimal, InvalidOperation

from application.fhir.elements import Resource, array, concept, obj, only, refuse, text_of
from application.fhir.resources import UCUM
from domain.values import (
    BooleanValue,
    CodedValue,
    Component,
    Components,
    ComponentValue,
    EntryValue,
    Quantity,
    TextValue,
)


def observation_value(resource: Resource, where: str) -> EntryValue | None:
    value = _value(resource, where)
    if "component" not in resource:
        return value
    if value is not None:
        raise refuse(f"{where}.component", "is held only on an observation without a value")
    parts = []
    for index, item in enumerate(array(resource["component"], f"{where}.component", 20)):
        part_where = f"{where}.component[{index}]"
        part = obj(item, part_where)
        only(part, {"code"} | VALUE_ELEMENTS, part_where)
        found = _value(part, part_where)
        if found is None:
            raise refuse(part_where, "must have a value")
        parts.append(Component(concept(part.get("code"), f"{part_where}.code"), found))
    return Components(tuple(parts))


VALUE_ELEMENTS = {"valueQuantity", "valueString", "valueCodeableConcept", "valueBoolean"}


def _value(resource: Resource, where: str) -> ComponentValue | None:
    present = sorted(name for name in VALUE_ELEMENTS if name in resource)
    if not present:
        return None
    if len(present) > 1:
        raise refuse(f"{where}.{present[1]}", "a resource has one value[x]")
    name = present[0]
    element, found = f"{where}.{name}", resource[name]
    if name == "valueString":
        return TextValue(text_of(found, element))
    if name == "valueBoolean":
        if not isinstance(found, bool):
            raise refuse(element, "must be true or false")
        return BooleanValue(found)
    if name == "valueCodeableConcept":
        return CodedValue(concept(found, element))
    quantity = obj(found, element)
    only(quantity, {"value", "unit", "system", "code"}, element)
    unit = text_of(quantity.get("code", quantity.get("unit")), f"{element}.code")
    if quantity.get("system", UCUM) != UCUM:
        raise refuse(f"{element}.system", "must be UCUM (http://unitsofmeasure.org)")
    if quantity.get("unit", unit) != unit:
        raise refuse(f"{element}.unit", "must equal its UCUM code: the chart keeps one")
    number = quantity.get("value")
    if isinstance(number, bool) or not isinstance(number, int | float | Decimal):
        raise refuse(f"{element}.value", "must be a number")
    try:
        return Quantity(Decimal(str(number)), unit)
    except InvalidOperation:
        raise refuse(f"{element}.value", "must be a number") from None
