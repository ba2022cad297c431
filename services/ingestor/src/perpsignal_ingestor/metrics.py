"""Ingestor metrics (vendor-level ones live in perpsignal_connectors.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EVENTS_PUBLISHED = Counter(
    "perpsignal_ingestor_events_total", "Events published, by source and type", ["source", "type"]
)
EVENTS_SKIPPED = Counter(
    "perpsignal_ingestor_duplicates_total",
    "Events not republished because the same event id was already published",
    ["source"],
)
SOURCE_ERRORS = Counter(
    "perpsignal_ingestor_source_errors_total",
    "Failed polls or requests per source, by error kind",
    ["source", "kind"],
)
SOURCE_LAST_SUCCESS = Gauge(
    "perpsignal_ingestor_source_last_success_timestamp_seconds",
    "Unix time of the last successful poll per source",
    ["source"],
)
TRACKED_SYMBOLS = Gauge(
    "perpsignal_ingestor_tracked_symbols", "Symbols this replica polled on Binance at its last poll"
)
REJECTED_EVENTS = Counter(
    "perpsignal_ingestor_rejected_events_total",
    "Events refused (never published) because a value breaks the event contract, by source "
    "and reason (`field:error`)",
    ["source", "reason"],
)
OWNED_SYMBOLS = Gauge(
    "perpsignal_ingestor_owned_symbols",
    "Tracked symbols this replica polls (its shard of the universe; see /shards)",
)
OWNED_PARTITIONS = Gauge(
    "perpsignal_ingestor_owned_partitions",
    "Partitions of commands.v1 assigned to this replica (its shards)",
)
