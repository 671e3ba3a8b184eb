"""The OpenAPI document: what each operation declares, and the one place it is
post-processed (``custom_openapi``).

Routes declare their success body and the problems they may answer through
``documented``; ``custom_openapi`` then makes every 4xx and 5xx an
``application/problem+json`` Problem, declares the bearer scheme, documents the
request and response headers, copies each model's example into its response, and
adds the stateful links (``api.openapi_links``).
"""

import importlib
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from api.openapi_models import Model
from domain.vocabulary import Purpose

PROBLEM_REF = "#/components/schemas/Problem"
BEARER = "bearerAuth"


class FieldError(BaseModel):
    field: str = Field(description="The field, query parameter or header at fault")
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details; never carries the input's values (they may be PHI)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "https://careledger.dev/problems/invalid-input",
                    "title": "Invalid input",
                    "status": 422,
                    "detail": "birth_date: Input should be a valid date",
                    "errors": [{"field": "birth_date", "message": "Input should be a valid date"}],
                }
            ]
        }
    )
    type: str = Field(json_schema_extra={"format": "uri"})
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    errors: list[FieldError] = Field(
        default_factory=list, description="On a 422: each field at fault"
    )


PROBLEMS: dict[int, str] = {
    401: "No token, or a bad one",
    403: "A valid token that is not allowed (the attempt is audited)",
    404: "Not found, or not within the actor's reach",
    409: "A version conflict, a reused idempotency key, or a business rule refused it",
    410: "The patient was erased (crypto-shredded)",
    412: "`If-Match` named a version that is not current",
    413: "The body is too large",
    422: "Invalid input; `errors` names each field at fault",
    500: "An integrity violation was detected (logged as a security event)",
    503: "The store or the audit write is unavailable, or a view has not caught up; "
    "retry after `Retry-After` seconds. A write answered 503 says in `detail` whether it "
    "was not committed or may have been: retry it with the same `Idempotency-Key`",
    507: "The store's disk is full: the write was not committed; retry after "
    "`Retry-After` seconds, once space is freed",
}
# Every authenticated operation may answer these.
AUTHENTICATED = (401, 403, 422, 503, 507)

