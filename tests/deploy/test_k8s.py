"""Offline checks of deploy/k8s: rendering, Kubernetes and CRD schemas, topics, scaling."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.deploy.conftest import REPO, SERVICES, load_script
from tests.recorded import recorded_data_dir

Doc = dict[str, Any]
K8S_VERSION = "1.30.0"
CORE_GROUPS = {"v1", "apps", "batch", "policy", "autoscaling", "networking.k8s.io"}
KEDA_WORKERS = {"scorer", "judge", "outcomes", "notifier"}


def _key(d: Doc) -> tuple[str, str, str]:
    return d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]


def by_kind(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_generated_base_manifests_are_fresh() -> None:
    assert load_script("gen_k8s").main(["--check"]) == 0


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_core_resources_validate_against_kubernetes_schemas(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    checked = 0
    for doc in rendered[overlay]:
        group = doc["apiVersion"].split("/")[0] if "/" in doc["apiVersion"] else "v1"
        if group not in CORE_GROUPS:
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        checked += 1
    assert checked >= 25


def test_kubernetes_validation_rejects_a_misspelt_field(
    rendered: dict[str, list[Doc]],
) -> None:
    import copy

    deployment = copy.deepcopy(by_kind(rendered["dev"], "Deployment")["perpsignal-scorer"])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def _crd_roundtrip(model: Any, doc: Doc) -> None:
    """Validate with the CRD's model and fail on any key the model silently dropped."""
    parsed = model.model_validate(doc)
    dumped = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")

    def walk(src: Any, out: Any, path: str) -> None:
        if isinstance(src, dict):
            assert isinstance(out, dict), path
            for k, v in src.items():
                assert k in out, f"{path}.{k} is not in the {doc['kind']} schema"
                walk(v, out[k], f"{path}.{k}")
        elif isinstance(src, list):
            for i, (a, b) in enumerate(zip(src, out, strict=True)):
                walk(a, b, f"{path}[{i}]")

    walk(doc, dumped, doc["kind"])


