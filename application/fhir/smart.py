"""SMART on FHIR discovery: the smart-configuration document and the
CapabilityStatement's security (SMART App Launch 2.x). No PHI, no clock."""

from typing import Any

OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"
# Examples of the grammar this server honours (application.scopes): any
# resource type it serves may stand where a type is named.
SCOPES_SUPPORTED = [
    "openid",
    "fhirUser",
    "launch/patient",
    "patient/*.rs",
    "patient/*.cruds",
    "user/*.rs",
    "user/*.cruds",
    "system/*.rs",
    "system/*.cruds",
    "patient/*.read",
    "user/*.read",
    "user/*.write",
    "system/*.read",
]
CAPABILITIES = [
    "permission-v2",
    "permission-v1",
    "permission-patient",
    "permission-user",
    "context-standalone-patient",
]


def smart_configuration(
    *,
    issuer: str | None,
    jwks_uri: str | None,
    authorization_endpoint: str | None,
    token_endpoint: str | None,
) -> dict[str, Any]:
    """The ``/.well-known/smart-configuration`` document; endpoints and the issuer
    appear only when configured (CareLedger issues no tokens itself)."""
    body: dict[str, Any] = {}
    if issuer:
        body["issuer"] = issuer
    if jwks_uri:
        body["jwks_uri"] = jwks_uri
    if authorization_endpoint:
        body["authorization_endpoint"] = authorization_endpoint
    if token_endpoint:
        body["token_endpoint"] = token_endpoint
        body["token_endpoint_auth_methods_supported"] = [
            "client_secret_basic",
            "private_key_jwt",
        ]
    body |= {
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "response_types_supported": ["code"],
        "scopes_supported": SCOPES_SUPPORTED,
        "code_challenge_methods_supported": ["S256"],
        "capabilities": CAPABILITIES,
    }
    return body


def smart_security(authorize: str | None, token: str | None) -> dict[str, Any]:
    """``rest.security``: SMART on FHIR as the service, with the oauth-uris extension
    when the authorization server's endpoints are configured."""
    security: dict[str, Any] = {
        "cors": False,
        "service": [
            {
                "coding": [{"system": SECURITY_SERVICE, "code": "SMART-on-FHIR"}],
                "text": "OAuth2 bearer tokens with SMART App Launch v2 scopes",
            }
        ],
        "description": (
            "Authorization: Bearer <JWT>; SMART v2 scopes in its scope claim narrow what "
            "the policy permits and never widen it; every PHI response is audited."
        ),
    }
    uris = [
        {"url": name, "valueUri": uri}
        for name, uri in (("authorize", authorize), ("token", token))
        if uri
    ]
    if uris:
        security["extension"] = [{"url": OAUTH_URIS, "extension": uris}]
    return security
