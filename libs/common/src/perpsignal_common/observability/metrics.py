"""Prometheus metrics shared by every service, defined once.

Labels are bounded (topic, outcome, error type); never ids.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_IN = Counter(
    "perpsignal_consumer_messages_total",
    "Messages consumed, by outcome (ok, retried, dead_lettered)",
    ["service", "topic", "outcome"],
)
HANDLE_SECONDS = Histogram(
    "perpsignal_consumer_handle_duration_seconds",
    "Handler latency per message",
    ["service", "topic"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15),
)
HANDLER_ERRORS = Counter(
    "perpsignal_consumer_errors_total",
    "Handler failures, by error type",
    ["service", "topic", "error_type"],
)
DLQ_MESSAGES = Counter(
    "perpsignal_dlq_messages_total",
    "Messages sent to a dead-letter topic",
    ["service", "topic", "error_type"],
)
CONSUMER_LAG = Gauge(
    "perpsignal_consumer_lag_records",
    "High watermark minus position, per partition",
    ["service", "topic", "partition"],
)
MESSAGES_OUT = Counter(
    "perpsignal_producer_messages_total",
    "Events produced",
    ["service", "topic"],
)
PRODUCE_ERRORS = Counter(
    "perpsignal_producer_errors_total",
    "Produce failures after the client's own retries",
    ["service", "topic"],
)
