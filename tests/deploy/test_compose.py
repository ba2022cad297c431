"""Offline checks of deploy/compose: spec schema, services, env vars, jobs, monitoring."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import SecretStr

from perpsignal_cli import docs
from tests.deploy.conftest import DEPLOY, REPO, SERVICES, load_script

COMPOSE_DIR = DEPLOY / "compose"
SCHEMA = json.loads((DEPLOY / "schemas" / "compose-spec.json").read_text())


def _validator() -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(SCHEMA, default=jsonschema.Draft7Validator)
    return cls(SCHEMA)


def app_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Compose services built from a services/<svc>/Dockerfile."""
    out = {}
    for svc in compose["services"].values():
        dockerfile = (svc.get("build") or {}).get("dockerfile", "")
        match = re.fullmatch(r"services/([a-z]+)/Dockerfile", dockerfile)
        if match:
            out[match.group(1)] = svc
    return out


def test_compose_file_is_valid_against_the_compose_specification(
    compose: dict[str, Any],
) -> None:
    errors = sorted(_validator().iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_schema_validation_rejects_a_broken_compose_file(compose: dict[str, Any]) -> None:
    # The check above is only worth something if the schema really rejects mistakes
    broken = json.loads(json.dumps(compose))
    broken["services"]["scorer"]["restart_policy"] = "always"  # not a service key
    broken["services"]["kafka"]["ports"] = "9092"  # must be a list
    errors = list(_validator().iter_errors(broken))
    assert len(errors) >= 2


def test_every_repository_service_runs_in_compose_and_nothing_else(
    compose: dict[str, Any],
) -> None:
    in_repo = {p.parent.name for p in (REPO / "services").glob("*/pyproject.toml")}
    assert set(app_services(compose)) == in_repo
    for name, svc in app_services(compose).items():
        assert name in compose["services"], "compose service name = repository service name"
        assert svc["build"]["context"] == "../.."
        assert (COMPOSE_DIR / svc["build"]["context"] / svc["build"]["dockerfile"]).is_file()


@pytest.mark.parametrize("service", SERVICES)
def test_every_variable_compose_sets_is_read_by_the_service_settings(
    compose: dict[str, Any], service: str
) -> None:
    if docs.service_env_vars(service) is None:
        pytest.skip(f"perpsignal_{service}.settings does not exist yet")
    known = docs.service_reads(service)
    env = app_services(compose)[service].get("environment", {})
    unknown = sorted(k for k in env if k.upper() not in known)
    assert not unknown, f"{service} settings do not read {unknown}"


def test_setup_jobs_set_only_variables_the_shared_settings_read(
    compose: dict[str, Any],
) -> None:
    known = docs.common_env_vars()
    for job in ("topics", "migrate"):
        env = compose["services"][job].get("environment", {})
        assert set(env) <= set(known), job


def test_services_start_only_after_kafka_topics_and_migrations(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert services["topics"]["command"] == ["topics", "create"]
    assert services["migrate"]["command"] == ["migrate"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert any("postgres" in v for v in services["postgres"]["volumes"])
    for name, svc in app_services(compose).items():
        deps = svc["depends_on"]
        assert deps["topics"]["condition"] == "service_completed_successfully", name
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        assert deps["kafka"]["condition"] == "service_healthy", name


def test_services_use_real_kafka_settings_and_secrets_come_from_env_by_name(
    compose: dict[str, Any],
) -> None:
    for name, svc in app_services(compose).items():
        env = svc["environment"]
        assert env["KAFKA_IDEMPOTENT_PRODUCER"] == "true", name
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092", name
        # no secret value is written into the compose file itself: named, filled from .env
        assert all(v is None for k, v in env.items() if "KEY" in k or "TOKEN" in k), name


def test_each_container_gets_only_the_variables_its_service_reads(
    compose: dict[str, Any],
) -> None:
    # env_file handed the whole .env to every container: the notifier held the OpenAI key,
    # the ingestor the Telegram bot token. Now each gets the names its service reads.
    gen_k8s = load_script("gen_k8s")
    services = app_services(compose)
    for name, svc in services.items():
        assert "env_file" not in svc, name
        assert set(svc["environment"]) == docs.service_reads(name), name
    env = {name: set(svc["environment"]) for name, svc in services.items()}
    assert "OPENAI_API_KEY" in env["judge"] and "TELEGRAM_BOT_TOKEN" in env["notifier"]
    assert not {"OPENAI_API_KEY", "COINGLASS_API_KEY", "GATEWAY_API_KEYS"} & env["notifier"]
    assert not {"TELEGRAM_BOT_TOKEN", "OPENAI_API_KEY", "GATEWAY_API_KEYS"} & env["ingestor"]
    assert "COINGLASS_API_KEY" in env["ingestor"] and "COINGLASS_API_KEY" in env["gateway"]
    # every key the Kubernetes pod gets from perpsignal-secrets, compose passes too, and no
    # other secret (the secret settings, and the vendor keys of the two catalogue readers)
    for name in services:
        reads = docs.service_env_vars(name) or {}
        secrets = {k for k in env[name] if k in reads and reads[k].secret}
        k8s = set(gen_k8s.secret_keys(name))
        assert secrets - gen_k8s.OWN_SECRETS <= k8s <= env[name], name


def test_gateway_reads_its_vendor_budgets_by_the_names_compose_passes() -> None:
    from perpsignal_connectors.catalog import load_catalogs
    from perpsignal_gateway.vendors import budget_env

    reads = docs.service_reads("gateway")
    for catalogue in load_catalogs():
        assert {budget_env(catalogue), catalogue.base_url_env} <= reads, catalogue.name


def test_published_ports_are_reachable_from_this_machine_only(compose: dict[str, Any]) -> None:
    # Docker publishes past the host firewall: a bare "9094:9094" puts PLAINTEXT Kafka, the
    # database with its default password and admin/admin Grafana on the network
    published = {
        name: svc["ports"] for name, svc in compose["services"].items() if svc.get("ports")
    }
    assert {"kafka", "postgres", "gateway", "grafana"} <= set(published)
    for name, ports in published.items():
        for port in ports:
            host_ip = port["host_ip"] if isinstance(port, dict) else port.split(":")[0]
            assert host_ip == "127.0.0.1", (name, port)


def test_app_containers_are_as_confined_as_the_kubernetes_pods(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, svc in {**app_services(compose), "topics": services["topics"],
                      "migrate": services["migrate"]}.items():  # fmt: skip
        assert svc.get("read_only") is True, name
        assert svc.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in svc.get("security_opt", []), name
        # the one writable path, as the pods' /tmp emptyDir
        assert [t.split(":")[0] for t in svc.get("tmpfs", [])] == ["/tmp"], name


def test_stop_grace_period_outlasts_the_drain_deadline(compose: dict[str, Any]) -> None:
    from perpsignal_common.settings import OpsSettings

    drain = OpsSettings().shutdown_timeout_s
    for name, svc in app_services(compose).items():
        grace = int(svc["stop_grace_period"].rstrip("s"))
        # the drain, then the close, each bounded by the deadline (perpsignal_common.runtime)
        assert grace > 2 * drain, name


def test_prometheus_scrapes_every_service_on_the_port_it_serves(
    compose: dict[str, Any],
) -> None:
    config = yaml.safe_load((COMPOSE_DIR / "prometheus" / "prometheus.yml").read_text())
    targets = {
        t
        for job in config["scrape_configs"]
        for sc in job.get("static_configs", [])
        for t in sc["targets"]
    }
    for name, svc in app_services(compose).items():
        port = svc["environment"].get("OPS_PORT") or svc["environment"]["GATEWAY_OPS_PORT"]
        assert f"{name}:{port}" in targets


def test_gateway_metrics_are_scraped_on_a_port_compose_does_not_publish(
    compose: dict[str, Any],
) -> None:
    # the published gateway port is what a tunnel or a reverse proxy exposes: no /metrics there
    config = yaml.safe_load((COMPOSE_DIR / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for sc in job.get("static_configs", [])
               for t in sc["targets"]}  # fmt: skip
    gateway = compose["services"]["gateway"]
    env = gateway["environment"]
    ops, public = env["GATEWAY_OPS_PORT"], env["GATEWAY_PORT"]
    assert ops != public
    assert env["OPS_HOST"] == "0.0.0.0"  # Prometheus reaches it over the compose network
    assert f"gateway:{ops}" in targets and f"gateway:{public}" not in targets
    assert [p.rsplit(":", 1)[1] for p in gateway["ports"]] == [public]


def test_dashboard_and_alerts_use_metrics_the_code_defines() -> None:
    # A child process: it imports every module, and the registry it reads is the code's alone
    proc = subprocess.run(
        [sys.executable, str(DEPLOY / "scripts" / "check_metrics.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "alert and panel queries use defined metrics" in proc.stdout


def test_metric_cross_check_finds_an_undefined_or_misnamed_metric() -> None:
    check = load_script("check_metrics")
    defined = {"perpsignal_notifier_sends_total", "perpsignal_notifier_sends_created"}
    rules = [
        ("ok", 'sum(rate(perpsignal_notifier_sends_total{outcome="failed"}[5m])) > 0 and up'),
        ("missing", "histogram_quantile(0.95, rate(perpsignal_nowhere_seconds_bucket[5m]))"),
        # the counter's family name without `_total` is not a series Prometheus stores
        ("misnamed", "rate(perpsignal_notifier_sends[5m])"),
    ]
    problems = check.undefined(rules, defined)
    assert problems == [
        "missing: perpsignal_nowhere_seconds_bucket is defined by no code",
        "misnamed: perpsignal_notifier_sends is defined by no code",
    ]


def test_dashboard_covers_what_operators_watch() -> None:
    board = json.loads((COMPOSE_DIR / "grafana" / "dashboards" / "perpsignal.json").read_text())
    exprs = " ".join(t["expr"] for p in board["panels"] for t in p.get("targets", []))
    for metric in (
        "perpsignal_producer_messages_total",  # throughput
        "perpsignal_pipeline_latency_seconds",  # end-to-end latency
        "perpsignal_consumer_lag_records",
        "perpsignal_dlq_messages_total",
        "perpsignal_vendor_errors_total",
        "perpsignal_vendor_weight_used",  # rate-limit state
        "perpsignal_judge_llm_latency_seconds",
        "perpsignal_judge_llm_tokens_total",
        "perpsignal_judge_fallbacks_total",
        "perpsignal_notifier_sends_total",  # Telegram sends
        "perpsignal_gateway_http_requests_total",  # gateway row
        "perpsignal_gateway_ws_clients",
        "perpsignal_ingestor_events_total",  # ingestor row
        "perpsignal_ingestor_source_errors_total",
    ):
        assert metric in exprs, metric
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    provisioning = yaml.safe_load(
        (COMPOSE_DIR / "grafana" / "provisioning" / "dashboards" / "perpsignal.yml").read_text()
    )
    mounts = compose_mounts("grafana")
    assert provisioning["providers"][0]["options"]["path"] in mounts.values()


def compose_mounts(service: str) -> dict[str, str]:
    """Return {host path: container path} of a compose service's bind mounts."""
    compose = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())
    out = {}
    for v in compose["services"][service]["volumes"]:
        host, container = v.split(":")[:2]
        out[host] = container
    return out


def test_generated_observability_files_are_fresh() -> None:
    assert load_script("gen_observability").main(["--check"]) == 0


def test_env_example_documents_every_setting_and_nothing_unknown() -> None:
    assert docs.render_compose_env_example() == (COMPOSE_DIR / ".env.example").read_text(), (
        "run: uv run perpsignal docs"
    )
    documented = {
        line.split("=", 1)[0]
        for line in (COMPOSE_DIR / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    known = set(docs.COMPOSE_VARS) | set(docs.common_env_vars()) | set(docs.catalogue_vars())
    for svc in SERVICES:
        known |= set(docs.service_env_vars(svc) or {})
    assert documented == known
    for secret in ("OPENAI_API_KEY", "TELEGRAM_BOT_TOKEN", "POSTGRES_PASSWORD"):
        if secret in known:
            assert secret in documented


def test_images_default_to_the_ports_compose_sets(compose: dict[str, Any]) -> None:
    # an image run alone (docker run, another orchestrator) serves where compose and the k8s
    # manifests say it does: the three generators write these ports independently
    for name, svc in app_services(compose).items():
        dockerfile = (REPO / "services" / name / "Dockerfile").read_text()
        runtime = dockerfile.split(" AS runtime", 1)[1]
        env = dict(re.findall(r"^\s+([A-Z_]+)=(\S+?)(?: \\)?$", runtime, re.MULTILINE))
        expose = re.search(r"^EXPOSE (.+)$", runtime, re.MULTILINE)
        assert expose is not None, name
        for key in ("OPS_PORT", "GATEWAY_PORT", "GATEWAY_OPS_PORT"):
            value = svc["environment"].get(key)  # None: passed through from .env, unset here
            if value is not None:
                assert env.get(key) == str(value), (name, key, env)
                assert env[key] in expose.group(1).split(), (name, key)


def _vendor_keys_read(service: str, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The key-registry variables whose value `service` really takes, each set alone."""
    from perpsignal_connectors.keys import VENDOR_KEYS

    names = {n for k in VENDOR_KEYS.values() for n in (k.env, *k.deprecated)}
    found = set()
    for name in names:
        for other in names:
            monkeypatch.delenv(other, raising=False)
        probe = f"probe{name.lower().replace('_', '')}0123456789"
        monkeypatch.setenv(name, probe)
        if service == "ingestor":
            from perpsignal_ingestor.settings import VendorKeys

            keys = VendorKeys()
            held = [
                v.get_secret_value()
                for v in (getattr(keys, f) for f in type(keys).model_fields)
                if isinstance(v, SecretStr)
            ]
        else:
            from perpsignal_gateway.main import vendor_env_from_os

            held = list(vendor_env_from_os().values())
        if probe in held:
            found.add(name)
    return found


@pytest.mark.parametrize("service", ["ingestor", "gateway"])
def test_each_service_gets_exactly_the_vendor_keys_it_reads(
    service: str, compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """BINANCE_API_KEY reached the ingestor's container and pod, which never read it (only
    the gateway's pass-through sends it): a secret must reach only services that read it.
    Each registry variable is set alone and the service's own settings show whether they
    take it; compose and the Kubernetes pod hand over exactly those."""
    from perpsignal_connectors.keys import VENDOR_KEYS

    gen_k8s = load_script("gen_k8s")
    registry = {n for k in VENDOR_KEYS.values() for n in (k.env, *k.deprecated)}
    reads = _vendor_keys_read(service, monkeypatch)
    assert "COINGLASS_API_KEY" in reads  # the probe works
    assert set(app_services(compose)[service]["environment"]) & registry == reads
    assert set(gen_k8s.secret_keys(service)) & registry == reads
    if service == "ingestor":
        assert "BINANCE_API_KEY" not in reads
