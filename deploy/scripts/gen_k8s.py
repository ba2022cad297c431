"""Write the repetitive Kubernetes base manifests from one table of services and topics.

Why generated: six Deployments, their Services, PDBs and ServiceMonitors, four KEDA
ScaledObjects and 23 KafkaTopics differ only in a few numbers; one table here keeps probes,
security context and labels identical, and the `KafkaTopic`s exactly the topic registry's
(`tests/deploy` fails while a generated file is stale). Hand-written: kustomization files,
ConfigMap, NetworkPolicies, Ingress and the overlays.

    uv run python deploy/scripts/gen_k8s.py [--check]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "deploy" / "k8s" / "base"
PART_OF = "perpsignal"
KAFKA_CLUSTER = "perpsignal"  # the Strimzi `Kafka` resource the topics belong to
# SIGTERM: the drain, then the close, each bounded by SHUTDOWN_TIMEOUT_S (20 s): 40 s at worst,
# so 45 s leaves a margin before SIGKILL. The gateway's preStop pause (its Service drops the
# pod first) runs inside the same grace period, so it gets that much more.
GRACE_SECONDS = 45
PRESTOP_S = 5


@dataclass(frozen=True)
class Svc:
    """What differs between services in Kubernetes."""

    name: str
    port: int
    port_name: str  # "ops" for workers, "http" for the gateway
    replicas: int
    cpu: str
    memory: str
    cpu_limit: str
    memory_limit: str
    database: bool
    # KEDA: the consumer group and the topic whose lag drives scaling (None = not KEDA)
    group: str | None = None
    lag_topic: str | None = None
    max_replicas: int = 1
    # records of lag per replica: what one replica clears within its target time at half its
    # measured throughput (bench/capacity.py; the derivation is in deploy/README.md, Capacity)
    lag_threshold: int = 500
    # the gateway's ops server (/healthz, /readyz, /metrics without a key), off its public
    # port: the Service's `http` port, which the Ingress routes to, has no /metrics
    ops_port: int | None = None


SERVICES: tuple[Svc, ...] = (
    # Ingestor replicas shard the symbol universe by the `ingestor` group's partitions of
    # commands.v1 (12): up to 12 replicas, each polling its share (services/ingestor/README.md)
    Svc("ingestor", 9101, "ops", 2, "200m", "256Mi", "1", "512Mi", database=True),
    Svc(
        "scorer",
        9102,
        "ops",
        1,
        "500m",
        "512Mi",
        "2",
        "1Gi",
        database=False,
        group="scorer",
        lag_topic="perpsignal.market.v1",
        max_replicas=12,
        lag_threshold=11000,  # 756 candles/s x 0.5 x 30 s
    ),
    Svc(
        "judge",
        9103,
        "ops",
        1,
        "250m",
        "384Mi",
        "1",
        "768Mi",
        database=False,
        group="judge",
        lag_topic="perpsignal.signals.v1",
        max_replicas=12,
        lag_threshold=4500,  # 301 signals/s x 0.5 x 30 s
    ),
    Svc(
        "outcomes",
        9104,
        "ops",
        1,
        "200m",
        "256Mi",
        "1",
        "512Mi",
        database=True,
        group="outcomes",
        lag_topic="perpsignal.signals.judged.v1",
        max_replicas=12,
        # 204 records/s x 0.5 x 300 s, a quarter of them judged signals (the rest candles)
        lag_threshold=7500,
    ),
    # Telegram's limits are per bot, not per replica: more than a few notifiers only queue.
    # Memory: aiogram's Telegram type models alone hold ~165 MiB, ~210 MiB once loaded
    Svc(
        "notifier",
        9105,
        "ops",
        1,
        "100m",
        "320Mi",
        "500m",
        "512Mi",
        database=True,
        group="notifier",
        lag_topic="perpsignal.signals.judged.v1",
        max_replicas=3,
        lag_threshold=200,
    ),
    Svc("gateway", 8000, "http", 2, "250m", "384Mi", "1", "768Mi", database=True, ops_port=9106),
)


@dataclass(frozen=True)
class KafkaAccess:
    """What one service does on Kafka: its prod `KafkaUser` may do exactly this and no more.

    `consumes`: topics a `ConsumerLoop` handles (read, and write their `.dlq` for poison
    records); `reads`: topics read without a dead-letter path (the gateway's read model, the
    judge's read-back); `writes`: topics produced to; `groups`: consumer groups joined.
    Taken from the services' code (tests/deploy checks the consumed topics and groups against
    it). Idempotent producers need no cluster ACL: Kafka 3+ grants them with Write.
    """

    consumes: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


_P = "perpsignal."
KAFKA_ACCESS: dict[str, KafkaAccess] = {
    # commands.v1 is also written: a command keyed by another spelling is forwarded to the
    # partition of the replica that polls the symbol
    "ingestor": KafkaAccess(
        consumes=(_P + "commands.v1",),
        writes=tuple(
            _P + t
            for t in (
                "market.v1",
                "market.global.v1",
                "liquidations.v1",
                "listings.v1",
                "commands.v1",
            )
        ),
        groups=("ingestor",),
    ),
    "scorer": KafkaAccess(
        consumes=tuple(
            _P + t
            for t in (
                "market.v1",
                "liquidations.v1",
                "commands.v1",
                "listings.v1",
                "market.global.v1",  # every partition, no group
            )
        ),
        writes=(_P + "signals.v1", _P + "mss.v1"),
        groups=("scorer",),
    ),
    "judge": KafkaAccess(
        consumes=(_P + "signals.v1", _P + "judge.requests.v1"),
        # at start it reads back what it already published (no duplicate verdicts)
        reads=(_P + "signals.judged.v1",),
        writes=(_P + "signals.judged.v1", _P + "judge.replies.v1"),
        groups=("judge",),
    ),
    "outcomes": KafkaAccess(
        consumes=(_P + "signals.judged.v1", _P + "mss.v1", _P + "market.v1"),
        writes=(_P + "outcomes.v1",),
        groups=("outcomes",),
    ),
    "notifier": KafkaAccess(
        consumes=(_P + "signals.judged.v1", _P + "mss.v1", _P + "listings.v1"),
        groups=("notifier",),
    ),
    "gateway": KafkaAccess(
        reads=tuple(
            _P + t
            for t in (
                "signals.judged.v1",
                "market.v1",
                "market.global.v1",
                "mss.v1",
                "listings.v1",
                "liquidations.v1",
                "judge.replies.v1",
                "gateway.snapshot.v1",
            )
        ),
        writes=(_P + "commands.v1", _P + "judge.requests.v1", _P + "gateway.snapshot.v1"),
        # the election of the one replica that writes the snapshot
        groups=("perpsignal-gateway-snapshot-writer",),
    ),
}
# KEDA's Kafka scaler reads the lag of these groups on these topics (offsets only)
KEDA_USER = "perpsignal-keda"
PROD = REPO / "deploy" / "k8s" / "overlays" / "prod"


# Base name of the migrate Job; the overlays replace `version` with the tools image tag
MIGRATE_JOB = "perpsignal-migrate-version"

# Strimzi writes the cluster CA of Kafka cluster `perpsignal` to this secret (key ca.crt)
KAFKA_CA_SECRET = "perpsignal-cluster-ca-cert"
KAFKA_CA_DIR = "/etc/perpsignal/kafka-ca"
# The CA of a PostgreSQL whose certificate no public CA signs (in-cluster, self-managed): prod
# refuses a database without TLS, so DATABASE_URL names it with sslrootcert=<this dir>/ca.crt
DB_CA_SECRET = "perpsignal-db-ca"
DB_CA_DIR = "/etc/perpsignal/db-ca"


def db_ca_volume() -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the (volume, mount) of the database CA; optional, so a public CA needs none."""
    return (
        {"name": "db-ca", "secret": {"secretName": DB_CA_SECRET, "optional": True}},
        {"name": "db-ca", "mountPath": DB_CA_DIR, "readOnly": True},
    )


