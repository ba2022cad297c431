"""The rendered manifests hold the gateway's secure-by-default settings."""

from __future__ import annotations

import re
from typing import Any

from tests.deploy.conftest import REPO

Doc = dict[str, Any]


def _container(docs: list[Doc], name: str) -> Doc:
    dep = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name)
    return dep["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def test_prod_gateway_cannot_start_without_its_key_secret(rendered: dict[str, list[Doc]]) -> None:
    env = {e["name"]: e for e in _container(rendered["prod"], "perpsignal-gateway")["env"]}
    ref = env["GATEWAY_API_KEYS"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "perpsignal-secrets", "key": "GATEWAY_API_KEYS", "optional": False}
    # the vendor keys stay optional: a source without its key switches off
    assert env["COINGLASS_API_KEY"]["valueFrom"]["secretKeyRef"]["optional"] is True


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


def _code_kafka_use(service: str) -> tuple[set[str], set[str], set[str]]:
    """Return what the service's code does on Kafka, read from its source (not the table in
    gen_k8s.py): the topics its `ConsumerOptions` name (handled, with dead letters), the
    topics it reads otherwise and the consumer groups it joins."""
    import ast

    from perpsignal_common.events.topics import Topic

    def topics_in(node: ast.AST, consts: dict[str, ast.AST]) -> set[str]:
        out: set[str] = set()
        for n in ast.walk(node):
            if isinstance(n, ast.Attribute) and getattr(n.value, "id", None) == "Topic":
                out.add(Topic[n.attr].value)
            elif isinstance(n, ast.Name) and n.id in consts:
                out |= topics_in(consts[n.id], consts)
        return out

    handled: set[str] = set()
    read: set[str] = set()
    groups: set[str] = set()
    for path in (REPO / "services" / service / "src").rglob("*.py"):
        tree = ast.parse(path.read_text())
        consts: dict[str, ast.AST] = {}
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name):
                consts[stmt.targets[0].id] = stmt.value
            elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                if stmt.value is None:
                    continue
                consts[stmt.target.id] = stmt.value
        for call in ast.walk(tree):
            if not isinstance(call, ast.Call):
                continue
            func = call.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            kwargs = {k.arg: k.value for k in call.keywords}
            if name == "ConsumerOptions":
                handled |= topics_in(kwargs["topics"], consts)
                group: ast.AST | None = kwargs.get("group_id")
                if isinstance(group, ast.Name):
                    group = consts.get(group.id)
                if isinstance(group, ast.Constant) and isinstance(group.value, str):
                    groups.add(group.value)
            elif name in {"recent_event_ids", "Follower", "partitions_for"}:
                read |= topics_in(call, consts)
            elif (
                name == "group"
                and isinstance(func, ast.Attribute)
                and ast.unparse(func.value).endswith("kafka")
                and call.args
                and isinstance(call.args[0], ast.Constant)
            ):
                groups.add(str(call.args[0].value))  # settings.kafka.group("...") of a raw consumer
        if any(isinstance(n, ast.Name) and n.id == "AIOKafkaConsumer" for n in ast.walk(tree)):
            # a raw consumer reads the topics this file names through `kafka.topic(...)`
            read |= {
                t
                for n in ast.walk(tree)
                if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "topic"
                for t in topics_in(n, consts)
            }
        if "READ_TOPICS" in consts:
            read |= topics_in(consts["READ_TOPICS"], consts)
    return handled, read, groups


def _acls(user: Doc) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for acl in user["spec"]["authorization"]["acls"]:
        res = acl["resource"]
        assert acl.get("type", "allow") == "allow"
        assert res.get("patternType", "literal") == "literal", res  # no prefix grants
        assert res["type"] in {"topic", "group"}, res  # no cluster or transactional grants
        assert "*" not in res["name"], res
        out.setdefault((res["type"], res["name"]), set()).update(acl["operations"])
    return out