def _crds() -> Any:
    data = recorded_data_dir()
    if data is None or not (data / "crds").is_dir():
        pytest.skip("no CRD schemas: data/recorded/recorded-data.tar.xz is missing")
    return data / "crds"


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_object_passes_kubernetes_and_crd_validation(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    validate = load_script("validate_k8s")
    assert validate.problems(rendered[overlay], _crds()) == []
    kinds = {d["kind"] for d in rendered[overlay]}
    assert {"KafkaTopic", "ScaledObject", "ServiceMonitor", "PrometheusRule"} <= kinds


def test_crd_validation_rejects_strimzi_v1beta2_and_unknown_fields(
    rendered: dict[str, list[Doc]],
) -> None:
    import copy

    validate = load_script("validate_k8s")
    topic = copy.deepcopy(next(d for d in rendered["prod"] if d["kind"] == "KafkaTopic"))
    topic["apiVersion"] = "kafka.strimzi.io/v1beta2"  # Strimzi 1.0 serves only v1
    assert "no CRD schema" in validate.problems([topic], _crds())[0]
    topic["apiVersion"] = "kafka.strimzi.io/v1"
    topic["spec"]["replica"] = 3  # the field is `replicas`
    assert validate.problems([topic], _crds())


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_keda_objects_match_the_keda_crd_schema(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    from cloudcoil.models.keda import v1alpha1 as keda

    models = {
        "ScaledObject": keda.ScaledObject,
        "TriggerAuthentication": keda.TriggerAuthentication,
    }
    seen = set()
    for doc in rendered[overlay]:
        if doc["kind"] in models:
            _crd_roundtrip(models[doc["kind"]], doc)
            seen.add(doc["kind"])
    assert "ScaledObject" in seen


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_service_monitors_scrape_a_named_port_of_their_service(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    # Structural check: the Prometheus Operator CRD models import too slowly for CI (~20 s)
    services = list(by_kind(rendered[overlay], "Service").values())
    monitors = by_kind(rendered[overlay], "ServiceMonitor")
    assert len(monitors) == len(SERVICES)
    for name, mon in monitors.items():
        assert mon["apiVersion"] == "monitoring.coreos.com/v1"
        sel = mon["spec"]["selector"]["matchLabels"]
        (svc,) = [
            s for s in services if all(s["metadata"]["labels"].get(k) == v for k, v in sel.items())
        ]
        ports = {p["name"] for p in svc["spec"]["ports"]}
        for endpoint in mon["spec"]["endpoints"]:
            assert endpoint["port"] in ports, name
            assert endpoint["path"] == "/metrics"
    rule = by_kind(rendered[overlay], "PrometheusRule")["perpsignal"]
    alerts = [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert len(alerts) == len(set(alerts)) and "PerpSignalConsumerLagHigh" in alerts


def test_crd_check_rejects_an_unknown_scaledobject_field(
    rendered: dict[str, list[Doc]],
) -> None:
    import copy

    from cloudcoil.models.keda import v1alpha1 as keda

    doc = copy.deepcopy(by_kind(rendered["dev"], "ScaledObject")["perpsignal-scorer"])
    doc["spec"]["maxReplicas"] = 3  # the field is maxReplicaCount
    with pytest.raises(AssertionError):
        _crd_roundtrip(keda.ScaledObject, doc)


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_registry_topic_has_a_kafkatopic_with_its_partitions(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    from perpsignal_common.events.topics import all_topic_specs

    topics = by_kind(rendered[overlay], "KafkaTopic")
    specs = all_topic_specs()
    assert len(topics) == len(specs)
    assert any(s.name.endswith(".dlq") for s in specs)
    for spec in specs:
        topic = topics[spec.name]
        assert topic["apiVersion"] == "kafka.strimzi.io/v1"
        assert topic["spec"]["topicName"] == spec.name
        assert topic["spec"]["partitions"] == spec.partitions
        assert int(topic["spec"]["config"]["retention.ms"]) == spec.retention_ms
        # Strimzi's CRD: the topic operator only sees topics labelled with its cluster
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "perpsignal"
        replicas = topic["spec"]["replicas"]
        assert isinstance(replicas, int) and 1 <= replicas <= 32767
        assert int(topic["spec"]["config"]["min.insync.replicas"]) <= replicas
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", topic["metadata"]["name"])
        assert set(topic["spec"]) <= {"topicName", "partitions", "replicas", "config"}


def _service_group(service: str) -> str | None:
    """The consumer group id the service's code uses (None when not written yet)."""
    src = REPO / "services" / service / "src"
    for path in src.rglob("*.py"):
        text = path.read_text()
        for pattern in (r'group_id="([a-z-]+)"', r'^GROUP\s*=\s*"([a-z-]+)"'):
            match = re.search(pattern, text, re.MULTILINE)
            if match:
                return match.group(1)
    return None


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_lag_autoscaling_is_bounded_by_partitions_and_uses_the_real_groups(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    from perpsignal_common.events.topics import all_topic_specs

    partitions = {s.name: s.partitions for s in all_topic_specs()}
    scaled = by_kind(rendered[overlay], "ScaledObject")
    assert {n.removeprefix("perpsignal-") for n in scaled} == KEDA_WORKERS
    deployments = by_kind(rendered[overlay], "Deployment")
    for name, so in scaled.items():
        assert so["spec"]["scaleTargetRef"]["name"] in deployments
        trigger = so["spec"]["triggers"][0]
        assert trigger["type"] == "kafka"
        meta = trigger["metadata"]
        assert 1 <= so["spec"]["maxReplicaCount"] <= partitions[meta["topic"]]
        group = _service_group(name.removeprefix("perpsignal-"))
        if group is not None:
            assert meta["consumerGroup"] == group, name
    hpa = by_kind(rendered[overlay], "HorizontalPodAutoscaler")
    assert set(hpa) == {"perpsignal-gateway"}
    metric = hpa["perpsignal-gateway"]["spec"]["metrics"][0]
    assert metric["resource"]["name"] == "cpu"


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_deployments_probe_drain_and_are_covered(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    from perpsignal_common.settings import OpsSettings

    docs = rendered[overlay]
    config = by_kind(docs, "ConfigMap")["perpsignal-config"]["data"]
    drain = float(config.get("SHUTDOWN_TIMEOUT_S", OpsSettings().shutdown_timeout_s))
    deployments = by_kind(docs, "Deployment")
    assert set(deployments) == {f"perpsignal-{s}" for s in SERVICES}
    pdbs = list(by_kind(docs, "PodDisruptionBudget").values())
    monitors = list(by_kind(docs, "ServiceMonitor").values())
    services = list(by_kind(docs, "Service").values())
    for name, dep in deployments.items():
        pod = dep["spec"]["template"]["spec"]
        labels = dep["spec"]["template"]["metadata"]["labels"]
        container = pod["containers"][0]
        port_names = {p["name"] for p in container["ports"]}
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["port"] in port_names
        # SIGKILL comes this long after the preStop hook starts: the hook's pause, then the
        # drain and the close, each bounded by the deadline (perpsignal_common.runtime)
        exec_ = container.get("lifecycle", {}).get("preStop", {}).get("exec", {})
        pause = float(exec_["command"][1]) if exec_.get("command", [""])[0] == "sleep" else 0.0
        assert pod["terminationGracePeriodSeconds"] > pause + 2 * drain, name
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert container["securityContext"]["runAsNonRoot"] is True

        def selects(sel: dict[str, str], labels: dict[str, str] = labels) -> bool:
            return all(labels.get(k) == v for k, v in sel.items())

        assert any(selects(p["spec"]["selector"]["matchLabels"]) for p in pdbs), name
        svc = [s for s in services if selects(s["spec"]["selector"])]
        assert svc, name
        assert any(selects(m["spec"]["selector"]["matchLabels"]) for m in monitors)
        refs = [e["configMapRef"]["name"] for e in container["envFrom"] if "configMapRef" in e]
        assert refs == ["perpsignal-config"]
    (job,) = by_kind(docs, "Job").values()
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    ingress = by_kind(docs, "Ingress")["perpsignal-gateway"]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "perpsignal-gateway"


def test_prod_configuration_is_accepted_by_the_service_settings(
    rendered: dict[str, list[Doc]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # ENVIRONMENT=prod refuses PLAINTEXT Kafka: the prod ConfigMap must pass that check
    from perpsignal_common.settings import ServiceSettings

    for overlay in ("dev", "prod"):
        data = by_kind(rendered[overlay], "ConfigMap")["perpsignal-config"]["data"]
        for k, v in data.items():
            monkeypatch.setenv(k, v)
        settings = ServiceSettings()
        assert settings.environment == overlay
        assert settings.kafka.kafka_idempotent_producer is True
        assert settings.kafka.kafka_create_topics is False
        cafile = settings.kafka.kafka_ssl_cafile
        if settings.kafka.kafka_security_protocol.endswith("SSL"):
            # TLS to Strimzi needs its cluster CA: the file the settings name is mounted from
            # the secret Strimzi writes, in every pod that talks to Kafka
            assert cafile, overlay
            for name, dep in by_kind(rendered[overlay], "Deployment").items():
                pod = dep["spec"]["template"]["spec"]
                mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
                volumes = {v["name"]: v for v in pod["volumes"]}
                hit = [v for v, path in mounts.items() if cafile.startswith(path + "/")]
                assert hit, (name, cafile, mounts)
                secret = volumes[hit[0]]["secret"]["secretName"]
                assert secret == "perpsignal-cluster-ca-cert", (name, secret)


def test_network_policies_allow_only_the_traffic_the_design_needs(
    rendered: dict[str, list[Doc]],
) -> None:
    policies = by_kind(rendered["prod"], "NetworkPolicy")
    deny = policies["perpsignal-default-deny"]["spec"]
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny

    def selected(policy: Doc) -> set[str]:
        sel = policy["spec"]["podSelector"]
        if "matchExpressions" in sel:
            return set(sel["matchExpressions"][0]["values"])
        if "app.kubernetes.io/name" in sel.get("matchLabels", {}):
            return {sel["matchLabels"]["app.kubernetes.io/name"]}
        return {*SERVICES, "migrate"}

    # exactly the services whose code has an HTTP client (vendors, LLM, Telegram, klines)
    http_client = re.compile(
        r"^\s*(import|from) (httpx|aiohttp|websockets|openai|perpsignal_connectors)\b", re.M
    )
    calls_out = {
        s
        for s in SERVICES
        if any(
            http_client.search(p.read_text()) for p in (REPO / "services" / s / "src").rglob("*.py")
        )
    }
    assert {"ingestor", "judge", "outcomes", "notifier", "gateway"} <= calls_out
    assert selected(policies["perpsignal-allow-internet-https"]) == calls_out
    assert {"ingestor", "outcomes", "notifier", "gateway", "migrate"} == selected(
        policies["perpsignal-allow-postgres"]
    )
    # services never call each other: no policy admits traffic from another PerpSignal pod,
    # but the gateway's on the ops ports (its Health page; tests/deploy/test_k8s_reach.py)
    for name, policy in policies.items():
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                if name == "perpsignal-allow-ops-from-gateway":
                    assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "gateway"
                    assert rule["ports"] == [{"protocol": "TCP", "port": "ops"}]
                    continue
                assert "podSelector" not in peer or "namespaceSelector" in peer
    assert selected(policies["perpsignal-allow-gateway-ingress"]) == {"gateway"}


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_grafana_sidecar_gets_the_dashboard_with_gateway_and_ingestor_rows(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    import json

    (cm,) = [
        d
        for d in by_kind(rendered[overlay], "ConfigMap").values()
        if "labels" in d["metadata"] and d["metadata"]["labels"].get("grafana_dashboard") == "1"
    ]
    board = json.loads(cm["data"]["perpsignal.json"])
    compose = REPO / "deploy" / "compose" / "grafana" / "dashboards" / "perpsignal.json"
    assert board == json.loads(compose.read_text())
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert {"Pipeline", "Kafka health", "Gateway", "Ingestor", "Notifications"} <= set(rows)


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_autoscaled_deployments_leave_the_replica_count_to_their_autoscaler(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    docs = rendered[overlay]
    targets = {
        h["spec"]["scaleTargetRef"]["name"]
        for h in by_kind(docs, "HorizontalPodAutoscaler").values()
    }
    targets |= {s["spec"]["scaleTargetRef"]["name"] for s in by_kind(docs, "ScaledObject").values()}
    assert {"perpsignal-gateway", "perpsignal-scorer"} <= targets
    for name, dep in by_kind(docs, "Deployment").items():
        if name in targets:
            # kubectl apply would reset the autoscaler's count to this number on every deploy
            assert "replicas" not in dep["spec"], name
        else:
            assert dep["spec"]["replicas"] >= 1, name


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_each_release_gets_its_own_migrate_job(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    (job,) = by_kind(rendered[overlay], "Job").values()
    image = job["spec"]["template"]["spec"]["containers"][0]["image"]
    tag = image.rsplit(":", 1)[1]
    assert tag != "latest"
    # a Job's template is immutable: a new image under the old name could not be applied
    assert job["metadata"]["name"] == f"perpsignal-migrate-{tag}"
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    assert "generateName" not in job["metadata"]  # kubectl apply refuses generateName


def _allowed_disruptions(pdb: Doc, pods: int) -> int:
    """How many of `pods` healthy pods a drain may evict at once under `pdb` (integer form)."""
    spec = pdb["spec"]
    if "maxUnavailable" in spec:
        return max(0, int(spec["maxUnavailable"]))
    return max(0, pods - int(spec["minAvailable"]))


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_a_drain_evicts_one_pod_of_a_service_at_a_time_whatever_its_scale(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    docs = rendered[overlay]
    scale: dict[str, tuple[int, int]] = {}
    for hpa in by_kind(docs, "HorizontalPodAutoscaler").values():
        target = hpa["spec"]["scaleTargetRef"]["name"]
        scale[target] = (hpa["spec"].get("minReplicas", 1), hpa["spec"]["maxReplicas"])
    for so in by_kind(docs, "ScaledObject").values():
        target = so["spec"]["scaleTargetRef"]["name"]
        scale[target] = (so["spec"].get("minReplicaCount", 0), so["spec"]["maxReplicaCount"])
    pdbs = by_kind(docs, "PodDisruptionBudget")
    for name, dep in by_kind(docs, "Deployment").items():
        if name not in scale:
            scale[name] = (dep["spec"]["replicas"], dep["spec"]["replicas"])
        low, high = scale[name]
        pdb = pdbs[name]
        assert pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
        for pods in range(max(low, 1), high + 1):
            # never 0 (a node drain would hang on a lone pod), never several (capacity and,
            # for consumers, a rebalance storm while their partitions move)
            assert _allowed_disruptions(pdb, pods) == 1, (overlay, name, pods)


def _selects(selector: Any, labels: dict[str, str]) -> bool:
    """Evaluate a PromQL vector selector's matchers against one target's labels."""
    import promql_parser

    if selector.name and selector.name != labels.get("__name__", selector.name):
        return False
    for m in selector.matchers.matchers:
        value = labels.get(m.name, "")
        if m.op == promql_parser.MatchOp.Equal:
            ok = value == m.value
        elif m.op == promql_parser.MatchOp.NotEqual:
            ok = value != m.value
        elif m.op == promql_parser.MatchOp.Re:
            ok = re.fullmatch(m.value, value) is not None
        else:
            ok = re.fullmatch(m.value, value) is None
        if not ok:
            return False
    return True


def test_an_alert_fires_when_a_service_has_no_scrape_target_at_all(
    rendered: dict[str, list[Doc]],
) -> None:
    """`up == 0` needs a target; a service with no pod at all must still page someone."""
    import promql_parser
    import yaml

    prom = yaml.safe_load((REPO / "deploy/compose/prometheus/prometheus.yml").read_text())
    compose_targets = {
        c["labels"]["service"]: {"__name__": "up", "job": job["job_name"], **c["labels"]}
        for job in prom["scrape_configs"]
        if job["job_name"].startswith("perpsignal")
        for c in job["static_configs"]
    }
    docs = rendered["prod"]
    services = by_kind(docs, "Service")
    k8s_targets: dict[str, dict[str, str]] = {}
    for monitor in by_kind(docs, "ServiceMonitor").values():
        sel = monitor["spec"]["selector"]["matchLabels"]
        (svc,) = [n for n, s in services.items() if sel.items() <= s["metadata"]["labels"].items()]
        # what the Prometheus Operator puts on a target: job and service are the Service's name
        k8s_targets[sel["app.kubernetes.io/name"]] = {"__name__": "up", "job": svc, "service": svc}
    assert set(compose_targets) == set(k8s_targets) == set(SERVICES)

    (rule,) = by_kind(docs, "PrometheusRule").values()
    absent: dict[str, Any] = {}  # the absent() selector of each rule, by its service label
    for group in rule["spec"]["groups"]:
        for r in group["rules"]:
            expr = promql_parser.parse(r["expr"])
            if isinstance(expr, promql_parser.Call) and expr.func.name == "label_replace":
                inner = expr.args[0]
                if isinstance(inner, promql_parser.Call) and inner.func.name == "absent":
                    assert expr.args[1].val == "service"
                    absent[expr.args[2].val] = inner.args[0]
    for svc in SERVICES:
        assert svc in absent, svc  # each alert is labelled with its service: none merge
        for targets in (compose_targets, k8s_targets):
            # the selector sees this service's targets (so it fires only when they are gone)
            # and no other service's (whose targets would keep it silent)
            assert _selects(absent[svc], targets[svc]), (svc, targets[svc])
            others = [o for o in SERVICES if o != svc]
            assert not any(_selects(absent[svc], targets[o]) for o in others), svc


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_keda_reaches_the_same_kafka_listener_as_the_pods_from_its_own_namespace(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    # the KEDA operator dials from its namespace (`keda`): a bare Service name resolves there,
    # not in the app namespace, and every lag query would fail (no scaling at all)
    docs = rendered[overlay]
    config = by_kind(docs, "ConfigMap")["perpsignal-config"]["data"]
    pod_hosts = [b.rsplit(":", 1) for b in config["KAFKA_BOOTSTRAP_SERVERS"].split(",")]
    scaled = by_kind(docs, "ScaledObject")
    assert scaled
    for name, so in scaled.items():
        namespace = so["metadata"]["namespace"]
        servers = so["spec"]["triggers"][0]["metadata"]["bootstrapServers"].split(",")
        for server, (pod_host, pod_port) in zip(servers, pod_hosts, strict=True):
            host, port = server.rsplit(":", 1)
            assert port == pod_port, (name, server)
            assert host in {
                f"{pod_host}.{namespace}.svc",
                f"{pod_host}.{namespace}.svc.cluster.local",
            }, (name, server)


def _mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1.0, "Gi": 1024.0}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity.removesuffix(suffix)) * factor
    return float(quantity) / 2**20


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's /proc")
@pytest.mark.parametrize("service", SERVICES)
def test_memory_request_covers_what_the_service_holds_once_loaded(
    rendered: dict[str, list[Doc]], service: str
) -> None:
    """A pod using more than its request is the first evicted under node memory pressure."""
    import subprocess
    import sys

    # the peak resident memory of the service's entry module with every event model built, as
    # at start-up: a floor (no records, connections or caches yet). VmHWM is this process's
    # own peak: getrusage's ru_maxrss keeps the spawning process's across exec, so under a
    # pytest worker grown to ~600 MiB every service measured ~600 MiB.
    probe = (
        f"import importlib; importlib.import_module('perpsignal_{service}.main'); "
        "from perpsignal_common.events.registry import warm; warm(); "
        "print(next(line.split()[1] for line in open('/proc/self/status') "
        "if line.startswith('VmHWM:')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = int(out.stdout.split()[-1]) / 1024  # KiB on Linux
    for overlay in ("dev", "prod"):
        dep = by_kind(rendered[overlay], "Deployment")[f"perpsignal-{service}"]
        resources = dep["spec"]["template"]["spec"]["containers"][0]["resources"]
        # room above the floor for fetch buffers, the database pool and the service's state
        assert _mebibytes(resources["requests"]["memory"]) >= 1.25 * loaded, (overlay, loaded)
        assert _mebibytes(resources["limits"]["memory"]) >= 2 * loaded, (overlay, loaded)