def labels(svc: str) -> dict[str, str]:
    """Return the labels every object of `svc` carries (selectors use the first two)."""
    return {
        "app.kubernetes.io/name": svc,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/component": "gateway" if svc == "gateway" else "worker",
    }


def selector(svc: str) -> dict[str, str]:
    """Return the pod selector of `svc`."""
    return {"app.kubernetes.io/name": svc, "app.kubernetes.io/part-of": PART_OF}


def security_context() -> dict[str, Any]:
    """Return the container security context (matches the image's non-root user)."""
    return {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


# Each comes from its own Secret: DATABASE_URL from perpsignal-db, KAFKA_SASL_PASSWORD (prod)
# from the service's KafkaUser
OWN_SECRETS = {"DATABASE_URL", "KAFKA_SASL_PASSWORD"}


def secret_keys(service: str) -> list[str]:
    """Return the keys of `perpsignal-secrets` a service reads.

    Least privilege: the SecretStr fields of its settings, plus the vendor keys the key
    registry names it a reader of (documented and deprecated names, looked up at run time).
    The scorer and outcomes read none and see none, the judge only OPENAI_API_KEY, the
    notifier only TELEGRAM_BOT_TOKEN, the ingestor no bot token, LLM key or Binance key, so a
    compromised pod cannot take the other services' keys.
    """
    import importlib
    import typing

    from pydantic import BaseModel, SecretStr

    from perpsignal_connectors.keys import key_names_read_by

    module = importlib.import_module(f"perpsignal_{service}.settings")
    settings = getattr(module, f"{service.capitalize()}Settings")

    def secrets(model: type[BaseModel]) -> set[str]:
        found: set[str] = set()
        for name, field in model.model_fields.items():
            for arg in typing.get_args(field.annotation) or (field.annotation,):
                if arg is SecretStr:
                    found.add(name.upper())
                elif isinstance(arg, type) and issubclass(arg, BaseModel):
                    found |= secrets(arg)
        return found

    # and the vendor keys it reads through perpsignal_connectors.keys (the gateway's
    # pass-through, the ingestor's sources) by the registry's names, beside its settings
    # fields: only those the registry names it a reader of (BINANCE_API_KEY: the gateway)
    found = secrets(settings) | key_names_read_by(service)
    return sorted(found - OWN_SECRETS)


def autoscaled(s: Svc) -> bool:
    """Return True when a KEDA ScaledObject or the gateway's HPA sets the replica count."""
    return s.group is not None or s.name == "gateway"


def service_urls() -> str:
    """Return GATEWAY_SERVICE_URLS: every worker's ops port, by its in-cluster Service."""
    return ",".join(
        f"{s.name}=http://perpsignal-{s.name}:{s.port}" for s in SERVICES if s.name != "gateway"
    )


def deployment(s: Svc) -> dict[str, Any]:
    """Return the Deployment of one service."""
    env: list[dict[str, Any]] = [
        {"name": "GATEWAY_PORT" if s.name == "gateway" else "OPS_PORT", "value": str(s.port)},
        # both default to loopback; the pod's port is reached only through the NetworkPolicies
        {"name": "GATEWAY_HOST" if s.name == "gateway" else "OPS_HOST", "value": "0.0.0.0"},
    ]
    if s.ops_port:
        env += [
            {"name": "GATEWAY_OPS_PORT", "value": str(s.ops_port)},
            {"name": "OPS_HOST", "value": "0.0.0.0"},
        ]
    if s.name == "gateway":
        # the Health page (GET /health/services) reads each worker's /readyz and /metrics
        # through its Service (NetworkPolicy perpsignal-allow-gateway-to-ops admits it)
        env.append({"name": "GATEWAY_SERVICE_URLS", "value": service_urls()})
    if s.name == "ingestor":
        # replicas share the per-IP Binance weight: each takes the total / this number, which
        # counts the rolling update's surge pod so the total holds during a rollout too
        env.append({"name": "INGESTOR_REPLICAS", "value": str(s.replicas + 1)})
    if s.database:
        env.append(
            {
                "name": "DATABASE_URL",
                "valueFrom": {"secretKeyRef": {"name": "perpsignal-db", "key": "DATABASE_URL"}},
            }
        )
    env_from: list[dict[str, Any]] = [{"configMapRef": {"name": "perpsignal-config"}}]
    # API keys and tokens, each optional (a keyed source switches off without its key; the
    # prod overlay makes GATEWAY_API_KEYS required)
    env += [
        {
            "name": key,
            "valueFrom": {
                "secretKeyRef": {"name": "perpsignal-secrets", "key": key, "optional": True}
            },
        }
        for key in secret_keys(s.name)
    ]
    container: dict[str, Any] = {
        "name": s.name,
        "image": f"perpsignal/{s.name}:latest",
        "imagePullPolicy": "IfNotPresent",
        "ports": ports(s, container=True),
        "envFrom": env_from,
        "env": env,
        "startupProbe": {
            "httpGet": {"path": "/healthz", "port": s.port_name},
            "periodSeconds": 2,
            "failureThreshold": 45,
        },
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": s.port_name},
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": s.port_name},
            "periodSeconds": 10,
            "timeoutSeconds": 3,
            "failureThreshold": 6,
        },
        "resources": {
            "requests": {"cpu": s.cpu, "memory": s.memory},
            "limits": {"cpu": s.cpu_limit, "memory": s.memory_limit},
        },
        "securityContext": security_context(),
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            # Strimzi's cluster CA (prod: KAFKA_SSL_CAFILE points here); optional, so the
            # PLAINTEXT dev overlay runs without it
            {"name": "kafka-ca", "mountPath": KAFKA_CA_DIR, "readOnly": True},
        ],
    }
    volumes: list[dict[str, Any]] = [
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        {"name": "kafka-ca", "secret": {"secretName": KAFKA_CA_SECRET, "optional": True}},
    ]
    if s.database:
        volume, mount = db_ca_volume()
        volumes.append(volume)
        container["volumeMounts"].append(mount)
    if s.name == "gateway":
        # Let the Service drop this pod from its endpoints before the drain starts
        container["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", str(PRESTOP_S)]}}}
    spec: dict[str, Any] = {}
    if not autoscaled(s):
        # An autoscaler owns the replica count: a `replicas` here would reset it on every apply
        spec["replicas"] = s.replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"perpsignal-{s.name}", "labels": labels(s.name)},
        "spec": {
            **spec,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": selector(s.name)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": labels(s.name),
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(s.ops_port or s.port),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "terminationGracePeriodSeconds": GRACE_SECONDS
                    + (PRESTOP_S if "lifecycle" in container else 0),
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "fsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": selector(s.name)},
                        }
                    ],
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def ports(s: Svc, *, container: bool) -> list[dict[str, Any]]:
    """Return the container's (or its Service's) ports: the service's own, then its ops."""
    pairs = [(s.port_name, s.port, 80 if s.name == "gateway" else s.port)]
    if s.ops_port:
        pairs.append(("ops", s.ops_port, s.ops_port))
    if container:
        return [{"name": n, "containerPort": p, "protocol": "TCP"} for n, p, _ in pairs]
    return [{"name": n, "port": port, "targetPort": n, "protocol": "TCP"} for n, _, port in pairs]