def test_each_prod_service_uses_its_own_kafka_user_limited_to_its_topics_and_groups(
    rendered: dict[str, list[Doc]],
) -> None:
    from perpsignal_common.events.registry import EVENT_CLASSES
    from perpsignal_common.events.topics import all_topic_specs, dlq_topic
    from tests.deploy.conftest import SERVICES

    docs = rendered["prod"]
    registry = {s.name for s in all_topic_specs()}
    users = {d["metadata"]["name"]: d for d in docs if d["kind"] == "KafkaUser"}
    for svc in SERVICES:
        name = f"perpsignal-{svc}"
        # one login per service: a leaked pod credential reaches only that service's topics
        env = {e["name"]: e for e in _container(docs, name)["env"]}
        assert env["KAFKA_SASL_USERNAME"]["value"] == name, svc
        ref = env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": name, "key": "password"}, svc  # the Secret Strimzi writes
        user = users[name]
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == "perpsignal"
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        acls = _acls(user)
        handled, read, groups = _code_kafka_use(svc)
        assert handled or read, svc
        for topic in handled | read:
            assert "Read" in acls.get(("topic", topic), set()), (svc, topic)
        for topic in handled:
            if dlq_topic(topic) in registry:
                assert "Write" in acls[("topic", dlq_topic(topic))], (svc, topic)
        assert {n for (kind, n) in acls if kind == "group"} == groups, svc
        # nothing beyond: reads only what the code reads, writes only the topics of events
        # the code names (or the dead letters of what it handles), never create/delete/alter
        produced = {c.topic for c in EVENT_CLASSES if c.__name__ in _source(svc)}
        for (kind, res), ops in acls.items():
            assert ops <= {"Read", "Write", "Describe"}, (svc, res, ops)
            if kind == "topic":
                assert res in registry, (svc, res)
                if "Read" in ops:
                    assert res in handled | read, (svc, res)
                if "Write" in ops:
                    assert res in produced or res in {dlq_topic(t) for t in handled}, (svc, res)
    assert "KAFKA_SASL_USERNAME" not in by_kind_config(docs)  # no shared login left behind


def _source(service: str) -> str:
    return "".join(p.read_text() for p in (REPO / "services" / service / "src").rglob("*.py"))


def by_kind_config(docs: list[Doc]) -> dict[str, str]:
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"]
                  == "perpsignal-config")  # fmt: skip
    return config["data"]  # type: ignore[no-any-return]


def test_keda_reads_consumer_lag_as_a_describe_only_kafka_user(
    rendered: dict[str, list[Doc]],
) -> None:
    docs = rendered["prod"]
    (auth,) = [d for d in docs if d["kind"] == "TriggerAuthentication"]
    refs = {r["parameter"]: r for r in auth["spec"]["secretTargetRef"]}
    keda = next(d for d in docs if d["kind"] == "KafkaUser"
                and d["metadata"]["name"] == refs["password"]["name"])  # fmt: skip
    acls = _acls(keda)
    triggers = [d["spec"]["triggers"][0]["metadata"] for d in docs if d["kind"] == "ScaledObject"]
    wanted = {("topic", t["topic"]) for t in triggers} | {
        ("group", t["consumerGroup"]) for t in triggers
    }
    assert set(acls) == wanted
    assert all(ops == {"Describe"} for ops in acls.values())


def test_database_ca_path_the_readme_gives_is_mounted_wherever_the_database_is_read(
    rendered: dict[str, list[Doc]], monkeypatch: Any
) -> None:
    import re

    from perpsignal_common.settings import DatabaseSettings

    readme = (REPO / "deploy" / "README.md").read_text()
    (cafile,) = set(re.findall(r"sslrootcert=(/[^`&\s]+)", readme))
    url = f"postgresql://u:p@db.example:5432/perpsignal?sslmode=verify-full&sslrootcert={cafile}"
    monkeypatch.setenv("ENVIRONMENT", "prod")
    monkeypatch.setenv("DATABASE_URL", url)
    assert DatabaseSettings().database_url  # prod accepts the documented URL
    pods = [d for d in rendered["prod"] if d["kind"] in {"Deployment", "Job"}]
    readers = 0
    for d in pods:
        pod = d["spec"]["template"]["spec"]
        container = pod["containers"][0]
        if not any(e["name"] == "DATABASE_URL" for e in container.get("env", [])):
            continue
        readers += 1
        mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        hit = [n for n, path in mounts.items() if cafile.startswith(path.rstrip("/") + "/")]
        assert hit, (d["metadata"]["name"], cafile)
        secret = volumes[hit[0]]["secret"]
        assert secret == {"secretName": "perpsignal-db-ca", "optional": True}
    assert readers == 5  # ingestor, outcomes, notifier, gateway and the migrate Job


