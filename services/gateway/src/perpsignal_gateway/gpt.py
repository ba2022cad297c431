"""The GPT-Actions-ready OpenAPI document: a curated subset of the full schema.

GPT Actions accept OpenAPI 3.1 with at most 30 operations, an `operationId` and a summary or
description of at most 300 characters on each, a `servers` entry and one auth scheme (we use
an API key in `X-API-Key`). This module selects the GPT-facing operations from the app's own
schema, so the two documents never drift apart.
"""

from __future__ import annotations

import copy
from typing import Any

GPT_OPERATIONS: tuple[str, ...] = (
    "getSignal",
    "listSignals",
    "getMarket",
    "getSmc",
    "listMss",
    "listNewListings",
    "getLiquidations",
    "verdictPerformance",
    "verdictCompare",
    "outcomesHistory",
    "trackingStats",
    "calibration",
    "signalResearch",
    "gptSignal",
    "gptSignals",
    "gptMarket",
    "validateSignal",
    "invokeOperation",
    "listOperations",
)
MAX_DESCRIPTION = 300
# POSTs that only read (or, for the judge, compute an answer without changing anything):
# ChatGPT runs them without asking the user to confirm each call
READ_ONLY_POSTS = frozenset({"gptSignal", "gptSignals", "gptMarket", "validateSignal"})
SCHEME = "ApiKeyAuth"
API_KEY_SCHEME = {
    "type": "apiKey",
    "in": "header",
    "name": "X-API-Key",
    "description": "One of GATEWAY_API_KEYS. WebSockets: POST /ws/ticket, then ?ticket=.",
}
_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
_NOT_JSON_422 = (
    "Invalid arguments, one entry per field; also a body that is not JSON or not sent as "
    "JSON (Content-Type: application/json)"
)
NOT_TEXT_400 = "The body could not be decoded: bytes that are no UTF-8 text"
_REFUSALS = {
    "401": "Missing or invalid API key",
    "429": "Rate limited (per key, per costly operation, or failed authentications); "
    "see Retry-After",
}


def add_security(doc: dict[str, Any], public_paths: set[str]) -> dict[str, Any]:
    """Declare the API-key scheme; every operation outside `public_paths` requires it.

    Also documents what the security middleware may answer before the route runs (401, 429,
    413 on bodies), so generated clients and schema checks know every status they can meet.
    """
    components = doc.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SCHEME] = API_KEY_SCHEME
    schemas = components.setdefault("schemas", {})
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if not isinstance(op, dict) or path in public_paths:
                continue
            op["security"] = [{SCHEME: []}]
            responses = op.setdefault("responses", {})
            refusals = dict(_REFUSALS)
            if method in ("post", "put", "patch"):
                # a body that is text but not JSON is answered 422, as any invalid argument
                # (errors.install_error_handlers); the document said 400, which only bytes
                # that are no UTF-8 text get (FastAPI cannot decode them)
                if "422" in responses:
                    responses["422"] = {**responses["422"], "description": _NOT_JSON_422}
                else:
                    refusals["422"] = _NOT_JSON_422
                refusals["400"] = NOT_TEXT_400
                refusals["413"] = "Request body too large"
                refusals["415"] = "A compressed body (Content-Encoding) is not accepted"
            for status, text in refusals.items():
                if status not in responses:
                    responses[status] = {
                        "description": text,
                        "content": {"application/json": {"schema": _ERROR_REF}},
                    }
    if "ErrorBody" not in schemas:
        from perpsignal_gateway.schemas import ErrorBody

        schemas["ErrorBody"] = ErrorBody.model_json_schema(
            by_alias=True, ref_template="#/components/schemas/{model}"
        )
    return doc


_GUARD_REFUSALS = {
    "421": "This gateway does not serve that Host name (DNS-rebinding guard); add it to "
    "GATEWAY_ALLOWED_HOSTS",
    "403": "Cross-site Origin refused: without GATEWAY_API_KEYS only the gateway's own pages "
    "and GATEWAY_CORS_ORIGINS may call it",
}


def add_host_guard(
    doc: dict[str, Any], *, exempt_paths: frozenset[str], check_origin: bool
) -> dict[str, Any]:
    """Declare what `HostGuardMiddleware` answers before any route: 421, and 403 for Origins.

    Call only when the guard is installed, with its settings, so the document says what this
    gateway really answers (with keys and no GATEWAY_ALLOWED_HOSTS it answers neither).
    """
    refusals = {k: v for k, v in _GUARD_REFUSALS.items() if k == "421" or check_origin}
    for path, item in doc.get("paths", {}).items():
        if path in exempt_paths:
            continue
        for op in item.values():
            if not isinstance(op, dict):
                continue
            responses = op.setdefault("responses", {})
            for status, text in refusals.items():
                responses.setdefault(
                    status,
                    {"description": text, "content": {"application/json": {"schema": _ERROR_REF}}},
                )
    return doc


_GPT_INVOKE_BODY: dict[str, Any] = {
    "title": "InvokeBody",
    "type": "object",
    "description": '{"operation": "...", "args": {...}}; GET /invoke/operations lists them',
    "properties": {
        "operation": {"type": "string", "minLength": 1, "maxLength": 200},
        "args": {"type": "object", "additionalProperties": True},
    },
    "required": ["operation"],
    "additionalProperties": True,
}


def build_gpt_openapi(full: dict[str, Any], server_url: str) -> dict[str, Any]:
    """Return the GPT Actions document derived from the full OpenAPI document."""
    paths: dict[str, Any] = {}
    for path, item in full.get("paths", {}).items():
        for method, source in item.items():
            if not isinstance(source, dict) or source.get("operationId") not in GPT_OPERATIONS:
                continue
            op = copy.deepcopy(source)
            op.pop("tags", None)
            for key in ("summary", "description"):
                if key in op:
                    op[key] = op[key][:MAX_DESCRIPTION]
            # documented once, globally: ChatGPT sends the key itself
            op["parameters"] = [p for p in op.get("parameters", []) if p.get("name") != "X-API-Key"]
            if not op["parameters"]:
                op.pop("parameters")
            op.pop("security", None)  # declared once, globally
            if method == "post":
                op["x-openai-isConsequential"] = op["operationId"] not in READ_ONLY_POSTS
            paths.setdefault(path, {})[method] = op
    components = copy.deepcopy(full.get("components", {}))
    if "oneOf" in components.get("schemas", {}).get("InvokeBody", {}):
        # GPT Actions get the short form; they learn arguments from listOperations
        components["schemas"]["InvokeBody"] = _GPT_INVOKE_BODY
    components["securitySchemes"] = {
        SCHEME: {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    }
    info = full.get("info", {})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": info.get("title", "PerpSignal"),
            "version": info.get("version", "1.0.0"),
            "description": "Crypto-futures trading signals with an AI verdict layer and trade "
            "plan, market data and vendor data pass-through.",
        },
        "servers": [{"url": server_url.rstrip("/")}],
        "paths": paths,
        "components": components,
        "security": [{"ApiKeyAuth": []}],
    }
