"""The CapabilityStatement: what this slice of the FHIR interface serves (docs/fhir.md).

It names no patient and carries no PHI, so it is served without a token (SMART asks
that of /metadata) and without an access record. It reads no clock: ``date`` is the
day this statement last changed.
"""

from typing import Any

from application.fhir.search import EXTRA_PARAMS
from application.fhir.smart import smart_security

STATEMENT_DATE = "2026-12-06"
ENTRY_TYPES = (
    "Observation",
    "Encounter",
    "Condition",
    "AllergyIntolerance",
    "MedicationStatement",
    "Immunization",
    "Procedure",
    "DocumentReference",
)


def _param(name: str, kind: str) -> dict[str, str]:
    return {"name": name, "type": kind}


def _resource(kind: str, params: list[dict[str, str]]) -> dict[str, Any]:
    interactions = ("read", "vread", "update", "history-instance", "create", "search-type")
    return {
        "type": kind,
        "interaction": [{"code": code} for code in interactions],
        "versioning": "versioned",
        "readHistory": True,
        # An update amends an entry the server created: a client never picks the id.
        "updateCreate": False,
        "conditionalCreate": kind == "Patient",
        "searchParam": params,
    }


EVERYTHING = {
    "name": "everything",
    "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
    "documentation": "_since (the entries' clinical time), _type, _count; paged",
}


BULK = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition"
_EXPORT_TEXT = (
    "Bulk Data export (Prefer: respond-async): _type, _since (the entries' clinical time), "
    "_typeFilter (Type?query, commas between queries: code and date on the entry types, "
    "category on Observation, status on Coverage and Consent; anything else is 400), "
    "_outputFormat application/fhir+ndjson; the requester's organisation's patients"
)
SYSTEM_EXPORT = {"name": "export", "definition": f"{BULK}/export", "documentation": _EXPORT_TEXT}
PATIENT_EXPORT = {
    "name": "export",
    "definition": f"{BULK}/patient-export",
    "documentation": _EXPORT_TEXT,
}
GROUP_EXPORT = {
    "name": "export",
    "definition": f"{BULK}/group-export",
    "documentation": "Bulk Data export of a sponsor's roster (the Group's id is the "
    "sponsor's): its members with a membership in force on the day",
}


def _documented(name: str, kind: str, text: str) -> dict[str, str]:
    return _param(name, kind) | {"documentation": text}


# The access log as IHE BALP AuditEvents (auditors only) and entries' Provenance.
AUDIT_RESOURCES: list[dict[str, Any]] = [
    {
        "type": "AuditEvent",
        "documentation": "Access records in the IHE BALP patterns (PatientRead, PatientQuery, "
        "PatientCreate, PatientUpdate); an organisation's auditors only",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "versioning": "no-version",
        "readHistory": False,
        "searchParam": [
            _param("patient", "reference"),
            _param("date", "date"),
            _documented("agent", "token", "the agent's identifier: organisation/subject"),
            _documented("purpose", "token", "the purpose of use (v3-ActReason)"),
            _documented("outcome", "token", "0 success, 4 refused"),
            _param("_count", "number"),
        ],
    },
    {
        "type": "Provenance",
        "documentation": "Who recorded, amended or entered in error each entry, and when",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "versioning": "no-version",
        "readHistory": False,
        "searchParam": [_param("target", "reference")],
    },
]


def capability_statement(
    base: str, authorize: str | None = None, token: str | None = None
) -> dict[str, Any]:
    entry_params = [
        _param("patient", "reference"),
        _param("code", "token"),
        _param("date", "date"),
        _param("_count", "number"),
    ]
    resources = [
        _resource(
            "Patient",
            [
                _param("_id", "token"),
                _param("identifier", "token"),
                _param("family", "string"),
                _param("birthdate", "date"),
                _param("_count", "number"),
            ],
        )
        | {"operation": [EVERYTHING, PATIENT_EXPORT]},
        {
            "type": "Coverage",
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "versioning": "no-version",
            "readHistory": False,
            "searchParam": [_param("beneficiary", "reference"), _param("status", "token")],
        },
        {
            "type": "Consent",
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "versioning": "no-version",
            "readHistory": False,
            "searchParam": [_param("patient", "reference"), _param("status", "token")],
        },
        *(
            _resource(
                kind,
                [*entry_params, *(_param(p, "token") for p in sorted(EXTRA_PARAMS.get(kind, ())))],
            )
            for kind in ENTRY_TYPES
        ),
        *AUDIT_RESOURCES,
        {
            "type": "Group",
            "documentation": "A sponsor's roster, for Bulk Data export only",
            "operation": [GROUP_EXPORT],
        },
    ]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": STATEMENT_DATE,
        "publisher": "CareLedger",
        "kind": "instance",
        "software": {"name": "CareLedger", "version": "0.1.0"},
        "implementation": {"description": "CareLedger FHIR read interface", "url": base},
        "fhirVersion": "4.3.0",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "Reads, searches, history, Patient/$everything, Bulk Data $export, creates, "
                    "updates, and "
                    "transaction and batch Bundles (MedicationRequest and DiagnosticReport "
                    "imported as MedicationStatement and DocumentReference), through the same "
                    "policy, access records and replay as /v1. Bearer JWT authentication, "
                    "narrowed by SMART v2 scopes."
                ),
                # POST /fhir: a transaction is new charts and one existing one, all or nothing.
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
                "operation": [SYSTEM_EXPORT],
                "security": smart_security(authorize, token),
                "resource": resources,
            }
        ],
    }
