"""`/docs` and `/redoc` render offline: every asset they load is served by the gateway itself."""

from __future__ import annotations

import re

import pytest

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|(?:url|Url)\s*:\s*["']([^"']+)["']""")
EXTERNAL = re.compile(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", re.IGNORECASE)


@pytest.mark.parametrize(
    ("page", "needed"),
    [
        ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css"}),
        ("/redoc", {"redoc.standalone.js"}),
    ],
)
async def test_docs_pages_reference_no_external_host_and_their_assets_are_served(
    make_client, page: str, needed: set[str]
) -> None:
    _, client = await make_client(gateway_api_keys="secret")  # docs stay public with auth on
    r = await client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert not EXTERNAL.findall(html), f"{page} names an external host"
    refs = {a or b for a, b in ASSET.findall(html)}
    assert needed <= {ref.rsplit("/", 1)[-1] for ref in refs}
    for ref in refs:
        if ref.startswith("/") and not ref.startswith("/openapi"):
            asset = await client.get(ref)
            assert asset.status_code == 200, ref
            assert len(asset.content) > 1000 or ref.endswith(".png"), ref
    spec = await client.get("/openapi.json")
    assert spec.status_code == 200 and spec.json()["info"]["title"] == "PerpSignal gateway"


async def test_swagger_ui_does_not_call_the_online_validator(make_client) -> None:
    _, client = await make_client()
    html = (await client.get("/docs")).text
    assert '"validatorUrl": null' in html