_HEADERS: dict[str, dict[str, Any]] = {
    "X-Access-Id": {
        "description": "The access record written for this disclosure; the body is "
        "exactly the bytes it hashed",
        "schema": {"type": "string", "format": "uuid"},
    },
    "ETag": {
        "description": 'The stream version the body shows or reached, e.g. `"3"`; send '
        "it back as `If-Match`",
        "schema": {"type": "string", "pattern": r'^"\d+"$'},
    },
    "Idempotent-Replayed": {
        "description": "`true` when the answer is repeated for a retried `Idempotency-Key`",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "X-Request-Id": {
        "description": "The request's `X-Request-Id`, or a generated UUID",
        "schema": {"type": "string"},
    },
    "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}},
    "WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}},
}

_REQUEST_HEADERS: dict[str, dict[str, Any]] = {
    "x-purpose-of-use": {
        "description": "The purpose of use (HL7 v3 ActReason), among those the token "
        "allows; by default the role's (clinicians: `TREAT`)",
        "schema": {"type": "string", "enum": [p.value for p in Purpose]},
    },
    "x-break-glass": {
        "description": "A justification (20+ characters, 3 different words of 3+ letters); "
        "switches the purpose to `ETREAT` and queues the access for review",
        "schema": {"type": "string", "minLength": 20},
    },
    "idempotency-key": {
        "description": "A retried POST with the same key and body returns the first result "
        "(`Idempotent-Replayed: true`); with another body, 409",
        "schema": {"type": "string", "pattern": r"^[\x21-\x7e]{1,255}$"},
    },
    "if-match": {
        "description": 'The stream version the write expects, as an ETag (`"3"`, `W/"3"`) '
        "or `*`; a stale one answers 412",
        "schema": {"type": "string"},
    },
}


def _header(name: str, required: bool = False) -> dict[str, Any]:
    return {**_HEADERS[name], "required": required}


def documented(
    model: type[BaseModel],
    status: int = 200,
    *problems: int,
    disclosed: bool = False,
    etag: bool = False,
    authenticated: bool = True,
    description: str | None = None,
) -> dict[str, Any]:
    """The route decorator's arguments that document its answers: ``model`` at
    ``status`` (with ``X-Access-Id`` when it discloses PHI, ``ETag`` where sent) and
    a problem for each status in ``problems`` (and those of every authenticated call)."""
    headers = {"X-Request-Id": _header("X-Request-Id", required=True)}
    if disclosed:
        headers["X-Access-Id"] = _header("X-Access-Id", required=True)
    if etag:
        headers["ETag"] = _header("ETag")
    if etag and status in (200, 201, 202) and not disclosed:
        headers["Idempotent-Replayed"] = _header("Idempotent-Replayed")
    success: dict[str, Any] = {"headers": headers}
    if description:
        success["description"] = description
    statuses = sorted({*problems, *(AUTHENTICATED if authenticated else ())})
    responses: dict[int | str, dict[str, Any]] = {status: success}
    responses.update({code: {"description": PROBLEMS[code]} for code in statuses})
    return {"response_model": model, "status_code": status, "responses": responses}


def custom_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """``app.openapi``: the generated document, post-processed once and cached."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = post_process(document)
        return app.openapi_schema

    return openapi


def post_process(document: dict[str, Any]) -> dict[str, Any]:
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(_problem_schemas())
    components["securitySchemes"] = {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "Claims `sub`, `role`, `org`, `exp`; `patient` for patients",
        }
    }
    _restore_examples(schemas)
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            _operation(path, method, operation, schemas)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    try:
        links = importlib.import_module("api.openapi_links")
    except ModuleNotFoundError:
        return document
    result: dict[str, Any] = links.add_links(document)
    return result


def _restore_examples(schemas: dict[str, Any]) -> None:
    """The models' examples as written: the generator drops their null values, which
    would make them contradict the schemas that require those keys."""
    stack: list[type[BaseModel]] = [Model, Problem]
    while stack:
        model = stack.pop()
        stack += model.__subclasses__()
        extra = model.model_config.get("json_schema_extra")
        if model.__name__ in schemas and isinstance(extra, dict) and "examples" in extra:
            schemas[model.__name__]["examples"] = extra["examples"]


def _problem_schemas() -> dict[str, Any]:
    schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions = schema.pop("$defs", {})
    return {**definitions, "Problem": schema}


def _operation(path: str, method: str, operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    if path.startswith("/v1/"):
        operation["security"] = [{BEARER: []}]
    parameters = []
    for parameter in operation.get("parameters", []):
        name = parameter["name"].lower()
        if parameter["in"] == "header" and name in _REQUEST_HEADERS:
            if name == "idempotency-key" and method != "post":
                continue  # only a POST is repeated by its key
            parameter.update(_REQUEST_HEADERS[name])
        parameters.append(parameter)
    if "parameters" in operation:
        operation["parameters"] = parameters
    for code, response in operation.get("responses", {}).items():
        if int(code) >= 400:
            response.setdefault("headers", {})["X-Request-Id"] = _header("X-Request-Id", True)
            if _own_body(response):
                continue
            response["content"] = {"application/problem+json": {"schema": {"$ref": PROBLEM_REF}}}
            if code == "401":
                response["headers"]["WWW-Authenticate"] = _header("WWW-Authenticate", True)
            if code in ("503", "507"):
                response["headers"]["Retry-After"] = _header("Retry-After")
            continue
        for media in response.get("content", {}).values():
            example = _example_of(media.get("schema", {}), schemas)
            if example is not None:
                media.setdefault("example", example)


def _own_body(response: dict[str, Any]) -> bool:
    """An error answer a route documents with a body of its own (``/readyz``'s 503),
    rather than a problem or FastAPI's default validation error."""
    for media in response.get("content", {}).values():
        reference = media.get("schema", {}).get("$ref", "")
        if reference and not reference.endswith("/HTTPValidationError"):
            return True
    return False


def _example_of(schema: dict[str, Any], schemas: dict[str, Any]) -> Any:
    reference = schema.get("$ref", "")
    if not reference.startswith("#/components/schemas/"):
        return None
    examples = schemas.get(reference.rsplit("/", 1)[1], {}).get("examples")
    return examples[0] if examples else None
