"""Vendor metrics, defined once: requests, errors by kind, latency, weight used, circuit state.

Labels are bounded: vendor and endpoint *names* from the constants, never URLs or symbols.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

VENDOR_REQUESTS = Counter(
    "perpsignal_vendor_requests_total",
    "Vendor HTTP requests, by outcome (ok, error)",
    ["vendor", "endpoint", "outcome"],
)
VENDOR_ERRORS = Counter(
    "perpsignal_vendor_errors_total",
    "Vendor failures by kind (rate_limited, banned, transient, permanent, malformed, timeout)",
    ["vendor", "endpoint", "kind"],
)
VENDOR_LATENCY = Histogram(
    "perpsignal_vendor_request_duration_seconds",
    "Vendor HTTP latency",
    ["vendor", "endpoint"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
VENDOR_WEIGHT_USED = Gauge(
    "perpsignal_vendor_weight_used",
    "Units used in the current window of a vendor quota (server-corrected when reported)",
    ["vendor", "quota"],
)
VENDOR_CIRCUIT_STATE = Gauge(
    "perpsignal_vendor_circuit_state",
    "Circuit state per vendor: 0 closed, 1 half-open, 2 open",
    ["vendor"],
)
STREAM_RECONNECTS = Counter(
    "perpsignal_vendor_stream_reconnects_total",
    "WebSocket reconnections per stream",
    ["vendor", "stream"],
)
STREAM_MESSAGES = Counter(
    "perpsignal_vendor_stream_messages_total",
    "WebSocket messages by outcome (ok, malformed)",
    ["vendor", "stream", "outcome"],
)
