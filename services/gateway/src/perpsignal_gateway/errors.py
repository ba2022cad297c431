"""One error shape for every failure: `{"error": {"code", "message", "details"}}`.

Handlers never put a stack trace or a secret in a response; unexpected exceptions are logged
by type and message only and answered with a generic 500.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection
from starlette.responses import Response

from perpsignal_common.errors import DependencyUnavailable

log = logging.getLogger(__name__)

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_arguments",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "unavailable",
    504: "timeout",
}


class ApiError(Exception):
    """An error the API answers with a status, a machine-readable code and a message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


# field errors listed in one answer: a 64 KiB body of thousands of unknown names would
# otherwise be answered with ten times its size (one entry and one name each)
MAX_DETAILS = 20


def error_body(code: str, message: str, details: Any = None) -> bytes:
    """Return the JSON error body (a list of details cut to MAX_DETAILS entries)."""
    if isinstance(details, list):
        details = details[:MAX_DETAILS]
    return orjson.dumps({"error": {"code": code, "message": message, "details": details}})


def field_names(details: list[dict[str, Any]]) -> str:
    """Return the fields of `details` for a message: MAX_DETAILS names, then how many more."""
    names = ", ".join(str(d["field"]) for d in details[:MAX_DETAILS])
    more = len(details) - MAX_DETAILS
    return f"{names} and {more} more" if more > 0 else names


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> Response:
    """Return a JSON error response."""
    return Response(
        error_body(code, message, details),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


# validating pattern -> the one the OpenAPI document publishes for it (filled by `symbols`):
# pydantic's message quotes the validator's \p{L} form, which the caller's regex engine may
# not compile and which is not the pattern the document gave it
PUBLISHED_PATTERNS: dict[str, str] = {}


def validation_details(errors: list[Any], *, located: bool = True) -> list[dict[str, Any]]:
    """Turn pydantic errors into `[{field, message, type}]`, one per bad field.

    `located`: FastAPI's locations start with where the value came from (body, query, path),
    dropped here. A model validated directly has none: there an argument named `query`
    (coingecko.search) is the field itself, not a location, and must be named (it was
    reported as `<root>`).
    """
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        if located and loc and loc[0] in ("body", "query", "path"):
            loc = loc[1:]
        message = str(err.get("msg", "invalid"))
        pattern = (err.get("ctx") or {}).get("pattern")
        if isinstance(pattern, str) and pattern in PUBLISHED_PATTERNS:
            message = message.replace(pattern, PUBLISHED_PATTERNS[pattern])
        out.append(
            {
                "field": ".".join(loc) or "<root>",
                "message": message,
                "type": str(err.get("type", "value_error")),
            }
        )
    return out


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the same JSON shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        details = validation_details(list(exc.errors()))
        message = f"invalid arguments: {field_names(details)}"
        if _unread_body(request, details):
            # FastAPI reads a body as JSON only when it says so (`curl -d` sends a form type):
            # "<root> should be a valid dictionary" would not tell the caller why
            message = "the body was not read as JSON: send it with Content-Type: application/json"
        elif details[:1] and details[0]["type"] == "json_invalid":
            # pydantic's "field" is the character where parsing failed, not an argument's
            # name: the position goes in the message, the field is the body
            message = f"the body is not valid JSON (error at character {details[0]['field']})"
            details[0]["field"] = "<body>"
        return error_response(422, "invalid_arguments", message, details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_response(exc.status_code, code, message, headers=dict(exc.headers or {}))

    @app.exception_handler(DependencyUnavailable)
    async def _dependency(_: Request, exc: DependencyUnavailable) -> Response:
        log.warning("dependency unavailable", extra={"error": str(exc)[:200]})
        return error_response(503, "dependency_unavailable", "a platform dependency is down")


def _unread_body(request: Request, details: list[dict[str, Any]]) -> bool:
    if request.method not in ("POST", "PUT", "PATCH") or details[:1] == []:
        return False
    if details[0]["field"] != "<root>" or details[0]["type"] != "model_attributes_type":
        return False
    return not json_media_type(request.headers.get("content-type", ""))


def json_media_type(content_type: str) -> bool:
    """Return True for `application/json` or `application/*+json`: what FastAPI reads as JSON.

    No Content-Type at all is not JSON either (FastAPI's strict content type: a form or a
    text body is never read as JSON).
    """
    main, _, sub = content_type.split(";", 1)[0].strip().lower().partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


async def known_query_only(conn: HTTPConnection) -> None:
    """Refuse query parameters an operation does not declare (422), as its schema says.

    Routes that take a query model already forbid extras; this covers the ones with single
    parameters (and none), which FastAPI would otherwise silently ignore, so a typo such as
    `?limt=5` is an error, not a default. The declared names come from the app's own
    OpenAPI document, so the two cannot disagree. No parameter takes a list, so one given
    twice is refused too: `?verdict=CONFIRM&verdict=SKIP` was read as SKIP alone.
    """
    if conn.scope["type"] != "http" or not conn.scope.get("query_string"):
        return
    path = getattr(conn.scope.get("route"), "path", None)
    if path is None:
        return
    method = str(conn.scope["method"]).lower()
    known: dict[tuple[str, str], frozenset[str]] = conn.app.state.__dict__.setdefault(
        "_declared_query", {}
    )
    key = (path, method)
    if key not in known:
        op = conn.app.openapi().get("paths", {}).get(path, {}).get(method)
        if op is None:
            return  # not a documented operation
        params = op.get("parameters", [])
        known[key] = frozenset(p["name"] for p in params if p.get("in") == "query")
    unknown = sorted({k for k in conn.query_params if k not in known[key]})
    if unknown:
        raise ApiError(
            422,
            "invalid_arguments",
            f"unknown query parameters: {field_names([{'field': k} for k in unknown])}",
            [
                {"field": k, "message": "not a parameter of this operation", "type": "extra"}
                for k in unknown
            ],
        )
    counts = Counter(k for k, _ in conn.query_params.multi_items())
    repeated = sorted(k for k, n in counts.items() if n > 1)
    if repeated:
        raise ApiError(
            422,
            "invalid_arguments",
            "query parameters given more than once: "
            + field_names([{"field": k} for k in repeated]),
            [
                {
                    "field": k,
                    "message": "given more than once (takes one value)",
                    "type": "repeated",
                }
                for k in repeated
            ],
        )
