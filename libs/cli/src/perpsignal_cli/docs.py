"""Generate the configuration reference from the code: the one settings-doc generator.

Every service's settings class is introspected (aliases, `env_prefix` and nested settings
groups resolved the way pydantic-settings reads them), so the documentation cannot drift from
what the services actually read. `perpsignal docs` rewrites `.env.example`, the README tables,
`deploy/compose/.env.example` and compose.yaml's per-service environments (`service_reads`);
contract and deploy tests fail while any is stale, and the deploy tests check compose sets only
variables a service reads.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic_settings import BaseSettings

REPO = Path(__file__).resolve().parents[4]
COMPOSE_ENV_EXAMPLE = REPO / "deploy" / "compose" / ".env.example"
SERVICES = ("ingestor", "scorer", "judge", "outcomes", "notifier", "gateway")
COMMON = ("KafkaSettings", "DatabaseSettings", "OpsSettings", "ServiceSettings")

# Read by compose itself (interpolation), not by a service
COMPOSE_VARS: dict[str, tuple[str, str]] = {
    "COMPOSE_PROJECT_NAME": ("perpsignal", "compose project (prefix of containers and volumes)"),
    "PERPSIGNAL_TAG": ("dev", "image tag of every perpsignal/* image"),
    "POSTGRES_PASSWORD": ("perpsignal", "password of the compose PostgreSQL (and DATABASE_URL)"),
    "GRAFANA_ADMIN_PASSWORD": ("admin", "Grafana admin password"),
    "KAFKA_CLUSTER_ID": ("4L6g3nShT-eMCtK--X86sw", "KRaft cluster id of the compose broker"),
    "KAFKA_HOST_PORT": ("9094", "host port of Kafka's EXTERNAL listener (localhost)"),
    "POSTGRES_HOST_PORT": ("5432", "host port of PostgreSQL"),
    "GATEWAY_HOST_PORT": ("8000", "host port of the gateway"),
    "PROMETHEUS_HOST_PORT": ("9090", "host port of Prometheus"),
    "GRAFANA_HOST_PORT": ("3000", "host port of Grafana"),
}


@dataclass(frozen=True)
class EnvVar:
    """One environment variable a service reads."""

    name: str
    default: str
    description: str
    secret: bool
    services: tuple[str, ...]


def _env_names(cls: type[BaseModel], name: str, field: Any) -> list[str]:
    # pydantic-settings: an alias is the whole variable name; otherwise env_prefix + field
    alias = field.validation_alias
    if isinstance(alias, str):
        return [alias.upper()]
    if alias is not None and hasattr(alias, "choices"):
        return [str(c).upper() for c in alias.choices if isinstance(c, str)]
    if field.alias:
        return [field.alias.upper()]
    prefix = str(cls.model_config.get("env_prefix", "") or "")
    return [(prefix + name).upper()]


def _default_text(field: Any) -> str:
    if field.default_factory is not None:
        try:
            value = field.default_factory()
        except TypeError:
            return ""
    else:
        value = field.default
    if value is None or value.__class__.__name__ == "PydanticUndefinedType":
        return ""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
        # a default URL may carry a dev password; show it, it is the documented dev default
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, BaseModel):
        return ""
    return str(getattr(value, "value", value))


def _walk(cls: type[BaseModel]) -> list[tuple[str, str, str, bool]]:
    out = []
    for name, field in cls.model_fields.items():
        ann = field.annotation
        if (
            isinstance(ann, type)
            and issubclass(ann, BaseSettings | BaseModel)
            and not issubclass(ann, SecretStr)
        ):
            out += _walk(ann)
            continue
        secret = "SecretStr" in str(ann)
        for env in _env_names(cls, name, field):
            out.append((env, _default_text(field), (field.description or "").strip(), secret))
    return out


def settings_classes() -> dict[str, type[BaseSettings]]:
    """Return {service: its settings class} for every service that has one."""
    found: dict[str, type[BaseSettings]] = {}
    for svc in SERVICES:
        try:
            mod = importlib.import_module(f"perpsignal_{svc}.settings")
        except ModuleNotFoundError:
            continue
        for obj in vars(mod).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, BaseSettings)
                and obj.__module__ == mod.__name__
                and obj.__name__.endswith("Settings")
                and obj.__name__.lower().startswith(svc)
            ):
                found[svc] = obj
    return found


def collect() -> list[EnvVar]:
    """Return every environment variable any service reads, merged across services."""
    merged: dict[str, dict[str, Any]] = {}
    for svc, cls in settings_classes().items():
        for env, default, desc, secret in _walk(cls):
            if env == "SERVICE_NAME":
                continue
            item = merged.setdefault(
                env, {"default": default, "desc": desc, "secret": secret, "services": []}
            )
            item["services"].append(svc)
            item["desc"] = item["desc"] or desc
    for var in catalogue_vars().values():
        item = merged.setdefault(
            var.name,
            {"default": var.default, "desc": var.description, "secret": var.secret, "services": []},
        )
        item["services"] += [s for s in var.services if s not in item["services"]]
        item["desc"] = item["desc"] or var.description
    return [
        EnvVar(k, v["default"], v["desc"], v["secret"], tuple(v["services"]))
        for k, v in sorted(merged.items(), key=lambda kv: (_group(kv[0]), kv[0]))
    ]


def catalogue_vars() -> dict[str, EnvVar]:
    """Return what the gateway reads by its vendor catalogues' names, beside its settings
    fields: each vendor's base URL, key and `/invoke` budget. Without them the configuration
    table and `.env.example` (which claim every setting) missed the budgets and the Fear &
    Greed pass-through's URL, and named only the ingestor as a reader of the keys and URLs."""
    from perpsignal_connectors.catalog import load_catalogs

    out: dict[str, EnvVar] = {}
    for c in load_catalogs():
        out[c.base_url_env] = EnvVar(
            c.base_url_env, c.base_url, f"{c.title} base URL", False, ("gateway",)
        )
        # perpsignal_gateway.vendors.budget_env (tests/deploy checks they agree)
        budget = f"GATEWAY_{c.name.upper()}_BUDGET_PER_MIN"
        out[budget] = EnvVar(
            budget,
            str(c.budget_per_min),
            f"Calls per minute each gateway process makes for `/invoke {c.name}.*`, all keys "
            "together (then 429 `vendor_budget_exhausted`)",
            False,
            ("gateway",),
        )
        if c.key_env:
            out[c.key_env] = EnvVar(c.key_env, "", f"{c.title} key", True, ("gateway",))
    return out