def service(s: Svc) -> dict[str, Any]:
    """Return the Service: the gateway's front door (and its ops port, which the Ingress
    does not route to), or a worker's metrics endpoint."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"perpsignal-{s.name}", "labels": labels(s.name)},
        "spec": {
            "type": "ClusterIP",
            "selector": selector(s.name),
            "ports": ports(s, container=False),
        },
    }


def pdb(s: Svc) -> dict[str, Any]:
    """Return the PodDisruptionBudget: drains evict one pod at a time.

    `maxUnavailable: 1`, never `minAvailable: 1`: with an autoscaler the replica count moves
    (the prod gateway 3..20), and `minAvailable: 1` would let a drain evict all but one pod at
    once, or, at one replica (dev), none at all, blocking node drains.
    """
    spec: dict[str, Any] = {"selector": {"matchLabels": selector(s.name)}, "maxUnavailable": 1}
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": f"perpsignal-{s.name}", "labels": labels(s.name)},
        "spec": spec,
    }


def service_monitor(s: Svc) -> dict[str, Any]:
    """Return the ServiceMonitor scraping the service's /metrics."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": f"perpsignal-{s.name}", "labels": labels(s.name)},
        "spec": {
            "selector": {"matchLabels": selector(s.name)},
            "endpoints": [
                {
                    # every service's metrics are on its ops port, never the gateway's public one
                    "port": "ops",
                    "path": "/metrics",
                    "interval": "15s",
                    # keep the metrics' own `service` label (service name, not the k8s one)
                    "honorLabels": True,
                }
            ],
        },
    }


