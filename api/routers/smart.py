"""``/.well-known/smart-configuration``: SMART App Launch 2.x discovery, without a token.

CareLedger is a resource server: it verifies tokens (HS256 or an issuer's JWKS) and
narrows by their SMART scopes (``application.scopes``), but issues none. The
authorization and token endpoints are the authorization server's, published only when
configured (``CARELEDGER_SMART_*``); without them a client learns the scopes and
capabilities this server honours, and gets its tokens out of band.
"""

from fastapi import APIRouter, Request
from starlette.responses import Response

from api.dependencies import AppSettings
from application.access.access_log import render
from application.fhir.smart import smart_configuration

router = APIRouter(include_in_schema=False)


@router.get("/.well-known/smart-configuration")
def configuration(request: Request, settings: AppSettings) -> Response:
    body = smart_configuration(
        issuer=settings.jwt_issuer,
        jwks_uri=settings.jwt_jwks_url,
        authorization_endpoint=settings.smart_authorization_endpoint,
        token_endpoint=settings.smart_token_endpoint,
    )
    return Response(render(body), media_type="application/json")
