"""JSON rendering with orjson: the exact bytes that go on the wire."""

from decimal import Decimal
from typing import Any

import orjson
from starlette.responses import Response


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(type(value).__name__)


def render(content: Any) -> bytes:
    return orjson.dumps(content, default=_default, option=orjson.OPT_NON_STR_KEYS)


class JSON(Response):
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
