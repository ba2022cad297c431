"""GET /health/services: other services' readiness and metrics, probed over HTTP by the gateway."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from perpsignal_gateway.settings import GatewaySettings

METRICS_TEXT = """\
# HELP perpsignal_consumer_lag_records High watermark minus position, per partition
# TYPE perpsignal_consumer_lag_records gauge
perpsignal_consumer_lag_records{partition="0",service="ingestor",topic="cmd"} 7.0
perpsignal_consumer_lag_records{partition="1",service="ingestor",topic="cmd"} 5.0
# HELP perpsignal_dlq_messages_total Messages sent to a dead-letter topic
# TYPE perpsignal_dlq_messages_total counter
perpsignal_dlq_messages_total{error_type="PermanentError",service="ingestor",topic="cmd"} 3.0
perpsignal_dlq_messages_total{error_type="TransientError",service="ingestor",topic="cmd"} 1.0
perpsignal_dlq_messages_created{error_type="PermanentError",service="ingestor",topic="cmd"} 1.7e9
# HELP perpsignal_consumer_messages_total Messages consumed, by outcome
# TYPE perpsignal_consumer_messages_total counter
perpsignal_consumer_messages_total{outcome="ok",service="ingestor",topic="cmd"} 40.0
perpsignal_consumer_messages_total{outcome="ok",service="ingestor",topic="other"} 2.0
perpsignal_consumer_messages_total{outcome="dead_lettered",service="ingestor",topic="cmd"} 4.0
# HELP perpsignal_consumer_errors_total Handler failures, by error type
# TYPE perpsignal_consumer_errors_total counter
perpsignal_consumer_errors_total{error_type="ValueError",service="ingestor",topic="cmd"} 6.0
# HELP perpsignal_vendor_circuit_state Circuit state per vendor: 0 closed, 1 half-open, 2 open
# TYPE perpsignal_vendor_circuit_state gauge
perpsignal_vendor_circuit_state{vendor="binance"} 0.0
perpsignal_vendor_circuit_state{vendor="coinglass"} 2.0
perpsignal_vendor_circuit_state{vendor="okx"} 1.0
"""


class OpsServer:
    """A tiny service ops port: /readyz with a fixed status, /metrics with fixed text."""

    def __init__(self, *, ready: bool, metrics: str) -> None:
        self.hits: dict[str, int] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits[self.path] = outer.hits.get(self.path, 0) + 1
                if self.path == "/readyz":
                    status = 200 if ready else 503
                    body = b'{"status":"ready"}' if ready else b'{"status":"not ready"}'
                    ctype = "application/json"
                elif self.path == "/metrics":
                    status, body, ctype = 200, metrics.encode(), "text/plain; version=0.0.4"
                else:
                    status, body, ctype = 404, b"{}", "application/json"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def ingestor() -> Iterator[OpsServer]:
    server = OpsServer(ready=True, metrics=METRICS_TEXT)
    yield server
    server.close()


@pytest.fixture
def scorer() -> Iterator[OpsServer]:
    server = OpsServer(ready=False, metrics="")  # starting up: not ready, nothing counted yet
    yield server
    server.close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there any more: connection refused


def by_name(body: dict) -> dict[str, dict]:
    return {s["name"]: s for s in body["services"]}


async def test_reports_readiness_lag_dlq_counts_and_circuits(make_client, ingestor, scorer):
    urls = f"ingestor={ingestor.url},scorer={scorer.url}/"
    _, client = await make_client(gateway_service_urls=urls)
    r = await client.get("/health/services")
    assert r.status_code == 200
    body = r.json()
    assert [s["name"] for s in body["services"]] == ["ingestor", "scorer"]
    assert "checkedAt" in body
    ing, sco = by_name(body)["ingestor"], by_name(body)["scorer"]
    assert ing["ready"] is True
    assert ing["consumerLag"] == 12
    assert ing["dlqMessages"] == 4
    assert ing["handled"] == 42  # outcome="ok" only
    assert ing["errors"] == 6
    assert ing["circuits"] == [
        {"vendor": "binance", "state": "closed"},
        {"vendor": "coinglass", "state": "open"},
        {"vendor": "okx", "state": "half-open"},
    ]
    assert ing["problem"] is None
    # a service that is up but not ready yet: false (not unreachable), zero counts, no circuits
    assert sco["ready"] is False
    assert (sco["consumerLag"], sco["dlqMessages"], sco["handled"], sco["errors"]) == (0, 0, 0, 0)
    assert sco["circuits"] == []


async def test_an_unreachable_service_is_reported_not_a_500(make_client, ingestor):
    urls = f"ingestor={ingestor.url},judge={closed_port_url()}"
    _, client = await make_client(gateway_service_urls=urls, gateway_health_timeout_s=1.0)
    r = await client.get("/health/services")
    assert r.status_code == 200
    judge = by_name(r.json())["judge"]
    assert judge["ready"] == "unreachable"
    assert judge["consumerLag"] is None and judge["dlqMessages"] is None
    assert "readyz" in judge["problem"]
    assert by_name(r.json())["ingestor"]["consumerLag"] == 12  # the others are unaffected


async def test_a_service_that_never_answers_costs_at_most_the_timeout(make_client, ingestor):
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        _, client = await make_client(
            gateway_service_urls=f"notifier={url},ingestor={ingestor.url}",
            gateway_health_timeout_s=0.5,
        )
        started = time.monotonic()
        r = await client.get("/health/services")
        elapsed = time.monotonic() - started
    assert r.status_code == 200
    notifier = by_name(r.json())["notifier"]
    assert notifier["ready"] == "unreachable"
    assert "timed out" in notifier["problem"]
    assert by_name(r.json())["ingestor"]["ready"] is True
    assert elapsed < 3.0  # probes run concurrently under one deadline each


async def test_polls_within_the_cache_window_do_not_fan_out_again(make_client, ingestor):
    _, client = await make_client(
        gateway_service_urls=f"ingestor={ingestor.url}", gateway_health_cache_s=60
    )
    answers = await asyncio.gather(*(client.get("/health/services") for _ in range(5)))
    answers.append(await client.get("/health/services"))
    assert all(a.status_code == 200 for a in answers)
    assert len({a.json()["checkedAt"] for a in answers}) == 1
    assert ingestor.hits == {"/readyz": 1, "/metrics": 1}


async def test_a_stale_answer_is_refreshed(make_client, ingestor):
    _, client = await make_client(
        gateway_service_urls=f"ingestor={ingestor.url}", gateway_health_cache_s=0
    )
    first = (await client.get("/health/services")).json()
    second = (await client.get("/health/services")).json()
    assert first["checkedAt"] != second["checkedAt"]
    assert ingestor.hits == {"/readyz": 2, "/metrics": 2}


async def test_no_services_configured_gives_an_empty_list(make_client):
    _, client = await make_client()
    r = await client.get("/health/services")
    assert r.status_code == 200
    assert r.json()["services"] == []


async def test_needs_an_api_key_like_other_data_routes(make_client, ingestor):
    _, client = await make_client(
        gateway_api_keys="key-alpha", gateway_service_urls=f"ingestor={ingestor.url}"
    )
    refused = await client.get("/health/services")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    assert ingestor.hits == {}  # refused before any probe
    ok = await client.get("/health/services", headers={"X-API-Key": "key-alpha"})
    assert ok.status_code == 200


async def test_documented_in_the_openapi_with_camel_case_fields(make_client):
    _, client = await make_client()
    doc = (await client.get("/openapi.json")).json()
    op = doc["paths"]["/health/services"]["get"]
    assert op["operationId"] == "servicesHealth"
    assert "401" in op["responses"]
    schemas = doc["components"]["schemas"]
    fields = schemas["ServiceHealth"]["properties"]
    assert {"name", "ready", "consumerLag", "dlqMessages", "handled", "errors", "circuits"} <= set(
        fields
    )
    assert "checkedAt" in schemas["ServicesHealth"]["properties"]


@pytest.mark.parametrize(
    "value",
    [
        "ingestor",
        "ingestor=",
        "=http://127.0.0.1:9101",
        "ingestor=ftp://x",
        "a=http://h:1,a=http://h:2",
    ],
)
def test_a_malformed_service_list_fails_at_start_up(value):
    with pytest.raises(ValueError, match="GATEWAY_SERVICE_URLS"):
        GatewaySettings(gateway_service_urls=value)


def test_service_list_is_parsed_in_order():
    cfg = GatewaySettings(
        gateway_service_urls=" ingestor=http://127.0.0.1:9101/ , judge=http://j:9103"
    )
    assert cfg.service_urls() == [("ingestor", "http://127.0.0.1:9101"), ("judge", "http://j:9103")]


def test_perpsignal_up_lists_every_started_service_for_the_gateway():
    from perpsignal_cli.stack import OPS_PORTS, service_urls

    value = service_urls(dict(OPS_PORTS))
    cfg = GatewaySettings(gateway_service_urls=value)
    assert cfg.service_urls() == [
        (name, f"http://127.0.0.1:{port}") for name, port in OPS_PORTS.items()
    ]


@pytest.mark.parametrize("value", ["+Inf", "NaN"])
async def test_a_service_exposing_a_non_finite_figure_is_reported_not_a_500(
    make_client, ingestor, value
):
    """Prometheus text allows +Inf and NaN samples: one of them failed the whole answer."""
    odd = OpsServer(ready=True, metrics=METRICS_TEXT.replace("} 5.0\n", f"}} {value}\n", 1))
    try:
        urls = f"ingestor={ingestor.url},scorer={odd.url}"
        _, client = await make_client(gateway_service_urls=urls)
        r = await client.get("/health/services")
    finally:
        odd.close()
    assert r.status_code == 200, r.text
    scorer = by_name(r.json())["scorer"]
    assert scorer["ready"] is True and scorer["consumerLag"] is None
    assert "NaN or infinite" in scorer["problem"]
    assert by_name(r.json())["ingestor"]["consumerLag"] == 12  # the others are unaffected
