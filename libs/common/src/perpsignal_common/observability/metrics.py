"""Prometheus metrics shared by every service, defined once.

Labels are bounded (topic, outcome, error type); never ids.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector


class _HistogramChild:
    """One label set of a `FastHistogram`: bucket counts and a sum, no lock."""

    __slots__ = ("_bounds", "counts", "total")

    def __init__(self, bounds: list[float]) -> None:
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last slot is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        """Count `value` in its bucket (upper bounds are inclusive, as in Prometheus)."""
        self.counts[bisect.bisect_left(self._bounds, value)] += 1
        self.total += value


class FastHistogram(Collector):
    """A labelled Prometheus histogram whose `observe` is one bisect and two additions.

    prometheus-client's Histogram takes a lock and walks every bucket per observation,
    about 1 us; the consumer loop observes every record, and that alone was a fifth of its
    whole per-record budget. Observations come from the event-loop thread only; a scrape
    (another thread) copies each child's counts at once, so its buckets are cumulative and
    consistent with each other (the sum may lead or lag by the observation in progress).
    Exposition is the standard histogram family: `_bucket{le=...}`, `_count`, `_sum`.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Iterable[float],
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        self._name = name
        self._doc = documentation
        self._labelnames = tuple(labelnames)
        self._bounds = sorted(float(b) for b in buckets if not math.isinf(b))
        self._children: dict[tuple[str, ...], _HistogramChild] = {}
        if registry is not None:
            registry.register(self)

    def labels(self, *values: str) -> _HistogramChild:
        """Return the child for one label set (create it on first use)."""
        if len(values) != len(self._labelnames):
            raise ValueError(f"{self._name} takes labels {self._labelnames}, got {values}")
        key = tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            child = self._children.setdefault(key, _HistogramChild(self._bounds))
        return child

    def describe(self) -> list[Metric]:
        """Describe the family without samples (registration checks names with it)."""
        return [HistogramMetricFamily(self._name, self._doc, labels=self._labelnames)]

    def collect(self) -> list[Metric]:
        """Return the family with one cumulative bucket series per label set."""
        family = HistogramMetricFamily(self._name, self._doc, labels=self._labelnames)
        for key, child in list(self._children.items()):
            counts = child.counts.copy()
            running = 0
            buckets: list[tuple[str, float]] = []
            for bound, n in zip([*self._bounds, math.inf], counts, strict=True):
                running += n
                buckets.append(("+Inf" if math.isinf(bound) else repr(bound), running))
            family.add_metric(list(key), buckets, child.total)
        return [family]


MESSAGES_IN = Counter(
    "perpsignal_consumer_messages_total",
    "Messages consumed, by outcome (ok, retried, dead_lettered)",
    ["service", "topic", "outcome"],
)
HANDLE_SECONDS = FastHistogram(
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
PIPELINE_LATENCY = FastHistogram(
    "perpsignal_pipeline_latency_seconds",
    "Upstream time of a fact (candle close) to the moment a stage finished with it",
    ["stage"],
    buckets=(0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 900),
)
