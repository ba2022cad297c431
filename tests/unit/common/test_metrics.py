"""FastHistogram exposes exactly what prometheus-client's Histogram would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from perpsignal_common.observability.metrics import FastHistogram


def _samples(registry: CollectorRegistry) -> list[str]:
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if "_created" not in line]


def test_fast_histogram_matches_prometheus_histogram_exposition() -> None:
    bounds = (0.001, 0.01, 0.1, 1.0)
    reference, fast = CollectorRegistry(), CollectorRegistry()
    ref = Histogram("h_seconds", "doc", ["service", "topic"], buckets=bounds, registry=reference)
    ours = FastHistogram("h_seconds", "doc", ["service", "topic"], buckets=bounds, registry=fast)
    # bucket edges are inclusive, values beyond the last bound land in +Inf only
    values = [0.0005, 0.001, 0.0011, 0.01, 0.1, 0.5, 1.0, 3.0, 0.0]
    for i, v in enumerate(values):
        labels = ("judge", "a" if i % 2 else "b")
        ref.labels(*labels).observe(v)
        ours.labels(*labels).observe(v)
    assert _samples(fast) == _samples(reference)
    assert 'h_seconds_bucket{le="0.001",service="judge",topic="b"} 2.0' in _samples(fast)


def test_fast_histogram_rejects_a_wrong_label_count() -> None:
    h = FastHistogram("x_seconds", "doc", ["service"], buckets=(1.0,), registry=None)
    try:
        h.labels("a", "b")
    except ValueError as exc:
        assert "x_seconds" in str(exc)
    else:
        raise AssertionError("expected ValueError")