def scaled_object(s: Svc) -> dict[str, Any]:
    """Return the KEDA ScaledObject scaling a consumer on its group's lag."""
    assert s.group and s.lag_topic
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": f"perpsignal-{s.name}", "labels": labels(s.name)},
        "spec": {
            "scaleTargetRef": {"name": f"perpsignal-{s.name}"},
            "minReplicaCount": 1,
            # More consumers than partitions would sit idle
            "maxReplicaCount": s.max_replicas,
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        "scaleDown": {
                            "stabilizationWindowSeconds": 300,
                            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
                        }
                    }
                }
            },
            "triggers": [
                {
                    "type": "kafka",
                    "metadata": {
                        # KEDA dials from its own namespace, where the bare Service name
                        # does not resolve: the overlays' `replacements` put their namespace
                        # (the Kafka cluster's) in place of NAMESPACE
                        "bootstrapServers": f"{KAFKA_CLUSTER}-kafka-bootstrap.NAMESPACE.svc:9092",
                        "consumerGroup": s.group,
                        "topic": s.lag_topic,
                        "lagThreshold": str(s.lag_threshold),
                        "offsetResetPolicy": "earliest",
                        "allowIdleConsumers": "false",
                    },
                }
            ],
        },
    }


def gateway_hpa() -> dict[str, Any]:
    """Return the gateway's CPU-based HorizontalPodAutoscaler."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "perpsignal-gateway", "labels": labels("gateway")},
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": "perpsignal-gateway",
            },
            "minReplicas": 2,
            "maxReplicas": 10,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 70},
                    },
                }
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
        },
    }


def kafka_topics() -> list[dict[str, Any]]:
    """Return one Strimzi KafkaTopic per registry topic and DLQ topic."""
    from perpsignal_common.events.topics import all_topic_specs

    return [
        {
            "apiVersion": "kafka.strimzi.io/v1",
            "kind": "KafkaTopic",
            "metadata": {
                "name": str(spec.name),
                "labels": {
                    "strimzi.io/cluster": KAFKA_CLUSTER,
                    "app.kubernetes.io/part-of": PART_OF,
                },
            },
            "spec": {
                "topicName": str(spec.name),
                "partitions": spec.partitions,
                "replicas": 3,
                # acks=all + 3 replicas + min.insync.replicas=2: an acknowledged record is on
                # two brokers, and one broker may be down without stopping producers
                "config": {
                    **{k: int(v) if v.isdigit() else v for k, v in spec.configs().items()},
                    "min.insync.replicas": 2,
                },
            },
        }
        for spec in all_topic_specs()
    ]


def _acl(kind: str, name: str, *operations: str) -> dict[str, Any]:
    return {
        "resource": {"type": kind, "name": name, "patternType": "literal"},
        "operations": list(operations),
        "host": "*",
    }


def kafka_user(name: str, acls: list[dict[str, Any]]) -> dict[str, Any]:
    """Return a Strimzi KafkaUser: SCRAM-SHA-512, exactly `acls` (its Secret is `name`)."""
    return {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaUser",
        "metadata": {
            "name": name,
            "labels": {"strimzi.io/cluster": KAFKA_CLUSTER, "app.kubernetes.io/part-of": PART_OF},
        },
        "spec": {
            "authentication": {"type": "scram-sha-512"},
            "authorization": {"type": "simple", "acls": acls},
        },
    }


def service_acls(a: KafkaAccess) -> list[dict[str, Any]]:
    """Return the least-privilege ACLs of one service: its topics and groups, by name."""
    from perpsignal_common.events.topics import all_topic_specs, dlq_topic

    dlqs = {s.name for s in all_topic_specs()}
    ops: dict[str, list[str]] = {}
    for t in (*a.consumes, *a.reads):
        ops.setdefault(t, []).append("Read")
    for t in (*a.writes, *(dlq_topic(t) for t in a.consumes if dlq_topic(t) in dlqs)):
        ops.setdefault(t, []).append("Write")
    return [
        *(_acl("topic", t, *dict.fromkeys(o), "Describe") for t, o in ops.items()),
        *(_acl("group", g, "Read") for g in a.groups),
    ]


def kafka_users() -> list[dict[str, Any]]:
    """Return one KafkaUser per service, plus KEDA's (it only reads offsets)."""
    users = [kafka_user(f"perpsignal-{s}", service_acls(a)) for s, a in KAFKA_ACCESS.items()]
    scaled = [s for s in SERVICES if s.group and s.lag_topic]
    keda = [_acl("topic", t, "Describe") for t in dict.fromkeys(str(s.lag_topic) for s in scaled)]
    keda += [_acl("group", str(s.group), "Describe") for s in scaled]
    return [*users, kafka_user(KEDA_USER, keda)]


