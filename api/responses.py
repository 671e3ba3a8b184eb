"""JSON rendering with orjson: the exact bytes that go on the wire."""

from typing import Any

from starlette.responses import JSONResponse, Response

from application.access.access_log import Disclosed, render


def disclosed(disclosure: Disclosed, status_code: int = 200, **headers: str) -> Response:
    """A PHI-disclosing response: exactly the bytes its access record hashed."""
    return Response(
        content=disclosure.body,
        status_code=status_code,
        media_type="application/json",
        headers={
            "X-Access-Id": str(disclosure.access_id),
            **({"ETag": f'"{disclosure.version}"'} if disclosure.version is not None else {}),
            **headers,
        },
    )


class JSON(JSONResponse):
    """A JSON body rendered by orjson; a ``JSONResponse`` so that the OpenAPI document
    shows each route's response model rather than a string."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return render(content)


class Problem(Response):
    """RFC 9457 problem details."""

    media_type = "application/problem+json"

    def render(self, content: Any) -> bytes:
        return render(content)


def problem(status: int, title: str, detail: str, **extra: Any) -> Problem:
    slug = title.lower().replace(" ", "-")
    body = {
        "type": f"https://careledger.dev/problems/{slug}",
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Problem(body, status_code=status, headers=headers)