def _group(name: str) -> int:
    for i, prefix in enumerate(("KAFKA_", "DATABASE_", "OPS_", "LOG_", "ENVIRONMENT")):
        if name.startswith(prefix):
            return i
    return 10


def _services_text(v: EnvVar) -> str:
    return "all" if len(v.services) == len(settings_classes()) else ", ".join(v.services)


# shown commented out: set, they would stop `perpsignal up` choosing them (set -a; . .env.example)
# unset means more than the default text says (GATEWAY_PUBLIC_PATHS: /metrics is added while
# the gateway port serves it), so `set -a; . .env.example` must leave these unset
UNSET_IN_ENV_EXAMPLE = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "DATABASE_URL",
    "GATEWAY_PUBLIC_URL",
    "GATEWAY_PUBLIC_PATHS",
)


def render_env_example(items: list[EnvVar]) -> str:
    """Return the .env.example content: every variable with its safe default."""
    lines = [
        "# Every environment variable PerpSignal reads, with its safe default.",
        "# Generated by `perpsignal docs` from the services' settings classes.",
        "# Unset KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL make `perpsignal up` start the",
        "# embedded broker and database; everything else works with these defaults.",
        "# Unset GATEWAY_PUBLIC_URL makes `perpsignal up` publish each gateway's own URL",
        "# (it moves to a free port when 8000 is taken). Unset GATEWAY_PUBLIC_PATHS adds",
        "# /metrics while GATEWAY_OPS_PORT is 0.",
        "# Nothing reads this file or a .env by itself: cp .env.example .env, edit, then",
        "# set -a; . ./.env; set +a; make up",
        "",
    ]
    for v in items:
        desc = f"{v.description} " if v.description else ""
        lines.append(f"# {desc}[{_services_text(v)}]{' (secret)' if v.secret else ''}")
        value = "" if v.secret and v.default == "" else v.default
        commented = v.name in UNSET_IN_ENV_EXAMPLE
        lines.append(f"{'# ' if commented else ''}{v.name}={value}")
    return "\n".join(lines) + "\n"


def render_table(items: list[EnvVar]) -> str:
    """Return the README configuration table."""
    rows = ["| variable | default | services | meaning |", "|---|---|---|---|"]
    for v in items:
        default = "*(unset)*" if v.default == "" else f"`{v.default}`"
        meaning = v.description.replace("|", "\\|") + (" (secret)" if v.secret else "")
        rows.append(f"| `{v.name}` | {default} | {_services_text(v)} | {meaning} |")
    return "\n".join(rows)