def kafka_credentials_patch(s: Svc) -> dict[str, Any]:
    """Return the prod patch making a service log in as its own KafkaUser.

    Strimzi's User Operator writes the password to a Secret named like the user (key
    `password`); `env` wins over the ConfigMap's and `perpsignal-secrets`' `envFrom`.
    """
    user = f"perpsignal-{s.name}"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"perpsignal-{s.name}"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": s.name,
                            "env": [
                                {"name": "KAFKA_SASL_USERNAME", "value": user},
                                {
                                    "name": "KAFKA_SASL_PASSWORD",
                                    "valueFrom": {
                                        "secretKeyRef": {"name": user, "key": "password"}
                                    },
                                },
                            ],
                        }
                    ]
                }
            }
        },
    }


def migrate_job() -> dict[str, Any]:
    """Return the migration Job (`perpsignal migrate`: every service's Alembic branch).

    A Job's pod template is immutable, so one fixed name fails on the next release's apply.
    The overlays' `replacements` turn the `version` part of the name into the tools image tag
    (`perpsignal-migrate-0.1.0`): each release gets its own Job, and re-applying the same
    release is a no-op (`generateName` is not an option: `kubectl apply` refuses it).
    """
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": MIGRATE_JOB, "labels": labels("migrate")},
        "spec": {
            "backoffLimit": 6,
            "activeDeadlineSeconds": 600,
            # Finished Jobs of old releases are cleaned up a day later
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {"labels": labels("migrate")},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "migrate",
                            "image": "perpsignal/tools:latest",
                            "imagePullPolicy": "IfNotPresent",
                            "args": ["migrate"],
                            "env": [
                                {
                                    "name": "DATABASE_URL",
                                    "valueFrom": {
                                        "secretKeyRef": {
                                            "name": "perpsignal-db",
                                            "key": "DATABASE_URL",
                                        }
                                    },
                                }
                            ],
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"cpu": "500m", "memory": "256Mi"},
                            },
                            "securityContext": security_context(),
                            "volumeMounts": [db_ca_volume()[1]],
                        }
                    ],
                    "volumes": [db_ca_volume()[0]],
                },
            },
        },
    }


