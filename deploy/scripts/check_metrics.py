"""Fail when an alert rule or a Grafana panel queries a metric that no code defines.

Why: an alert on a metric nobody exports never fires and a panel stays empty, silently.
The defined side is what the code really registers: every module of every package
(`libs/*/src`, `services/*/src`) is imported and prometheus-client's default registry
collected, so a metric counts only once a module creates it. The referenced side is parsed
with a real PromQL parser (`promql-parser`), so every vector selector of every expression is
seen, whatever functions and operators surround it.

    uv run python deploy/scripts/check_metrics.py
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
from collections.abc import Iterable
from pathlib import Path

import promql_parser
import yaml

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "compose" / "grafana" / "dashboards" / "perpsignal.json"
ALERTS = REPO / "deploy" / "compose" / "prometheus" / "alerts.yml"
PROMETHEUS_RULE = REPO / "deploy" / "k8s" / "base" / "monitoring" / "prometheusrule.yaml"
# Series Prometheus itself writes for every scrape target: no application code defines them
SCRAPE_SERIES = frozenset(
    {
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
    }
)
# The series names a metric family of each type exposes (prometheus-client's exposition)
SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


def import_every_module() -> None:
    """Import each module of every workspace package (metrics register on import)."""
    for src in sorted([*REPO.glob("libs/*/src"), *REPO.glob("services/*/src")]):
        for pkg in sorted(p for p in src.iterdir() if (p / "__init__.py").is_file()):
            root = importlib.import_module(pkg.name)
            for info in pkgutil.walk_packages(root.__path__, f"{pkg.name}."):
                if not info.name.endswith("__main__"):
                    importlib.import_module(info.name)


def defined_series() -> set[str]:
    """Return every series name the default registry can expose after importing the code."""
    from prometheus_client import REGISTRY

    import_every_module()
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.update(family.name + s for s in SUFFIXES.get(family.type, ("",)))
    return names


def referenced_series(expr: str) -> set[str]:
    """Return the metric names of every vector selector in one PromQL expression."""
    found: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            found.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def queries() -> list[tuple[str, str]]:
    """Return (where, PromQL) for every alert rule and dashboard panel target."""
    out: list[tuple[str, str]] = []
    rules = yaml.safe_load(PROMETHEUS_RULE.read_text())["spec"]["groups"]
    for source, groups in (
        (ALERTS, yaml.safe_load(ALERTS.read_text())["groups"]),
        (
            PROMETHEUS_RULE,
            rules,
        ),
    ):
        for group in groups:
            for rule in group["rules"]:
                name = rule.get("alert") or rule.get("record")
                out.append((f"{source.relative_to(REPO)} {name}", rule["expr"]))
    board = json.loads(DASHBOARD.read_text())
    out.extend(
        (f"{DASHBOARD.relative_to(REPO)} {panel['title']!r}", target["expr"])
        for panel in board["panels"]
        for target in panel.get("targets", [])
    )
    return out


def undefined(found: Iterable[tuple[str, str]], defined: set[str]) -> list[str]:
    """Return one message per (query, metric) whose metric is not defined."""
    return [
        f"{where}: {name} is defined by no code"
        for where, expr in found
        for name in sorted(referenced_series(expr) - defined - SCRAPE_SERIES)
    ]


def main() -> int:
    """Print every undefined metric; exit 1 when there is one."""
    found = queries()
    problems = undefined(found, defined_series())
    for p in problems:
        sys.stderr.write(p + "\n")
    if not problems:
        sys.stdout.write(f"metrics: all {len(found)} alert and panel queries use defined metrics\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
