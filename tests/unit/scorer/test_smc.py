"""SMC: causality (stream == batch truncated at every bar) and hand-checked patterns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perpsignal_domain.scoring.smc import SmcAnalyzer, SmcEvent, analyze_batch
from perpsignal_domain.scoring.state import Bar
from tests.unit.scorer import recorded


def _bars(rows: list[tuple[float, float, float]]) -> list[Bar]:
    """Bars from (high, low, close) rows, 60 s apart."""
    return [Bar(i * 60.0, (i + 1) * 60.0, c, h, lo, c, 1.0) for i, (h, lo, c) in enumerate(rows)]


def _batch(bars: list[Bar], n: int = 3) -> list[SmcEvent]:
    a = np.array([[b.close_s, b.high, b.low, b.close] for b in bars])
    return analyze_batch(a[:, 0], a[:, 1], a[:, 2], a[:, 3], swing_length=n)


def test_swing_is_known_only_after_the_right_hand_bars() -> None:
    # a peak at bar 3 (high 14) with three lower bars on each side
    rows = [(10, 9, 9.5), (11, 10, 10.5), (12, 11, 11.5), (14, 12, 13), (13, 11, 12)]
    rows += [(12.5, 10.5, 11), (12, 10, 10.5)]
    stream = SmcAnalyzer(swing_length=3)
    seen = [stream.update(b) for b in _bars(rows)]
    swings = [[e for e in evs if e.kind.startswith("swing")] for evs in seen]
    assert all(not evs for evs in swings[:6]), "the swing appeared before it was confirmed"
    highs = [e for e in seen[6] if e.kind == "swing_high"]
    assert [(e.ref_index, e.known_index, e.level, e.known_at) for e in highs] == [
        (3, 6, 14, 7 * 60.0)
    ]


def test_bos_then_choch() -> None:
    # swing high 14 @3 confirmed @6; close 15 @8 breaks it (first break: BOS up).
    rows = [(10, 9, 9.5), (11, 10, 10.5), (12, 11, 11.5), (14, 12, 13), (13, 11, 12)]
    rows += [(12.5, 10.5, 11), (12, 10, 10.5), (13, 10.8, 12.9), (15.2, 12, 15)]
    # swing low 10 @6 (confirmed @9); a close of 9.5 @12 breaks it against the trend: CHoCH
    rows += [(15.5, 14, 15.2), (15.3, 13, 13.5), (14, 11, 11.5), (12, 9, 9.5)]
    events: list[SmcEvent] = []
    stream = SmcAnalyzer(swing_length=3)
    for b in _bars(rows):
        events.extend(stream.update(b))
    structure = [(e.kind, e.direction, e.level, e.known_index) for e in events if e.phase == 6]
    assert structure == [("bos", 1, 14, 8), ("choch", -1, 10, 12)]
    assert stream.trend == -1


def test_fair_value_gap_and_its_mitigation() -> None:
    rows = [(10, 9, 9.5), (12, 10, 11.8), (13, 10.5, 12.8), (12, 10.2, 10.4)]
    events: list[SmcEvent] = []
    stream = SmcAnalyzer(swing_length=3)
    for b in _bars(rows):
        events.extend(stream.update(b))
    fvg = [(e.kind, e.direction, e.level, e.bottom, e.known_index) for e in events]
    # bar 2 low 10.5 > bar 0 high 10: bullish gap 10..10.5; bar 3 trades to 10.2 -> mitigated
    assert fvg == [("fvg", 1, 10.5, 10, 2), ("fvg_mitigated", 1, 10.5, 10, 3)]


@pytest.mark.parametrize("n", [2, 3, 5])
def test_stream_equals_batch_truncated_at_every_bar(shared_data: Path, n: int) -> None:
    csv = shared_data / "market" / "XRP_USDT_USDT-5m-futures.csv"
    cs = recorded.candles(csv, "XRPUSDT", "5m")[:600]
    bars = [
        Bar(c.open_time.timestamp(), c.observed_at.timestamp(), c.open, c.high, c.low, c.close, 1)
        for c in cs
    ]
    stream = SmcAnalyzer(swing_length=n)
    so_far: list[SmcEvent] = []
    full = _batch(bars, n)
    for i, bar in enumerate(bars):
        new = stream.update(bar)
        assert all(e.known_index == i and e.known_at == bar.close_s for e in new)
        so_far.extend(new)
        # zero rewritten bars: what the full history says was known by bar i is what we had
        assert [e for e in full if e.known_index <= i] == sorted(so_far)
        if i % 7 == 0 or i == len(bars) - 1:
            # a batch run that only has bars 0..i knows exactly what the stream knew at i
            assert sorted(so_far) == _batch(bars[: i + 1], n)
    assert sorted(so_far) == full
    kinds = {e.kind for e in full}
    assert {"swing_high", "swing_low", "bos", "choch", "fvg", "fvg_mitigated"} <= kinds


@pytest.mark.parametrize("max_age", [3, 12, 60])
def test_stream_equals_batch_when_gaps_expire(shared_data: Path, max_age: int) -> None:
    """The stream scans its open gaps only when a bar reaches one or the oldest expires:
    with short gap lifetimes (many expiries, many open gaps) it still equals the batch."""
    csv = shared_data / "market" / "XRP_USDT_USDT-5m-futures.csv"
    cs = recorded.candles(csv, "XRPUSDT", "5m")
    bars = [
        Bar(c.open_time.timestamp(), c.observed_at.timestamp(), c.open, c.high, c.low, c.close, 1)
        for c in cs
    ]
    stream = SmcAnalyzer(swing_length=3, fvg_max_age=max_age)
    events: list[SmcEvent] = []
    open_counts = []
    for bar in bars:
        events.extend(stream.update(bar))
        open_counts.append(stream.open_fvgs)
    a = np.array([[b.close_s, b.high, b.low, b.close] for b in bars])
    batch = analyze_batch(a[:, 0], a[:, 1], a[:, 2], a[:, 3], swing_length=3, fvg_max_age=max_age)
    assert sorted(events) == batch
    # open gaps: created and not yet mitigated or expired, counted from the batch events
    mitigated = {e.ref_index: e.known_index for e in batch if e.kind == "fvg_mitigated"}
    created = [e.known_index for e in batch if e.kind == "fvg"]
    expected = [
        sum(1 for c in created if c <= i and mitigated.get(c, 1 << 30) > i and i - c < max_age)
        for i in range(len(bars))
    ]
    assert open_counts == expected
    assert any(e.kind == "fvg_mitigated" for e in batch) and max(expected) > 0
