"""Taker flow in momentum: the recorded Binance and Coinglass taker bodies, through the real
connector parsers, move the momentum sub-score the way their imbalance ranks in its own
history; without (or with stale or too young) taker flow momentum is exactly what it was.

No recording holds taker flow and candles of the same hours, so the parsed events keep their
values (the recorded volumes) and are re-stamped onto the recorded XRP candles' span.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from perpsignal_common.events.base import Event
from perpsignal_common.events.market import CandleClosedV1, TakerFlowV1
from perpsignal_common.events.signals import SignalScoredV1
from perpsignal_connectors.binance_usdm import parsing as bp
from perpsignal_connectors.binance_usdm import schemas as bs
from perpsignal_connectors.coinglass import parsing as cg_p
from perpsignal_connectors.coinglass import schemas as cg_s
from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.engine import ScoringEngine
from perpsignal_domain.scoring.factors.base import blend, pull
from tests.unit.scorer import recorded

FAR = datetime(2100, 1, 1, tzinfo=UTC)
SYMBOL = "XRPUSDT"
# 5m scoring; three observations are enough history to rank (the recordings are short)
CFG = EngineConfig(primary_timeframe="5m", smc_timeframes=("5m",), neutral_min_history=3)


@pytest.fixture(scope="module")
def candles(shared_data: Path) -> list[CandleClosedV1]:
    path = shared_data / "market/XRP_USDT_USDT-5m-futures.csv"
    return recorded.candles(path, SYMBOL, "5m")[:160]


def binance_flows(api: Path) -> list[TakerFlowV1]:
    raw = json.loads(
        (api / "binance_usdm/futures_data_takerlongshortRatio.doc_current.json").read_text()
    )
    return bp.parse_taker_ratio(bs.TAKER_RATIO.validate_python(raw), SYMBOL, "5m")


def coinglass_flows(api: Path) -> list[TakerFlowV1]:
    path = api / "coinglass/taker-buysell__aggregated-taker-buysell-volume-history.json"
    raw = json.loads(path.read_text())["data"]
    return cg_p.parse_taker(cg_s.TAKER_AGG.validate_python(raw), "XRP", "1h", FAR)


def restamp(parsed: list[TakerFlowV1], start: datetime, step_s: int, n: int) -> list[TakerFlowV1]:
    """`n` flows every `step_s` from `start`, cycling through the parsed events' values."""
    out = []
    for k in range(n):
        ev = parsed[k % len(parsed)]
        at = start + timedelta(seconds=k * step_s)
        out.append(ev.model_copy(update={"observed_at": at, "event_id": f"{ev.event_id}-{k}"}))
    return out


def imbalance(ev: TakerFlowV1) -> float:
    return (ev.buy_volume - ev.sell_volume) / (ev.buy_volume + ev.sell_volume)


def run(candles: list[CandleClosedV1], flows: list[TakerFlowV1]) -> list[SignalScoredV1]:
    engine = ScoringEngine(CFG)
    out: list[SignalScoredV1] = []
    events: list[Event] = recorded.merged(list(flows), list(candles))  # a flow before a tie
    for ev in events:
        out.extend(engine.apply(ev))
    return out


def momentum(sig: SignalScoredV1):  # type: ignore[no-untyped-def]
    return next(f for f in sig.factors if f.name == "momentum")


def price_only(inputs: dict) -> float:  # type: ignore[type-arg]
    """The momentum sub-score of its price inputs by the module's formula (generic blend)."""
    rets = [(int(k[7:-1]), v) for k, v in inputs.items() if k.startswith("return_")]
    parts = []
    if rets:
        r = sum(pull(v, CFG.momentum_full_return * h**0.5) for h, v in rets) / len(rets)
        parts.append((0.4, r))
    parts.append((0.3, pull(inputs["rsi"] - 50.0, 20.0)))
    if inputs.get("ema_gap") is not None:
        parts.append((0.3, pull(inputs["ema_gap"], CFG.trend_full_gap)))
    return 50.0 + 50.0 * max(-1.0, min(1.0, blend(parts)))


