"""Who can reach which pod port in the rendered manifests, by the NetworkPolicies' own rules.

A small evaluator of the Kubernetes NetworkPolicy semantics the manifests use (pod and
namespace selectors, named and numbered ports): a pod selected by no policy of a direction is
open in it, otherwise a connection needs an egress rule of the client and an ingress rule of
the server that both admit it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.deploy.conftest import SERVICES

Doc = dict[str, Any]
APP_NS = "perpsignal"  # every PerpSignal object lives in one namespace (the overlay's)


@dataclass(frozen=True)
class Pod:
    """A pod as the policies see it: its namespace, labels and named container ports."""

    namespace: str
    labels: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)


INGRESS_CONTROLLER = Pod("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
PROMETHEUS = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"})


def _matches(selector: Doc, labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def _peer_matches(peer: Doc, pod: Pod) -> bool:
    if "ipBlock" in peer:
        return False  # cluster pods are never in the policies' public ranges
    if "namespaceSelector" in peer:
        ns_ok = _matches(peer["namespaceSelector"], {"kubernetes.io/metadata.name": pod.namespace})
    else:
        ns_ok = pod.namespace == APP_NS
    return ns_ok and _matches(peer.get("podSelector", {}), pod.labels)


def _port_matches(ports: list[Doc] | None, number: int, name: str) -> bool:
    if not ports:
        return True
    for p in ports:
        if p.get("protocol", "TCP") != "TCP":
            continue
        port = p.get("port")
        if port is None or port in (number, name):
            return True
        if isinstance(port, int) and port <= number <= p.get("endPort", port):
            return True
    return False


def _admits(policies: list[Doc], direction: str, subject: Pod, peer: Pod, port: str) -> bool:
    """Return True when `subject`'s policies of `direction` admit `peer` on the server port."""
    if subject.namespace != APP_NS:
        return True  # another namespace's policies are not ours to check
    server = peer if direction == "egress" else subject
    number = server.ports[port]
    selecting = [
        p
        for p in policies
        if _matches(p["spec"]["podSelector"], subject.labels)
        and direction.capitalize() in p["spec"].get("policyTypes", [])
    ]
    if not selecting:
        return True
    key = "to" if direction == "egress" else "from"
    return any(
        (not rule.get(key) or any(_peer_matches(x, peer) for x in rule[key]))
        and _port_matches(rule.get("ports"), number, port)
        for p in selecting
        for rule in p["spec"].get(direction) or []
    )


def reachable(docs: list[Doc], client: Pod, server: Pod, port: str) -> bool:
    """Return True when `client` may open a TCP connection to `server`'s named `port`."""
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    return _admits(policies, "egress", client, server, port) and _admits(
        policies, "ingress", server, client, port
    )


