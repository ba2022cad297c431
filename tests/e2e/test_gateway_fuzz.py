"""Bad input at the gateway: property-based fuzzing of the whole OpenAPI, then targeted abuse.

The gateway runs as its own process (with the judge, so `/judge/validate` has someone to ask,
and the fake vendors behind `/invoke`'s pass-through operations). Schemathesis generates
requests from `/openapi.json` for every operation; the only property demanded is the one a
client can rely on: bad input gets a 4xx, never a 5xx. Then the abuse a real client sends:
oversized bodies, invalid symbols, unknown operations, bad API keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from perpsignal_common.settings import KafkaSettings
from perpsignal_connectors.catalog import load_catalogs
from tests.conftest import PgServer
from tests.e2e.conftest import E2E_SYMBOLS, fresh_database, kafka_env_of
from tests.e2e.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

KEY = "e2e-key"
HEADERS = {"X-API-Key": KEY}
EXAMPLES = int(os.environ.get("E2E_FUZZ_EXAMPLES", "12"))
CONFORMANCE = [
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def gateway(
    shared_data: Path,
    e2e_kafka_settings: KafkaSettings,
    pg_server: PgServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    url = fresh_database(pg_server)
    s = Stack(
        shared_data=shared_data,
        kafka_env=kafka_env_of(e2e_kafka_settings),
        database_url=url,
        log_dir=tmp_path_factory.mktemp("fuzz-logs"),
        symbols=E2E_SYMBOLS,
        extra_env={
            "judge": {"ENABLE_AI_JUDGE": "false"},
            # every vendor keyed (the fakes ignore the value): /invoke reaches each of them
            "gateway": {c.key_env: "fuzz-vendor-key" for c in load_catalogs() if c.key_env},
        },
    )
    try:
        s.start_fakes()
        # the stack points the ingestor's settings at the fakes; the gateway's catalogue
        # names Fear & Greed's base URL differently (the fakes' port is known once started)
        s.extra_env["gateway"]["FEAR_GREED_BASE_URL"] = s.vendors.url("alternative_me")
        s.start_all(("judge", "gateway"))
        s.wait_started()
        yield s
    finally:
        s.stop()
        with contextlib.suppress(Exception):
            asyncio.run(pg_server.drop(url.rsplit("/", 1)[-1]))


def test_no_generated_request_gets_a_5xx(gateway: Stack) -> None:
    """Every operation of /openapi.json, EXAMPLES requests each, with a key: no 5xx, no mismatch."""
    schema = schemathesis.openapi.from_url(f"{gateway.gateway_url}/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        op = result.ok()
        operations += 1

        @given(case=op.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: schemathesis.Case) -> None:
            response = case.call(base_url=gateway.gateway_url, headers=HEADERS, timeout=30)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: "
                    f"{response.text[:300]}\n  reproduce: {case.as_curl_command()}"
                )
                return
            try:  # and the answer is what the document promises
                case.validate_response(response, checks=CONFORMANCE, headers=HEADERS)
            except (AssertionError, BaseExceptionGroup) as exc:
                failures.append(f"{case.method} {case.formatted_path}: {str(exc)[:400]}")

        run()
    assert operations >= 15, f"only {operations} operations in /openapi.json"
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:20])


def _error_message(r: httpx.Response) -> str:
    """Return the human-readable part of an error body (must exist and say something)."""
    body = r.json()
    text = str(body)
    assert len(text) > 10, body
    return text.lower()


def test_bad_api_keys_are_refused_with_401(gateway: Stack) -> None:
    base = gateway.gateway_url
    for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}, {"X-API-Key": KEY + "x"}):
        r = httpx.get(f"{base}/signals/BTCUSDT", headers=headers, timeout=10)
        assert r.status_code == 401, (headers, r.status_code, r.text)
        assert "key" in _error_message(r)
    # public paths stay public, so probes and docs work without a key
    assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
    assert httpx.get(f"{base}/openapi.json", timeout=10).status_code == 200


def test_oversized_bodies_get_413(gateway: Stack) -> None:
    big = {"operation": "getSignal", "args": {"symbol": "BTC"}, "pad": "x" * 200_000}
    for path in ("/invoke", "/gpt/signal", "/judge/validate"):
        r = httpx.post(f"{gateway.gateway_url}{path}", json=big, headers=HEADERS, timeout=10)
        assert r.status_code == 413, (path, r.status_code, r.text[:300])


@pytest.mark.parametrize(
    "symbol",
    [
        "../../etc/passwd", "x" * 300, "%00", "ZZZZZZUSDT", "-1", "<script>",
        "BTC$", "BTC USDT",
    ],
)  # fmt: skip
def test_invalid_symbols_get_a_clear_4xx(gateway: Stack, symbol: str) -> None:
    r = httpx.get(f"{gateway.gateway_url}/signals/{symbol}", headers=HEADERS, timeout=30)
    assert 400 <= r.status_code < 500, (symbol, r.status_code, r.text[:300])
    if r.headers.get("content-type", "").startswith("application/json"):
        assert "symbol" in _error_message(r) or r.status_code == 404


def test_unknown_operations_get_a_clear_4xx(gateway: Stack) -> None:
    base = gateway.gateway_url
    for body in (
        {"operation": "dropAllTables", "args": {}},
        {"operation": "", "args": {}},
        {"operation": "getSignal", "args": {"nope": 1}},
        {"args": {"symbol": "BTC"}},
        [1, 2, 3],
    ):
        r = httpx.post(f"{base}/invoke", json=body, headers=HEADERS, timeout=30)
        assert 400 <= r.status_code < 500, (body, r.status_code, r.text[:300])
        _error_message(r)
    r = httpx.post(
        f"{base}/invoke",
        content=b"{not json",
        headers={**HEADERS, "content-type": "application/json"},
        timeout=30,
    )
    assert 400 <= r.status_code < 500, r.text[:300]
    r = httpx.get(f"{base}/no/such/route", headers=HEADERS, timeout=10)
    assert r.status_code == 404
    r = httpx.delete(f"{base}/signals/BTCUSDT", headers=HEADERS, timeout=10)
    assert r.status_code == 405