def _dump(docs: list[dict[str, Any]]) -> str:
    header = "# GENERATED by deploy/scripts/gen_k8s.py: edit the script, not this file.\n"
    return header + str(yaml.safe_dump_all(docs, sort_keys=False, width=100))


def rendered() -> dict[Path, str]:
    """Return every generated base file with its content."""
    files: dict[Path, str] = {}
    for s in SERVICES:
        docs = [deployment(s), service(s), pdb(s)]
        files[BASE / "apps" / f"{s.name}.yaml"] = _dump(docs)
    files[BASE / "jobs" / "migrate.yaml"] = _dump([migrate_job()])
    files[BASE / "autoscaling" / "scaledobjects.yaml"] = _dump(
        [scaled_object(s) for s in SERVICES if s.group]
    )
    files[BASE / "autoscaling" / "gateway-hpa.yaml"] = _dump([gateway_hpa()])
    files[BASE / "kafka" / "topics.yaml"] = _dump(kafka_topics())
    # prod only: the dev cluster's single PLAINTEXT broker has no authentication
    files[PROD / "kafka-users.yaml"] = _dump(kafka_users())
    files[PROD / "patch-kafka-credentials.yaml"] = _dump(
        [kafka_credentials_patch(s) for s in SERVICES]
    )
    files[BASE / "monitoring" / "servicemonitors.yaml"] = _dump(
        [service_monitor(s) for s in SERVICES]
    )
    return files


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, verify) the generated base manifests."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if any file is stale")
    args = parser.parse_args(argv)
    files = rendered()
    stale = [p for p, text in files.items() if not p.is_file() or p.read_text() != text]
    if args.check:
        for p in stale:
            sys.stderr.write(f"stale: {p.relative_to(REPO)}\n")
        return 1 if stale else 0
    for p, text in files.items():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    sys.stdout.write(f"wrote {len(files)} files\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