def _kind(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod_of(docs: list[Doc], service: str) -> Pod:
    """Return the pod of a service's Deployment, with its container's named ports."""
    template = _kind(docs, "Deployment")[f"perpsignal-{service}"]["spec"]["template"]
    (container,) = template["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    return Pod(APP_NS, dict(template["metadata"]["labels"]), ports)


def _env(docs: list[Doc], service: str) -> dict[str, str]:
    template = _kind(docs, "Deployment")[f"perpsignal-{service}"]["spec"]["template"]
    return {e["name"]: e.get("value", "") for e in template["spec"]["containers"][0]["env"]}


def _pod_port_behind(docs: list[Doc], service_name: str, port: int | str) -> tuple[Pod, str]:
    """Return the pod and the container port name a Service port (number or name) leads to."""
    svc = _kind(docs, "Service")[service_name]
    (sp,) = [p for p in svc["spec"]["ports"] if port in (p["port"], p.get("name"))]
    deployments = [
        d
        for d in _kind(docs, "Deployment").values()
        if _matches(
            {"matchLabels": svc["spec"]["selector"]}, d["spec"]["template"]["metadata"]["labels"]
        )
    ]
    (dep,) = deployments
    pod = pod_of(docs, dep["metadata"]["name"].removeprefix("perpsignal-"))
    target = sp["targetPort"]
    name = (
        target if isinstance(target, str) else next(n for n, v in pod.ports.items() if v == target)
    )
    return pod, name


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_gateway_health_page_reaches_every_worker_in_kubernetes(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    from perpsignal_gateway.settings import parse_service_urls

    # without GATEWAY_SERVICE_URLS the Health page says "no services configured", and with
    # it but no policy admitting the gateway every probe times out and shows them all down
    docs = rendered[overlay]
    urls = dict(parse_service_urls(_env(docs, "gateway").get("GATEWAY_SERVICE_URLS", "")))
    assert set(urls) == set(SERVICES) - {"gateway"}
    gateway = pod_of(docs, "gateway")
    for name, url in urls.items():
        parts = urlsplit(url)
        assert parts.hostname and parts.port, url
        pod, port = _pod_port_behind(docs, parts.hostname, parts.port)
        assert pod.labels["app.kubernetes.io/name"] == name, url
        # the port whose server answers /readyz and /metrics: the one the probes use
        assert port == "ops", url
        assert reachable(docs, gateway, pod, port), (overlay, name)


def test_the_evaluator_refuses_what_no_policy_admits(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["prod"]
    scorer, judge = pod_of(docs, "scorer"), pod_of(docs, "judge")
    # workers never call each other, and nothing outside reaches a worker but Prometheus
    assert not reachable(docs, scorer, judge, "ops")
    assert not reachable(docs, INGRESS_CONTROLLER, judge, "ops")
    assert reachable(docs, PROMETHEUS, judge, "ops")


def test_no_perpsignal_pod_reaches_another_but_the_gateway_reaching_ops_ports(
    rendered: dict[str, list[Doc]],
) -> None:
    docs = rendered["prod"]
    pods = {s: pod_of(docs, s) for s in SERVICES}
    for client_name, client in pods.items():
        for server_name, server in pods.items():
            if client_name == server_name:
                continue
            for port in server.ports:
                allowed = client_name == "gateway" and port == "ops"
                assert reachable(docs, client, server, port) == allowed, (
                    client_name,
                    server_name,
                    port,
                )


def _ingress_backends(docs: list[Doc]) -> list[tuple[str, int | str]]:
    out: list[tuple[str, int | str]] = []
    for ing in _kind(docs, "Ingress").values():
        for rule in ing["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                svc = path["backend"]["service"]
                out.append((svc["name"], svc["port"].get("name") or svc["port"]["number"]))
    return out


def _metrics_port(docs: list[Doc], service: str) -> tuple[Pod, str]:
    """Return the pod and container port Prometheus scrapes for `service` (its ServiceMonitor)."""
    monitor = _kind(docs, "ServiceMonitor")[f"perpsignal-{service}"]
    (endpoint,) = monitor["spec"]["endpoints"]
    return _pod_port_behind(docs, f"perpsignal-{service}", endpoint["port"])


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_gateway_metrics_are_scraped_but_never_reached_through_the_ingress(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    # the internet reaches only what the Ingress routes to: the gateway's public port must
    # not be the metrics port, and the controller must not reach the metrics port at all
    docs = rendered[overlay]
    gateway, metrics = _metrics_port(docs, "gateway")
    env = _env(docs, "gateway")
    # the port Prometheus scrapes is the one the gateway serves its ops server on
    assert int(env["GATEWAY_OPS_PORT"]) == gateway.ports[metrics]
    assert env["OPS_HOST"] == "0.0.0.0"
    annotations = _kind(docs, "Deployment")["perpsignal-gateway"]["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert annotations["prometheus.io/port"] == env["GATEWAY_OPS_PORT"]
    backends = _ingress_backends(docs)
    assert backends
    for service_name, port in backends:
        pod, public = _pod_port_behind(docs, service_name, port)
        assert pod == gateway and public != metrics, (service_name, port)
        assert reachable(docs, INGRESS_CONTROLLER, gateway, public)
    assert not reachable(docs, INGRESS_CONTROLLER, gateway, metrics)
    assert reachable(docs, PROMETHEUS, gateway, metrics)
    # and Prometheus has no business on the public port any more
    assert not reachable(docs, PROMETHEUS, gateway, "http")
