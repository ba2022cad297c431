"""The ops server's endpoints over a real socket: health, readiness and Prometheus metrics."""

from __future__ import annotations

import httpx

from perpsignal_common.observability.metrics import PIPELINE_LATENCY
from perpsignal_common.observability.ops_server import OpsServer


async def test_metrics_speak_prometheus_and_openmetrics_and_health_answers() -> None:
    ready = False
    server = OpsServer("127.0.0.1", 0, lambda: ready)
    await server.start()
    try:
        PIPELINE_LATENCY.labels("notified").observe(1.5)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            text = await client.get("/metrics")
            assert text.status_code == 200
            assert text.headers["content-type"].startswith("text/plain; version=0.0.4")
            assert 'perpsignal_pipeline_latency_seconds_bucket{le="2.0",stage="notified"}' in (
                text.text
            )
            # Prometheus asks for OpenMetrics when it can; prometheus-client's app negotiates
            om = await client.get(
                "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
            )
            assert om.headers["content-type"].startswith("application/openmetrics-text")
            assert om.text.rstrip().endswith("# EOF")
            # and compresses a large scrape when asked
            raw = await client.get("/metrics", headers={"Accept-Encoding": "gzip"})
            assert raw.headers.get("content-encoding") == "gzip"
            filtered = await client.get(
                "/metrics", params={"name[]": "perpsignal_pipeline_latency_seconds_bucket"}
            )
            assert "perpsignal_consumer_messages_total" not in filtered.text
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).status_code == 503
            ready = True
            assert (await client.get("/readyz")).status_code == 200
            assert (await client.get("/nope")).status_code == 404
    finally:
        await server.stop()
