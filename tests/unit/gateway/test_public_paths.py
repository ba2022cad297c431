"""The paths served without a key: a per-client limit, and the OpenAPI documents cached."""

from __future__ import annotations

import httpx
import pytest
from starlette.responses import JSONResponse

KEYS = "key-alpha,key-beta"
PUBLIC = ["/openapi.json", "/docs", "/static/js/app.js", "/", "/openapi-gpt.json", "/redoc"]


async def test_public_paths_have_a_per_client_rate_limit_but_the_probes_do_not(
    make_client,
) -> None:
    """Anyone could make the gateway send ~300 KB documents and assets, unlimited, for free."""
    app, client = await make_client(gateway_api_keys=KEYS, gateway_public_rate_limit="4/minute")
    codes = [(await client.get(path)).status_code for path in PUBLIC]
    assert codes == [200, 200, 200, 200, 429, 429]
    limited = await client.get("/openapi.json", headers={"X-API-Key": "key-alpha"})
    assert limited.status_code == 429  # a key does not lift the address's limit
    assert limited.json()["error"]["code"] == "rate_limited"
    assert "client address" in limited.json()["error"]["message"]
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # the kubelet's and Prometheus' checks always answer
    for _ in range(10):
        for probe in ("/healthz", "/readyz", "/metrics"):
            assert (await client.get(probe)).status_code == 200, probe
    # another client has its own budget; the data paths keep theirs (per key)
    transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as other:
        assert (await other.get("/docs")).status_code == 200
    assert (await client.get("/ping", headers={"X-API-Key": "key-beta"})).status_code == 200


@pytest.mark.parametrize("document", ["/openapi.json", "/openapi-gpt.json"])
async def test_the_openapi_documents_are_serialised_once_and_revalidated_by_etag(
    make_client, monkeypatch, document
) -> None:
    _, client = await make_client(gateway_api_keys=KEYS)
    first = await client.get(document)
    assert first.status_code == 200 and first.json()["openapi"].startswith("3.1")
    renders = 0
    render = JSONResponse.render

    def counting(self: JSONResponse, content: object) -> bytes:
        nonlocal renders
        renders += 1
        return render(self, content)

    monkeypatch.setattr(JSONResponse, "render", counting)
    again = [await client.get(document) for _ in range(5)]
    assert renders == 0  # the ~300 KB document is not serialised again per request
    assert all(r.content == first.content for r in again)
    etag = first.headers["ETag"]
    assert etag.startswith('"') and first.headers["Cache-Control"] == "no-cache"
    for sent in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        fresh = await client.get(document, headers={"If-None-Match": sent})
        assert fresh.status_code == 304 and fresh.content == b"", sent
        assert fresh.headers["ETag"] == etag
    changed = await client.get(document, headers={"If-None-Match": '"an-older-version"'})
    assert changed.status_code == 200 and changed.content == first.content