def replace_block(text: str, marker: str, content: str) -> str:
    """Replace the text between `<!-- marker:start -->` and `<!-- marker:end -->`."""
    pattern = re.compile(rf"(<!-- {marker}:start -->\n)(?:.*?\n)?(<!-- {marker}:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"README has no {marker} markers")
    return pattern.sub(lambda m: m.group(1) + content + "\n" + m.group(2), text)


def render_topics() -> str:
    """Return the README topics table from the topic registry."""
    from perpsignal_common.events.registry import events_for_topic
    from perpsignal_common.events.topics import TOPIC_SPECS

    rows = ["| topic | key | partitions | retention | event types |", "|---|---|---:|---|---|"]
    for s in TOPIC_SPECS:
        types = ", ".join(f"`{c.model_fields['type'].default}`" for c in events_for_topic(s.name))
        rows.append(
            f"| `{s.name}` | {s.key} | {s.partitions} | {s.retention_ms // 86_400_000} d"
            f" | {types} |"
        )
    rows.append(
        "| `<topic>.dlq` | as source | as source | 30 d | original bytes; error and "
        "origin in `dlq.*` headers |"
    )
    return "\n".join(rows)


def _settings_module_classes(service: str) -> list[type[BaseSettings]] | None:
    try:
        module = importlib.import_module(f"perpsignal_{service}.settings")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith(f"perpsignal_{service}"):
            return None
        raise
    return [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, BaseSettings)
        and obj.__module__ == module.__name__
    ]


def _as_vars(cls: type[BaseModel], services: tuple[str, ...]) -> dict[str, EnvVar]:
    return {
        env: EnvVar(env, default, desc, secret, services)
        for env, default, desc, secret in _walk(cls)
    }


def service_env_vars(service: str) -> dict[str, EnvVar] | None:
    """Return every env var `service` reads (None when it has no settings module yet)."""
    classes = _settings_module_classes(service)
    if classes is None:
        return None
    out: dict[str, EnvVar] = {}
    for cls in classes:
        out.update(_as_vars(cls, (service,)))
    return out


def common_env_vars() -> dict[str, EnvVar]:
    """Return the env vars of the shared settings groups."""
    common = importlib.import_module("perpsignal_common.settings")
    out: dict[str, EnvVar] = {}
    for name in COMMON:
        out.update(_as_vars(getattr(common, name), SERVICES))
    return out


# Services that look vendor keys, base URLs and budgets up by the names their vendor catalogues
# give, at run time, beyond their settings fields
CATALOGUE_READERS = ("ingestor", "gateway")
# Read from the environment beside the settings fields: deprecated names still honoured
DEPRECATED_READS = {"notifier": {"NOTIFIER_SUPPRESS_SKIP_AVOID"}}
COMPOSE_FILE = REPO / "deploy" / "compose" / "compose.yaml"
COMPOSE_ENV_START = "# >>> service environments: GENERATED by `perpsignal docs`, do not edit"
COMPOSE_ENV_END = "# <<< service environments"


def catalogue_env_names(service: str) -> set[str]:
    """Return the variables `service` reads by vendor catalogue name (keys, URLs, budgets)."""
    if service not in CATALOGUE_READERS:
        return set()
    from perpsignal_connectors.catalog import load_catalogs
    from perpsignal_connectors.keys import key_names_read_by

    # only the keys the registry says it reads: BINANCE_API_KEY reached the ingestor, which
    # never reads it
    names = key_names_read_by(service)
    if service == "gateway":
        for c in load_catalogs():
            # perpsignal_gateway.vendors.budget_env (tests/deploy checks they agree)
            names |= {c.base_url_env, f"GATEWAY_{c.name.upper()}_BUDGET_PER_MIN"}
    return names


def service_reads(service: str) -> set[str]:
    """Return every variable a container of `service` reads: what compose passes it."""
    found = set(service_env_vars(service) or {})  # the shared groups its settings hold
    extra = catalogue_env_names(service) | DEPRECATED_READS.get(service, set())
    return (found | extra) - {"SERVICE_NAME"}


def render_compose_env(fixed: set[str]) -> str:
    """Return the compose block of one anchor per service: each variable it reads, no value.

    A variable listed without a value takes it from the shell or `.env` and stays unset when
    neither has it, so a container gets exactly the variables its service reads (the notifier
    never sees the OpenAI key, the ingestor never the bot token), as the Kubernetes pods.
    `fixed` (what `x-kafka-env` sets) is left out: YAML libraries disagree on which of two
    merged anchors naming one key wins.
    """
    # what every service reads (Kafka, ops, logging), once; the rest per service
    common = set.intersection(*(service_reads(svc) for svc in SERVICES)) - fixed
    lines = [COMPOSE_ENV_START, "x-env-common: &env-common"]
    lines += [f"  {name}:" for name in sorted(common)]
    for svc in SERVICES:
        lines.append(f"x-env-{svc}: &env-{svc}")
        lines += [f"  {name}:" for name in sorted(service_reads(svc) - common - fixed)]
    lines.append(COMPOSE_ENV_END)
    return "\n".join(lines)