def test_gateway_limits_each_client_behind_the_ingress_not_the_ingress_pod(
    rendered: dict[str, list[Doc]], monkeypatch: Any
) -> None:
    """Per-client limits (auth-failure lockout) must see the client the ingress forwards."""
    import ipaddress

    from perpsignal_gateway.security import client_address
    from perpsignal_gateway.settings import GatewaySettings

    policies = {d["metadata"]["name"]: d for d in rendered["prod"] if d["kind"] == "NetworkPolicy"}
    # the premise: only the ingress controller (and Prometheus, which forwards nothing)
    # reaches the gateway's port, so only it can write the X-Forwarded-For believed
    peers = [
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for p in policies.values()
        if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
        == "gateway"
        for rule in p["spec"].get("ingress", [])
        for peer in rule["from"]
    ]
    assert peers == ["ingress-nginx"]
    for overlay in ("dev", "prod"):
        config = next(d for d in rendered[overlay] if d["kind"] == "ConfigMap"
                      and d["metadata"]["name"] == "perpsignal-config")["data"]  # fmt: skip
        for k, v in config.items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("GATEWAY_API_KEYS", "from-the-secret-" + "0" * 16)
        proxies = GatewaySettings().trusted_proxies()
        # ingress controller pods on common pod networks: kind/minikube (flannel), k3s,
        # EKS/AKS VPC addresses, GKE, carrier-grade NAT ranges, IPv6 ULA
        for pod in ("10.244.1.7", "10.42.0.12", "172.20.3.4", "192.168.7.9", "100.96.2.3",
                    "fd00:10:244::7"):  # fmt: skip
            scope = {"client": (pod, 41234), "headers": [(b"x-forwarded-for", b"203.0.113.9")]}
            assert client_address(scope, proxies) == "203.0.113.9", (overlay, pod)
        # a client on the internet is never a trusted hop: its own header is ignored
        direct = {"client": ("198.51.100.4", 1), "headers": [(b"x-forwarded-for", b"1.2.3.4")]}
        assert client_address(direct, proxies) == "198.51.100.4"
        assert not any(ipaddress.ip_address("198.51.100.4") in n for n in proxies)


def _documented_secrets() -> dict[str, set[str]]:
    """The README configuration table's secret settings, by the service that reads each."""
    out: dict[str, set[str]] = {}
    for line in (REPO / "README.md").read_text().splitlines():
        row = re.match(r"\| `([A-Z0-9_]+)` \|[^|]*\| ([a-z, ]+) \|(.*)\|$", line)
        if row and "(secret)" in row.group(3):
            for svc in row.group(2).split(","):
                out.setdefault(svc.strip(), set()).add(row.group(1))
    return out


def test_each_pod_sees_only_the_keys_of_perpsignal_secrets_its_service_reads(
    rendered: dict[str, list[Doc]],
) -> None:
    from perpsignal_connectors.keys import key_names_read_by
    from tests.deploy.conftest import SERVICES

    documented = _documented_secrets()
    assert documented["judge"] == {"OPENAI_API_KEY"}  # the table was read
    own = {"DATABASE_URL", "KAFKA_SASL_PASSWORD"}  # from perpsignal-db and the KafkaUser
    # these two also read vendor keys by the key registry's names (documented, deprecated):
    # the ones the registry names them readers of (test_compose checks that against settings)
    for svc in ("ingestor", "gateway"):
        documented[svc] = documented.get(svc, set()) | key_names_read_by(svc)
    for overlay in ("dev", "prod"):
        for svc in SERVICES:
            container = _container(rendered[overlay], f"perpsignal-{svc}")
            whole_secret = any(
                e.get("secretRef", {}).get("name") == "perpsignal-secrets"
                for e in container["envFrom"]
            )
            keys = {
                e["valueFrom"]["secretKeyRef"]["key"]
                for e in container["env"]
                if e.get("valueFrom", {}).get("secretKeyRef", {}).get("name")
                == "perpsignal-secrets"
            }
            # a pod taken over must not hold another service's keys: the ingestor no bot
            # token or LLM key, the notifier no vendor keys or the gateway's API keys
            assert not whole_secret, (overlay, svc)
            wanted = documented.get(svc, set()) - own
            assert keys == wanted, (overlay, svc, keys)


def test_asyncapi_production_server_names_the_kafka_users_prod_creates(
    rendered: dict[str, list[Doc]],
) -> None:
    import json

    # a client author reads the published AsyncAPI document to learn how to log in: it must
    # name the per-service KafkaUsers prod creates, not a shared user that does not exist
    doc = json.loads((REPO / "schemas" / "asyncapi.json").read_text())
    text = doc["servers"]["production"]["description"]
    users = {
        d["metadata"]["name"]
        for d in rendered["prod"]
        if d["kind"] == "KafkaUser" and d["metadata"]["name"] != "perpsignal-keda"
    }
    assert len(users) == 6
    named = set(re.findall(r"`(perpsignal-[a-z]+)`", text))
    assert named == users, named
    scheme = doc["components"]["securitySchemes"]["scramSha512"]["description"]
    assert "one per service" in scheme
