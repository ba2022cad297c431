"""The analytics routes' answers, from a real database the outcomes code filled, are what
OpenAPI documents (and what `/invoke`'s InvokeResult says they answer).

The routes had no response model: OpenAPI documented their 200 as any shape, so a client
generated from it got untyped answers and a renamed field went unnoticed.
"""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from perpsignal_common.db.engine import create_engine, create_sessionmaker
from perpsignal_common.settings import DatabaseSettings
from tests.integration.gateway.test_analytics_db import gateway
from tests.integration.outcomes.test_analytics import seed

pytestmark = pytest.mark.db

# path, query, /invoke operation, its arguments, a list in the answer that must hold rows
ANSWERS: list[tuple[str, dict[str, Any], str, dict[str, Any], str]] = [
    ("/analytics/verdict-performance", {}, "verdict_performance", {}, "groups"),
    ("/analytics/verdict-compare", {}, "verdict_compare", {}, "byVerdict"),
    ("/analytics/outcomes-history", {"limit": 50}, "outcomes_history", {"limit": 50}, "items"),
    ("/analytics/tracking-stats", {}, "tracking_stats", {}, ""),
    ("/analytics/calibration", {"horizon": "4h"}, "calibration", {"horizon": "4h"}, "buckets"),
]


def _validator(doc: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    root = {**schema, "components": doc["components"]}  # resolves "#/components/..."
    return Draft202012Validator(root, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _problems(validator: Draft202012Validator, body: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]


async def test_real_analytics_answers_validate_against_the_documented_schemas(
    database_url: str,
) -> None:
    engine = create_engine(DatabaseSettings(database_url=database_url))
    try:
        sessions: async_sessionmaker[AsyncSession] = create_sessionmaker(engine)
        await seed(sessions)  # the outcomes repository's rows, completed as its tracker does
    finally:
        await engine.dispose()
    async with gateway(database_url) as client:
        doc = (await client.get("/openapi.json")).json()
        invoke_result = _validator(doc, {"$ref": "#/components/schemas/InvokeResult"})
        for path, query, operation, args, rows in ANSWERS:
            documented = doc["paths"][path]["get"]["responses"]["200"]["content"]
            schema = documented["application/json"]["schema"]
            # "any shape" documented nothing: a named, closed model now
            assert schema.get("$ref", "").startswith("#/components/schemas/"), (path, schema)
            r = await client.get(path, params=query)
            assert r.status_code == 200, (path, r.text)
            body = r.json()
            assert not rows or body[rows], (path, body)  # nested rows are checked too
            assert _problems(_validator(doc, schema), body) == [], path
            invoked = await client.post("/invoke", json={"operation": operation, "args": args})
            assert invoked.status_code == 200, invoked.text
            assert _problems(invoke_result, invoked.json()) == [], operation
        stats = (await client.get("/analytics/tracking-stats")).json()
        assert {"lagAvgS", "pendingOverdue", "oldestPendingDueAt"} <= set(stats)


async def test_a_field_served_but_not_documented_is_caught(database_url: str) -> None:
    # the documented models are closed: the check above fails on a field nobody documented
    async with gateway(database_url) as client:
        doc = (await client.get("/openapi.json")).json()
        stats = (await client.get("/analytics/tracking-stats")).json()
    schema = doc["paths"]["/analytics/tracking-stats"]["get"]["responses"]["200"]["content"]
    validator = _validator(doc, schema["application/json"]["schema"])
    assert _problems(validator, stats) == []
    assert _problems(validator, {**stats, "lag_avg_s": 1.0}) != []  # a snake_case leak
