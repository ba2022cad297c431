"""The paths served without a key: a per-client limit, and the OpenAPI documents cached."""

from __future__ import annotations

import pytest
from starlette.responses import JSONResponse

KEYS = "key-alpha,key-beta"


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
