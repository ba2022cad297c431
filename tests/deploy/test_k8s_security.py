"""The rendered manifests hold the gateway's secure-by-default settings."""

from __future__ import annotations

from typing import Any

Doc = dict[str, Any]


def _container(docs: list[Doc], name: str) -> Doc:
    dep = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name)
    return dep["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def test_prod_gateway_cannot_start_without_its_key_secret(rendered: dict[str, list[Doc]]) -> None:
    refs = [e["secretRef"] for e in _container(rendered["prod"], "perpsignal-gateway")["envFrom"]
            if "secretRef" in e]  # fmt: skip
    assert refs == [{"name": "perpsignal-secrets", "optional": False}]


def test_ops_and_gateway_ports_listen_on_every_interface_only_in_kubernetes(
    rendered: dict[str, list[Doc]],
) -> None:
    # the settings default to loopback; pods set 0.0.0.0 explicitly (NetworkPolicies guard it)
    for overlay in ("dev", "prod"):
        for d in rendered[overlay]:
            if d["kind"] != "Deployment" or not d["metadata"]["name"].startswith("perpsignal-"):
                continue
            env = {
                e["name"]: e.get("value")
                for e in d["spec"]["template"]["spec"]["containers"][0]["env"]
            }
            host = "GATEWAY_HOST" if d["metadata"]["name"] == "perpsignal-gateway" else "OPS_HOST"
            assert env.get(host) == "0.0.0.0", (overlay, d["metadata"]["name"])


def test_prod_gateway_settings_start_with_the_secret_key(
    rendered: dict[str, list[Doc]], monkeypatch: Any
) -> None:
    from perpsignal_gateway.settings import GatewaySettings

    config = next(d for d in rendered["prod"] if d["kind"] == "ConfigMap")["data"]
    for k, v in config.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("GATEWAY_API_KEYS", "from-the-secret-" + "0" * 16)  # perpsignal-secrets
    assert GatewaySettings().environment == "prod"
