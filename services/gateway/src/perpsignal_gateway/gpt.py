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
    "gptSignal",
    "gptSignals",
    "gptMarket",
    "validateSignal",
    "invokeOperation",
    "listOperations",
)
MAX_DESCRIPTION = 300


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
            if method == "post" and op["operationId"] == "validateSignal":
                op["x-openai-isConsequential"] = False
            paths.setdefault(path, {})[method] = op
    components = copy.deepcopy(full.get("components", {}))
    components["securitySchemes"] = {
        "ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-API-Key"}
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
