"""FHIR R4B (4.3.0) reads over the same policy, access records and replay as /v1."""
