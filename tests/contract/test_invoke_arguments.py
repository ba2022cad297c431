"""Every `/invoke` argument is refused or taken exactly as /openapi.json documents it.

A GPT Actions client (or one generated from the document) checks its arguments against the
published `InvokeBody`: a value the document refuses must get the documented 422 naming the
argument, never run the operation; a value the document allows must never be that 422. The
walk covers every operation (platform and vendor), every argument, and values of every JSON
type, null included.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from perpsignal_connectors.catalog import load_catalogs
from perpsignal_gateway.vendors import budget_env
from tests.contract.test_gateway_documented_calls import Doc
from tests.contract.test_openapi_gateway import _app
from tests.unit.gateway import builders as b

# one value of each JSON type, plus the near misses a client sends (a number as text, a
# fraction for an integer, a negative); null first: GPT fills an argument it leaves with null
PROBES: tuple[Any, ...] = (None, True, 0, 7, -1, 1.5, "7", "x", "", [], {}, [7])


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # vendors answer without the network, with every key set: an argument taken is answered
    vendor = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda _: httpx.Response(200, json={"ok": True}))
    )
    env = {c.key_env: "k" for c in load_catalogs() if c.key_env}
    env.update({budget_env(c): "100000" for c in load_catalogs()})
    app = _app(vendor_env=env, vendor_http=vendor)
    async with app.router.lifespan_context(app):
        app.state.model.apply(b.signal("BTCUSDT"))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
            yield c
    await vendor.aclose()


def _refused_field(response: httpx.Response, name: str) -> bool:
    if response.status_code != 422:
        return False
    details = response.json()["error"].get("details") or []
    return any(d.get("field") == name for d in details if isinstance(d, dict))


async def test_every_argument_is_refused_exactly_when_the_document_refuses_it(
    client: httpx.AsyncClient,
) -> None:
    doc = Doc((await client.get("/openapi.json")).json())
    branches = doc.doc["components"]["schemas"]["InvokeBody"]["oneOf"]
    mismatches: list[str] = []
    checked = 0
    for i, branch in enumerate(branches):
        if "args" not in branch["properties"]:
            continue  # the flat twin of the branch before
        name = branch["properties"]["operation"]["const"]
        params = branch["properties"]["args"]
        pointer = ["components", "schemas", "InvokeBody", "oneOf", str(i), "properties", "args"]
        valid = Doc(params).sample(params)
        for n in valid:
            if n == "symbol":
                valid[n] = "BTC"
        if name == "validate_signal":
            valid["direction"] = "LONG"
        assert not doc.errors(pointer, valid), (name, valid)
        for prop in params.get("properties", {}):
            for value in PROBES:
                args = {**valid, prop: value}
                documented = not doc.errors(pointer, args)
                r = await client.post("/invoke", json={"operation": name, "args": args})
                assert r.status_code < 500 or r.status_code in (503, 504), (name, r.text)
                refused = _refused_field(r, prop)
                checked += 1
                if documented == refused:
                    mismatches.append(
                        f"{name}.{prop}={value!r}: document "
                        f"{'allows' if documented else 'refuses'}, gateway answered "
                        f"{r.status_code} {r.text[:160]}"
                    )
    assert checked > 5_000
    assert not mismatches, f"{len(mismatches)} mismatches:\n" + "\n".join(mismatches[:40])
