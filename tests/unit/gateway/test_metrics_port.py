"""With GATEWAY_OPS_PORT the gateway's metrics leave the public port for an ops port."""

from __future__ import annotations

import socket

import httpx
import pytest

from perpsignal_gateway.settings import GatewaySettings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_ops_port_serves_the_metrics_the_public_port_no_longer_does(make_client) -> None:
    port = _free_port()
    _, client = await make_client(gateway_ops_port=port)
    assert (await client.get("/ping")).status_code == 200
    # what an Ingress in front of the gateway forwards: no counters, route names, error rates
    assert (await client.get("/metrics")).status_code == 404
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as ops:
        metrics = await ops.get("/metrics")
        ready = await ops.get("/readyz")
    assert metrics.status_code == 200
    assert 'gateway_http_requests_total{route="/ping",status="200"}' in metrics.text
    assert ready.status_code == 200


async def test_without_an_ops_port_metrics_stay_on_the_gateway_port(make_client) -> None:
    _, client = await make_client()  # `perpsignal up`: the dashboard's Health page reads them
    assert (await client.get("/metrics")).status_code == 200


def test_ops_port_cannot_be_the_public_port() -> None:
    with pytest.raises(ValueError, match="GATEWAY_OPS_PORT"):
        GatewaySettings(gateway_ops_port=8000, gateway_port=8000)


KEY = "k" * 32


async def test_with_an_ops_port_metrics_is_no_public_path_of_the_gateway_port(
    make_client,
) -> None:
    """GATEWAY_PUBLIC_PATHS listed /metrics by default also where the gateway port no longer
    serves it (compose, Kubernetes): the documented default said so, the key check skipped it
    there. Now the default is what is served without a key, and /metrics is public only while
    the gateway port serves it."""
    port = _free_port()
    _, client = await make_client(gateway_ops_port=port, gateway_api_keys=KEY)
    assert (await client.get("/metrics")).status_code == 401  # as any path not served keyless
    assert (await client.get("/healthz")).status_code == 200
    _, local = await make_client(gateway_api_keys=KEY)  # no ops port: scraped here, keyless
    assert (await local.get("/metrics")).status_code == 200


def test_the_public_paths_default_is_what_is_served_without_a_key() -> None:
    assert "/metrics" not in GatewaySettings.model_fields["gateway_public_paths"].default
    assert "/metrics" not in GatewaySettings(gateway_ops_port=9106).public_paths()
    assert "/metrics" in GatewaySettings().public_paths()
    # an explicit list is taken as written while the gateway port serves /metrics
    assert GatewaySettings(gateway_public_paths="/healthz").public_paths() == {"/healthz"}
    listed = GatewaySettings(gateway_public_paths="/healthz,/metrics")
    assert listed.public_paths() == {"/healthz", "/metrics"}
    served_elsewhere = GatewaySettings(gateway_public_paths="/healthz,/metrics", gateway_ops_port=9)
    assert served_elsewhere.public_paths() == {"/healthz"}
