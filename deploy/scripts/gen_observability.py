"""Write the Grafana dashboard and the alert rules from one definition.

Why generated: the same alert rules feed compose's Prometheus (`alerts.yml`) and the
Prometheus Operator in Kubernetes (`PrometheusRule`), and a dashboard is far easier to
review as a list of (title, query) than as 2,000 lines of Grafana JSON.

    uv run python deploy/scripts/gen_observability.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "compose" / "grafana" / "dashboards" / "perpsignal.json"
ALERTS = REPO / "deploy" / "compose" / "prometheus" / "alerts.yml"
PROMETHEUS_RULE = REPO / "deploy" / "k8s" / "base" / "monitoring" / "prometheusrule.yaml"
# The Grafana sidecar (kube-prometheus-stack, grafana chart) loads ConfigMaps with this label
GRAFANA_CONFIGMAP = REPO / "deploy" / "k8s" / "base" / "monitoring" / "grafana-dashboards.yaml"

R = "[5m]"

# (row title, [(panel title, unit, [(legend, PromQL)])])
ROWS: list[tuple[str, list[tuple[str, str, list[tuple[str, str]]]]]] = [
    (
        "Pipeline",
        [
            (
                "Events produced /s by topic",
                "ops",
                [
                    (
                        "{{service}} → {{topic}}",
                        f"sum by (service, topic) (rate(perpsignal_producer_messages_total{R}))",
                    )
                ],
            ),
            (
                "Events consumed /s by outcome",
                "ops",
                [
                    (
                        "{{service}} {{outcome}}",
                        f"sum by (service, outcome) (rate(perpsignal_consumer_messages_total{R}))",
                    )
                ],
            ),
            (
                "End-to-end latency (exchange time → stage), p50 / p95",
                "s",
                [
                    (
                        "p50 {{stage}}",
                        "histogram_quantile(0.5, sum by (le, stage) "
                        f"(rate(perpsignal_pipeline_latency_seconds_bucket{R})))",
                    ),
                    (
                        "p95 {{stage}}",
                        "histogram_quantile(0.95, sum by (le, stage) "
                        f"(rate(perpsignal_pipeline_latency_seconds_bucket{R})))",
                    ),
                ],
            ),
            (
                "Handler latency p95 by service",
                "s",
                [
                    (
                        "{{service}} {{topic}}",
                        "histogram_quantile(0.95, sum by (le, service, topic) "
                        f"(rate(perpsignal_consumer_handle_duration_seconds_bucket{R})))",
                    )
                ],
            ),
        ],
    ),
    (
        "Kafka health",
        [
            (
                "Consumer lag (records) by service and topic",
                "short",
                [
                    (
                        "{{service}} {{topic}}",
                        "sum by (service, topic) (perpsignal_consumer_lag_records)",
                    )
                ],
            ),
            (
                "Dead-lettered messages (15 min)",
                "short",
                [
                    (
                        "{{service}} {{topic}} {{error_type}}",
                        "sum by (service, topic, error_type) "
                        "(increase(perpsignal_dlq_messages_total[15m]))",
                    )
                ],
            ),
            (
                "Handler errors /s by type",
                "ops",
                [
                    (
                        "{{service}} {{error_type}}",
                        f"sum by (service, error_type) (rate(perpsignal_consumer_errors_total{R}))",
                    )
                ],
            ),
            (
                "Produce errors /s",
                "ops",
                [
                    (
                        "{{service}} {{topic}}",
                        f"sum by (service, topic) (rate(perpsignal_producer_errors_total{R}))",
                    )
                ],
            ),
        ],
    ),
    (
        "Vendors",
        [
            (
                "Vendor errors /s by kind",
                "ops",
                [
                    (
                        "{{vendor}} {{kind}}",
                        f"sum by (vendor, kind) (rate(perpsignal_vendor_errors_total{R}))",
                    )
                ],
            ),
            (
                "Vendor quota used (rate-limit state)",
                "short",
                [
                    (
                        "{{vendor}} {{quota}}",
                        "max by (vendor, quota) (perpsignal_vendor_weight_used)",
                    )
                ],
            ),
            (
                "Circuit state (0 closed, 1 half-open, 2 open)",
                "short",
                [("{{vendor}}", "max by (vendor) (perpsignal_vendor_circuit_state)")],
            ),
            (
                "Vendor latency p95",
                "s",
                [
                    (
                        "{{vendor}}",
                        "histogram_quantile(0.95, sum by (le, vendor) "
                        f"(rate(perpsignal_vendor_request_duration_seconds_bucket{R})))",
                    )
                ],
            ),
        ],
    ),
    (
        "Judge (LLM)",
        [
            (
                "LLM latency p50 / p95",
                "s",
                [
                    (
                        "p50",
                        "histogram_quantile(0.5, sum by (le) "
                        f"(rate(perpsignal_judge_llm_latency_seconds_bucket{R})))",
                    ),
                    (
                        "p95",
                        "histogram_quantile(0.95, sum by (le) "
                        f"(rate(perpsignal_judge_llm_latency_seconds_bucket{R})))",
                    ),
                ],
            ),
            (
                "LLM tokens per minute",
                "short",
                [
                    (
                        "{{kind}}",
                        f"60 * sum by (kind) (rate(perpsignal_judge_llm_tokens_total{R}))",
                    )
                ],
            ),
            (
                "Rule fallbacks /s by reason",
                "ops",
                [
                    (
                        "{{reason}}",
                        f"sum by (reason) (rate(perpsignal_judge_fallbacks_total{R}))",
                    )
                ],
            ),
            (
                "Verdicts /s",
                "ops",
                [
                    (
                        "{{verdict}} ({{judge}})",
                        f"sum by (verdict, judge) (rate(perpsignal_judge_verdicts_total{R}))",
                    )
                ],
            ),
        ],
    ),
    (
        "Gateway",
        [
            (
                "HTTP requests /s by route and status",
                "reqps",
                [
                    (
                        "{{route}} {{status}}",
                        f"sum by (route, status) (rate(perpsignal_gateway_http_requests_total{R}))",
                    )
                ],
            ),
            (
                "HTTP latency p95 by route",
                "s",
                [
                    (
                        "{{route}}",
                        "histogram_quantile(0.95, sum by (le, route) "
                        f"(rate(perpsignal_gateway_http_request_duration_seconds_bucket{R})))",
                    )
                ],
            ),
            (
                "WebSocket clients and drops",
                "short",
                [
                    ("clients {{stream}}", "sum by (stream) (perpsignal_gateway_ws_clients)"),
                    (
                        "dropped (15 min) {{stream}}",
                        "sum by (stream) "
                        "(increase(perpsignal_gateway_ws_dropped_clients_total[15m]))",
                    ),
                ],
            ),
            (
                "Refused requests /s (auth, rate limit)",
                "reqps",
                [
                    ("auth", f"sum(rate(perpsignal_gateway_auth_failures_total{R}))"),
                    ("rate limited", f"sum(rate(perpsignal_gateway_rate_limited_total{R}))"),
                ],
            ),
        ],
    ),
    (
        "Ingestor",
        [
            (
                "Events published /s by source and type",
                "ops",
                [
                    (
                        "{{source}} {{type}}",
                        f"sum by (source, type) (rate(perpsignal_ingestor_events_total{R}))",
                    )
                ],
            ),
            (
                "Source errors /s by kind",
                "ops",
                [
                    (
                        "{{source}} {{kind}}",
                        f"sum by (source, kind) (rate(perpsignal_ingestor_source_errors_total{R}))",
                    )
                ],
            ),
            (
                "Seconds since each source last succeeded",
                "s",
                [
                    (
                        "{{source}}",
                        "time() - max by (source) "
                        "(perpsignal_ingestor_source_last_success_timestamp_seconds)",
                    )
                ],
            ),
            (
                "Tracked symbols and duplicates skipped /s",
                "short",
                [
                    ("symbols", "sum(perpsignal_ingestor_tracked_symbols)"),
                    (
                        "duplicates {{source}}",
                        f"sum by (source) (rate(perpsignal_ingestor_duplicates_total{R}))",
                    ),
                ],
            ),
            (
                "Shards: symbols and partitions owned per replica (leader = partition 0)",
                "short",
                [
                    ("{{instance}} symbols", "perpsignal_ingestor_owned_symbols"),
                    ("{{instance}} partitions", "perpsignal_ingestor_owned_partitions"),
                    ("{{instance}} leader", "perpsignal_ingestor_shard_leader"),
                ],
            ),
        ],
    ),
    (
        "Notifications",
        [
            (
                "Telegram sends /s by outcome",
                "ops",
                [
                    (
                        "{{kind}} {{outcome}}",
                        f"sum by (kind, outcome) (rate(perpsignal_notifier_sends_total{R}))",
                    )
                ],
            ),
            (
                "Send retries and suppressed alerts /s",
                "ops",
                [
                    (
                        "retry {{reason}}",
                        f"sum by (reason) (rate(perpsignal_notifier_send_retries_total{R}))",
                    ),
                    (
                        "suppressed {{reason}}",
                        f"sum by (reason) (rate(perpsignal_notifier_suppressed_total{R}))",
                    ),
                ],
            ),
        ],
    ),
]

# (name, expr, for, severity, summary)
ALERT_RULES: list[tuple[str, str, str, str, str]] = [
    (
        "PerpSignalServiceDown",
        'up{job=~"perpsignal.*"} == 0',
        "2m",
        "critical",
        "{{ $labels.service }} has not answered /metrics for 2 minutes",
    ),
    (
        "PerpSignalConsumerLagHigh",
        "sum by (service, topic) (perpsignal_consumer_lag_records) > 5000",
        "10m",
        "warning",
        "{{ $labels.service }} is {{ $value }} records behind on {{ $labels.topic }}",
    ),
    (
        "PerpSignalDeadLetters",
        "sum by (service, topic) (increase(perpsignal_dlq_messages_total[15m])) > 0",
        "0m",
        "warning",
        "{{ $labels.service }} dead-lettered messages from {{ $labels.topic }}",
    ),
    (
        "PerpSignalHandlerErrors",
        f"sum by (service) (rate(perpsignal_consumer_errors_total{R})) > 1",
        "10m",
        "warning",
        "{{ $labels.service }} handlers fail more than once a second",
    ),
    (
        "PerpSignalProduceErrors",
        f"sum by (service) (rate(perpsignal_producer_errors_total{R})) > 0",
        "5m",
        "critical",
        "{{ $labels.service }} cannot produce to Kafka",
    ),
    (
        "PerpSignalVendorCircuitOpen",
        "max by (vendor) (perpsignal_vendor_circuit_state) == 2",
        "10m",
        "warning",
        "circuit to {{ $labels.vendor }} open for 10 minutes: its factors are neutral",
    ),
    (
        "PerpSignalVendorRateLimited",
        "sum by (vendor) (increase(perpsignal_vendor_errors_total"
        '{kind=~"rate_limited|banned"}[15m])) > 0',
        "0m",
        "warning",
        "{{ $labels.vendor }} answered 429/418: the ingestor is over its quota",
    ),
    (
        "PerpSignalIngestorNoShardLeader",
        "sum(perpsignal_ingestor_shard_leader) < 1",
        "10m",
        "warning",
        "no ingestor replica holds partition 0 of commands.v1: market-wide sources (fear & "
        "greed, CoinGecko, LunarCrush, Coinglass, CoinAPI, listings) are not polled",
    ),
    (
        "PerpSignalJudgeFallingBack",
        f"sum(rate(perpsignal_judge_fallbacks_total{R})) "
        f"/ clamp_min(sum(rate(perpsignal_judge_verdicts_total{R})), 1e-9) > 0.5",
        "15m",
        "warning",
        "more than half the verdicts fall back to rules (LLM slow, failing or over budget)",
    ),
    (
        "PerpSignalPipelineSlow",
        "histogram_quantile(0.95, sum by (le, stage) "
        f"(rate(perpsignal_pipeline_latency_seconds_bucket{R}))) > 30",
        "10m",
        "warning",
        "p95 latency from exchange time to {{ $labels.stage }} above 30 s",
    ),
    (
        "PerpSignalTelegramFailing",
        f'sum(rate(perpsignal_notifier_sends_total{{outcome="failed"}}{R})) '
        f"/ clamp_min(sum(rate(perpsignal_notifier_sends_total{R})), 1e-9) > 0.1",
        "10m",
        "warning",
        "more than 10 % of Telegram sends fail after their retries",
    ),
]


# `up == 0` needs a target: when a service has no pod at all (scaled to 0, every pod Pending
# or evicted, a deleted Deployment) Kubernetes discovery has nothing to scrape and nothing
# fires. `absent` does; the selector matches compose's `service` label (`ingestor`) and the
# ServiceMonitor's (the Service, `perpsignal-ingestor`). `absent` keeps no label of a regex
# matcher: label_replace adds `service` (for routing, like every other rule's alerts).
SERVICES = ("ingestor", "scorer", "judge", "outcomes", "notifier", "gateway")
ALERT_RULES += [
    (
        f"PerpSignal{svc.capitalize()}Absent",
        f'label_replace(absent(up{{job=~"perpsignal.*", service=~"(perpsignal-)?{svc}"}}), '
        f'"service", "{svc}", "", "")',
        "5m",
        "critical",
        f"no {svc} instance has been scraped for 5 minutes: none is running or discovered",
    )
    for svc in SERVICES
]


def dashboard() -> dict[str, Any]:
    """Return the Grafana dashboard model (schema version 39, Grafana 11)."""
    panels: list[dict[str, Any]] = []
    pid = 1
    y = 0
    for row_title, row_panels in ROWS:
        panels.append(
            {
                "id": pid,
                "type": "row",
                "title": row_title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        pid += 1
        y += 1
        for i, (title, unit, targets) in enumerate(row_panels):
            panels.append(
                {
                    "id": pid,
                    "type": "timeseries",
                    "title": title,
                    "datasource": {"type": "prometheus", "uid": "prometheus"},
                    "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": y + 8 * (i // 2)},
                    "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                    "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
                    "targets": [
                        {
                            "refId": chr(ord("A") + j),
                            "datasource": {"type": "prometheus", "uid": "prometheus"},
                            "expr": expr,
                            "legendFormat": legend,
                        }
                        for j, (legend, expr) in enumerate(targets)
                    ],
                }
            )
            pid += 1
        y += 8 * ((len(row_panels) + 1) // 2)
    return {
        "uid": "perpsignal-overview",
        "title": "PerpSignal overview",
        "tags": ["perpsignal"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": panels,
    }


def rule_groups() -> list[dict[str, Any]]:
    """Return the Prometheus rule groups (same shape in alerts.yml and PrometheusRule)."""
    return [
        {
            "name": "perpsignal",
            "rules": [
                {
                    "alert": name,
                    "expr": expr,
                    "for": for_,
                    "labels": {"severity": severity},
                    "annotations": {"summary": summary},
                }
                for name, expr, for_, severity, summary in ALERT_RULES
            ],
        }
    ]


class _BlockDumper(yaml.SafeDumper):  # type: ignore[misc]
    """Write multi-line strings as `|` blocks, so the dashboard JSON stays readable."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def rendered() -> dict[Path, str]:
    """Return every generated file with its content."""
    header = "# GENERATED by deploy/scripts/gen_observability.py: edit the script, not this.\n"
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "perpsignal", "labels": {"app.kubernetes.io/part-of": "perpsignal"}},
        "spec": {"groups": rule_groups()},
    }
    dump = {"sort_keys": False, "allow_unicode": True, "width": 100}
    board = json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "perpsignal-grafana-dashboards",
            "labels": {"grafana_dashboard": "1", "app.kubernetes.io/part-of": "perpsignal"},
        },
        "data": {"perpsignal.json": board},
    }
    return {
        DASHBOARD: board,
        GRAFANA_CONFIGMAP: header + yaml.dump(configmap, Dumper=_BlockDumper, **dump),
        ALERTS: header + yaml.safe_dump({"groups": rule_groups()}, **dump),
        PROMETHEUS_RULE: header + yaml.safe_dump(rule, **dump),
    }


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, verify) the dashboard and alert files."""
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