def replace_compose_env(text: str) -> str:
    """Return the compose file with its generated block rewritten."""
    start, end = text.find(COMPOSE_ENV_START), text.find(COMPOSE_ENV_END)
    if start < 0 or end < start:
        raise SystemExit(f"{COMPOSE_FILE} has no generated service-environment block")
    # the keys of the block mapping `x-kafka-env:` (its two-space indented lines)
    block = re.search(r"^x-kafka-env:.*\n((?:  .*\n|\s*\n)*)", text, re.M)
    fixed = set(re.findall(r"^  ([A-Z][A-Z0-9_]*):", block.group(1), re.M)) if block else set()
    return text[:start] + render_compose_env(fixed) + text[end + len(COMPOSE_ENV_END) :]


def render_compose_env_example() -> str:
    """Return `deploy/compose/.env.example`: compose's own variables, then each service's."""
    lines = [
        "# PerpSignal compose environment. Copy to `.env` (never commit it) and fill in what",
        "# you have: every value is optional and shown with its default. Keyed sources,",
        "# the LLM judge and Telegram switch on when their key is set.",
        "# GENERATED by `perpsignal docs` from the settings classes; tests fail while stale.",
        "",
        "## compose itself",
    ]
    for name, (default, desc) in COMPOSE_VARS.items():
        lines += [f"# {desc}", f"{name}={default}"]
    seen = set(COMPOSE_VARS)
    sections = [("shared by every service", common_env_vars())]
    for svc in SERVICES:
        found = service_env_vars(svc)
        if found and svc == "gateway":
            found = {**catalogue_vars(), **found}
        if found:
            sections.append((svc, found))
    for title, found in sections:
        new = [v for k, v in sorted(found.items()) if k not in seen]
        if not new:
            continue
        lines += ["", f"## {title}"]
        for var in new:
            seen.add(var.name)
            if var.description:
                lines.append(f"# {var.description}")
            lines.append(f"{var.name}={'' if var.secret else var.default}")
    return "\n".join(lines) + "\n"


def _write_whole(path: Path, text: str) -> None:
    """Write `path` beside it and rename it over: an interrupted run never leaves half a
    README.md (a truncated one loses everything after the generated tables)."""
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        partial.write_text(text)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    """Rewrite (or with --check, verify) both .env.example files and the README tables."""
    parser = argparse.ArgumentParser(prog="perpsignal docs")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    items = collect()
    env_path, readme_path = REPO / ".env.example", REPO / "README.md"
    env_new = render_env_example(items)
    try:
        readme = readme_path.read_text()
    except OSError as exc:  # an installed package, not a source checkout
        print(
            f"perpsignal docs: cannot read {readme_path} ({exc.strerror or exc}); it regenerates "
            "the files of a source checkout: run it there",
            file=sys.stderr,
        )
        return 1
    readme_new = replace_block(
        replace_block(readme, "config", render_table(items)), "topics", render_topics()
    )
    compose_new = render_compose_env_example()
    compose_file = COMPOSE_FILE.read_text()
    compose_file_new = replace_compose_env(compose_file)
    stale = []
    if not env_path.exists() or env_path.read_text() != env_new:
        stale.append(".env.example")
    if not COMPOSE_ENV_EXAMPLE.exists() or COMPOSE_ENV_EXAMPLE.read_text() != compose_new:
        stale.append("deploy/compose/.env.example")
    if readme != readme_new:
        stale.append("README.md")
    if compose_file != compose_file_new:
        stale.append("deploy/compose/compose.yaml")
    if args.check:
        for s in stale:
            print(f"stale: {s} (run `perpsignal docs`)")
        return 1 if stale else 0
    for path, text in (
        (env_path, env_new),
        (readme_path, readme_new),
        (COMPOSE_ENV_EXAMPLE, compose_new),
        (COMPOSE_FILE, compose_file_new),
    ):
        try:
            _write_whole(path, text)
        except OSError as exc:  # a read-only checkout
            why = exc.strerror or exc
            print(f"perpsignal docs: cannot write {path}: {why}", file=sys.stderr)
            return 1
    print(
        f"wrote .env.example ({len(items)} variables), deploy/compose/.env.example and "
        "compose.yaml's service environments, README"
    )
    return 0
