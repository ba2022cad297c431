"""Validate the gateway's two OpenAPI documents with openapi-spec-validator.

`/openapi.json` (FastAPI's, every endpoint) and `/openapi-gpt.json` (the GPT Actions subset
built from it) are fetched from the real app, built with no database, Kafka or vendor keys,
so the check needs nothing running and fails on any document a client generator would reject.

    uv run python deploy/scripts/check_openapi.py
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import httpx
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

DOCUMENTS = ("/openapi.json", "/openapi-gpt.json")


async def fetch_documents() -> dict[str, dict[str, Any]]:
    """Return {path: document} as the gateway serves them."""
    from perpsignal_gateway.main import create_app
    from perpsignal_gateway.settings import GatewaySettings

    async def listed() -> set[str]:
        return set()

    settings = GatewaySettings(
        gateway_enable_database=False, gateway_public_url="https://perpsignal.example.com"
    )
    app = create_app(settings, vendor_env={}, listed_symbols=listed, connect_kafka=False)
    out: dict[str, dict[str, Any]] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            for path in DOCUMENTS:
                response = await client.get(path)
                response.raise_for_status()
                out[path] = response.json()
    return out


def problems(documents: dict[str, dict[str, Any]]) -> list[str]:
    """Return one message per document the validator rejects."""
    found = []
    for path, doc in documents.items():
        try:
            validate(doc)
        except OpenAPIValidationError as exc:
            found.append(f"{path}: {exc.message} at {'/'.join(map(str, exc.path))}")
    return found


def main() -> int:
    """Print each invalid document; exit 1 when there is one."""
    documents = asyncio.run(fetch_documents())
    found = problems(documents)
    for p in found:
        sys.stderr.write(p + "\n")
    if not found:
        versions = ", ".join(f"{p} (OpenAPI {d['openapi']})" for p, d in documents.items())
        sys.stdout.write(f"openapi: valid: {versions}\n")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