@pytest.mark.parametrize(("vendor", "step_s"), [("binance", 300), ("coinglass", 3600)])
def test_recorded_taker_flow_is_momentum_flow_part(
    shared_data: Path, candles: list[CandleClosedV1], vendor: str, step_s: int
) -> None:
    api = shared_data / "api"
    parsed = binance_flows(api) if vendor == "binance" else coinglass_flows(api)
    start = candles[0].observed_at - timedelta(seconds=5 * step_s)
    flows = restamp(parsed, start, step_s, 5 + len(candles) * 300 // step_s)
    with_flow, without = run(candles, flows), run(candles, [])
    assert len(with_flow) == len(without) == len(candles)
    compared = 0
    for a, b in zip(with_flow, without, strict=True):
        ma, mb = momentum(a), momentum(b)
        if mb.status != "ok":
            assert ma == mb
            continue
        now = a.observed_at
        seen = [f for f in flows if f.observed_at <= now]
        newest = seen[-1]
        # the rank of the newest imbalance among its own history (2 x mid-rank pct - 1)
        values = [imbalance(f) for f in seen][-CFG.neutral_window :]
        x = values[-1]
        below = sum(v < x for v in values) + 0.5 * sum(v == x for v in values)
        rank = 2.0 * below / len(values) - 1.0
        assert ma.inputs["taker_imbalance"] == pytest.approx(imbalance(newest), abs=1e-4)
        assert ma.inputs["taker_flow_rank"] == pytest.approx(rank, abs=1e-4)
        # price parts as without flow, flow weighted 0.25 next to them
        assert {k: v for k, v in ma.inputs.items() if not k.startswith("taker")} == mb.inputs
        s = (mb.score - 50.0) / 50.0
        total = 1.0 if "return_16b" in mb.inputs and mb.inputs.get("ema_gap") is not None else None
        if total is not None:
            expected = 50.0 + 50.0 * (s * total + 0.25 * rank) / (total + 0.25)
            assert ma.score == pytest.approx(expected, abs=1e-3)
            compared += 1
    assert compared > 50


def test_stronger_buying_than_its_history_scores_higher(
    shared_data: Path, candles: list[CandleClosedV1]
) -> None:
    """Same candles, same flow history: only the newest imbalance differs."""
    parsed = coinglass_flows(shared_data / "api") + binance_flows(shared_data / "api")
    ordered = sorted(parsed, key=imbalance)
    end = candles[-1].observed_at
    history = restamp(parsed, end - timedelta(hours=12), 3600, 12)
    scores = []
    for newest in ordered:  # weakest to strongest buying
        last = newest.model_copy(update={"observed_at": end - timedelta(minutes=5)})
        sig = run(candles, [*history, last])[-1]
        scores.append((momentum(sig).inputs["taker_flow_rank"], momentum(sig).score))
    ranks = [r for r, _ in scores]
    subs = [s for _, s in scores]
    assert ranks == sorted(ranks) and ranks[0] < 0 < ranks[-1]
    assert subs == sorted(subs) and subs[-1] > subs[0]


def dumps(signals: list[SignalScoredV1]) -> list[dict]:  # type: ignore[type-arg]
    return [s.model_dump(exclude={"produced_at"}) for s in signals]


def test_without_usable_taker_flow_signals_are_bit_identical(
    shared_data: Path, candles: list[CandleClosedV1]
) -> None:
    """No taker flow, a flow too young to rank, another symbol's flow: the very same signals
    (every score, input and confidence), and momentum is the price-only formula."""
    without = run(candles, [])
    parsed = binance_flows(shared_data / "api")  # two rows: fewer than the three to rank
    young = run(candles, restamp(parsed, candles[0].observed_at, 300, 2))
    other = [
        f.model_copy(update={"symbol": "BTCUSDT"})
        for f in restamp(parsed, candles[0].observed_at, 300, 100)
    ]
    assert dumps(young) == dumps(without) == dumps(run(candles, other))
    ok = [momentum(s) for s in without if momentum(s).status == "ok"]
    assert len(ok) > 100
    for m in ok:
        assert not any(k.startswith("taker") for k in m.inputs)
        # inputs are rounded (returns to 6 digits), so the recomputation is approximate
        assert m.score == pytest.approx(price_only(m.inputs), abs=5e-3)


def test_stale_taker_flow_is_left_out(shared_data: Path, candles: list[CandleClosedV1]) -> None:
    """Hourly flow stops: fresh for 3 x its cadence (3 h), then momentum is price alone."""
    parsed = coinglass_flows(shared_data / "api")
    start = candles[0].observed_at - timedelta(hours=3)
    flows = restamp(parsed, start, 3600, 6)  # the last at start + 5 h
    last_t = flows[-1].observed_at
    with_flow, without = run(candles, flows), run(candles, [])
    fresh = stale = 0
    for a, b in zip(with_flow, without, strict=True):
        ma, mb = momentum(a), momentum(b)
        if mb.status != "ok":
            continue
        if a.observed_at - last_t > timedelta(hours=3):
            assert ma == mb and a.score == b.score
            stale += 1
        else:
            assert "taker_flow_rank" in ma.inputs
            fresh += 1
    assert fresh > 10 and stale > 10
    assert dumps(with_flow)[-1] == dumps(without)[-1]


def test_one_venue_of_taker_flow_the_price_venue_takes_over(
    shared_data: Path, candles: list[CandleClosedV1]
) -> None:
    """Coinglass's all-exchange flow is used until the candles' venue (Binance) sends its
    own; then Binance's history restarts the ranking, never mixed with Coinglass's."""
    api = shared_data / "api"
    t0 = candles[0].observed_at
    cg = restamp(coinglass_flows(api), t0 - timedelta(hours=4), 1800, 4 + 8 * 2)  # to t0 + 6 h
    bn = restamp(binance_flows(api), t0 + timedelta(hours=6, minutes=2), 300, 100)
    assert {f.venue for f in cg} == {"coinglass"} and {f.venue for f in bn} == {"binance"}
    signals = run(candles, cg + bn)
    cg_values = {round(imbalance(f), 4) for f in cg}
    bn_values = {round(imbalance(f), 4) for f in bn}
    assert not cg_values & bn_values
    switch = bn[0].observed_at
    young = bn[2].observed_at  # the third Binance row: enough history again
    phases = {"coinglass": 0, "gap": 0, "binance": 0}
    for s in signals:
        m = momentum(s)
        if m.status != "ok":
            continue
        if s.observed_at < switch:
            assert m.inputs.get("taker_imbalance") in cg_values | {None}
            phases["coinglass"] += "taker_imbalance" in m.inputs
        elif s.observed_at < young:
            assert "taker_imbalance" not in m.inputs  # Coinglass's history was dropped
            phases["gap"] += 1
        else:
            assert m.inputs["taker_imbalance"] in bn_values
            phases["binance"] += 1
    assert phases["coinglass"] > 10 and phases["gap"] >= 1 and phases["binance"] > 10
