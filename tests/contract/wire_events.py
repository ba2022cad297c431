"""Every event type as the real producers make it, with the key and headers they send.

The contract tests hold these records against the published documents (schemas/), as a
client in another language would read them. Each event comes from the code that publishes
it: the connectors' parsers on the recorded vendor bodies (../shared/data/api), the real
scorer on recorded candles, the rule judge (tests/producers.py), the ingestor's listing
builder and source loop, the judge service's request handler, the MSS scanner, the outcome
evaluator and the gateway's snapshot capture. Built once per process (~2 s).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from perpsignal_common.events.base import Event
from perpsignal_common.events.registry import EVENT_CLASSES, encode
from perpsignal_common.events.signals import (
    JudgeRequestV1,
    OutcomeEvaluatedV1,
    ScoredSignalFields,
)
from perpsignal_common.events.values import configure_clock_skew, max_clock_skew_s
from perpsignal_common.kafka.producer import event_headers
from tests.poison_helpers import listing, scored_signals
from tests.producers import JUDGE, recorded, run
from tests.recorded import recorded_data_dir

FAR = datetime(2100, 1, 1, tzinfo=UTC)
# Binance USD-M lists perpetuals named in other scripts (币安人生USDT, October 2025)
NON_ASCII_LISTING = ("币安人生USDT", "币安人生")


def _body(api: Path, rel: str) -> Any:
    return json.loads((api / rel).read_text())


def _connector_events(api: Path) -> list[Event]:
    from perpsignal_connectors.alternative_me.parsing import parse_fng
    from perpsignal_connectors.alternative_me.schemas import FNG
    from perpsignal_connectors.binance_usdm import parsing as bp
    from perpsignal_connectors.binance_usdm import schemas as bs
    from perpsignal_connectors.coinapi import parsing as ca_p
    from perpsignal_connectors.coinapi import schemas as ca_s
    from perpsignal_connectors.coingecko.parsing import parse_coins_markets
    from perpsignal_connectors.coingecko.schemas import COINS_MARKETS
    from perpsignal_connectors.coinglass import parsing as cg_p
    from perpsignal_connectors.coinglass import schemas as cg_s
    from perpsignal_connectors.lunarcrush import parsing as lc_p
    from perpsignal_connectors.lunarcrush import schemas as lc_s
    from perpsignal_connectors.okx.parsing import parse_candles
    from perpsignal_connectors.okx.schemas import CANDLES

    def b(rel: str) -> Any:
        return _body(api, rel)

    out: list[Any] = []
    out += bp.parse_klines(
        bs.KLINES.validate_python(b("binance_usdm/fapi_v1_klines.recorded.json")),
        "BTCUSDT",
        "1m",
        FAR,
    )
    kline = bp.parse_kline_stream(
        bs.KLINE_STREAM.validate_python(b("binance_usdm/ws_kline.doc_example.json"))
    )
    out += [kline] if kline is not None else []
    for sfx in ("doc_current", "doc_example"):
        out.append(
            bp.parse_premium_index(
                bs.PREMIUM_INDEX_ONE.validate_python(
                    b(f"binance_usdm/fapi_v1_premiumIndex.{sfx}.json")
                )
            )
        )
        out += bp.parse_funding_history(
            bs.FUNDING_RATES.validate_python(b(f"binance_usdm/fapi_v1_fundingRate.{sfx}.json"))
        )
        out.append(
            bp.parse_open_interest(
                bs.OPEN_INTEREST.validate_python(b(f"binance_usdm/fapi_v1_openInterest.{sfx}.json"))
            )
        )
        out += bp.parse_open_interest_hist(
            bs.OPEN_INTEREST_HIST.validate_python(
                b(f"binance_usdm/futures_data_openInterestHist.{sfx}.json")
            ),
            "5m",
        )
        for name, kind in (
            ("globalLongShortAccountRatio", "global_account"),
            ("topLongShortAccountRatio", "top_account"),
            ("topLongShortPositionRatio", "top_position"),
        ):
            raw = b(f"binance_usdm/futures_data_{name}.{sfx}.json")
            out += bp.parse_long_short(
                bs.LONG_SHORT.validate_python(raw), raw[0]["symbol"], kind, "5m"
            )
        out += bp.parse_taker_ratio(
            bs.TAKER_RATIO.validate_python(
                b(f"binance_usdm/futures_data_takerlongshortRatio.{sfx}.json")
            ),
            "BTCUSDT",
            "5m",
        )
        out.append(
            bp.parse_ticker(
                bs.TICKER_ONE.validate_python(b(f"binance_usdm/fapi_v1_ticker_24hr.{sfx}.json"))
            )
        )
    out.append(
        bp.parse_force_order(
            bs.FORCE_ORDER.validate_python(b("binance_usdm/ws_forceOrder.doc_example.json"))
        )
    )
    cg = "coinglass/"
    out += cg_p.parse_liquidation_history(
        cg_s.LIQUIDATION_AGG.validate_python(
            b(cg + "liquidation__aggregated-liquidation-history.json")["data"]
        ),
        "BTC",
        "1d",
        FAR,
    )
    out += cg_p.parse_funding_ohlc(
        cg_s.OHLC.validate_python(b(cg + "funding-rate__fr-ohlc-histroy.json")["data"]),
        "BTC",
        "1d",
        FAR,
    )
    for name, adapter, kind in (
        ("global-longshort-account-ratio", cg_s.GLOBAL_RATIO, "global_account"),
        ("top-longshort-account-ratio", cg_s.TOP_ACCOUNT, "top_account"),
        ("top-longshort-position-ratio", cg_s.TOP_POSITION, "top_position"),
    ):
        rows = adapter.validate_python(b(f"{cg}long-short-ratio__{name}.json")["data"])
        out += cg_p.parse_ratio(rows, "BTCUSDT", kind, "1h", FAR)
    out += cg_p.parse_taker(
        cg_s.TAKER_AGG.validate_python(
            b(cg + "taker-buysell__aggregated-taker-buysell-volume-history.json")["data"]
        ),
        "BTC",
        "1h",
        FAR,
    )
    ws = cg_s.WS_MESSAGE.validate_python(b(cg + "ws__liquidationOrders.json"))
    out += [e for e in (cg_p.parse_ws_liquidation(r) for r in ws.data) if e is not None]
    for name in ("coins_list_v1.json", "coins_list_v2.json"):
        social, profiles = lc_p.parse_coins_list(
            lc_s.COINS_LIST.validate_python(b(f"lunarcrush/{name}"))
        )
        out += social + profiles
    out += lc_p.parse_coin_series(
        lc_s.COIN_SERIES.validate_python(b("lunarcrush/coins_coin_time-series_v2.json"))
    )
    out += ca_p.parse_ohlcv(
        ca_s.OHLCV.validate_python(b("coinapi/v1_ohlcv_symbol_id_history.json")),
        "BTCUSDT",
        "1d",
        FAR,
    )
    out += ca_p.parse_whale_trades(
        ca_s.TRADES.validate_python(b("coinapi/v1_trades_symbol_id_latest.json")), "BTCUSDT", 0
    )
    out += parse_coins_markets(COINS_MARKETS.validate_python(b("coingecko/coins_markets.json")))
    out += parse_fng(FNG.validate_python(b("alternative_me/fng_limit2.json")))
    out += parse_candles(
        CANDLES.validate_python(b("okx/api_v5_market_candles.recorded.json")).data,
        "BTCUSDT",
        "1m",
    )
    # the documented Coinglass open-interest example carries illustrative future times
    previous = max_clock_skew_s()
    configure_clock_skew(100 * 365 * 86400)
    try:
        oi = cg_p.parse_oi_ohlc(
            cg_s.OHLC.validate_python(b(cg + "open-interest__oi-ohlc-histroy.json")["data"]),
            "BTC",
            "1h",
            FAR,
        )
    finally:
        configure_clock_skew(previous)
    return out + [e for e in oi if e.observed_at <= datetime.now(UTC)]


def _mss(api: Path) -> list[Event]:
    from perpsignal_connectors.coingecko.parsing import parse_coins_markets
    from perpsignal_connectors.coingecko.schemas import COINS_MARKETS
    from perpsignal_domain.scoring.mss import MssConfig, MssScanner

    at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    raw = _body(api, "coingecko/coins_markets.json")
    raw[0]["last_updated"] = at.isoformat().replace("+00:00", "Z")
    scanner = MssScanner(MssConfig(threshold=0.0, interval_s=900))
    for profile in parse_coins_markets(COINS_MARKETS.validate_python(raw)):
        scanner.observe(profile)
    return list(scanner.scan(at.timestamp()))


def _outcomes(judged: list[Any]) -> list[Event]:
    """Outcome events as the outcomes service builds them, from the domain evaluator."""
    from perpsignal_domain.outcomes.evaluate import Candle, evaluate
    from perpsignal_outcomes.tracker import outcome_event_id

    out: list[Event] = []
    for j in judged:
        if j.direction == "NEUTRAL":
            continue
        vol = j.ai_verdict_layer.volatility_metrics
        path = [Candle(c.open_time, c.open, c.high, c.low, c.close) for c in j.candles[-12:]]
        ev = evaluate(
            j.direction,
            j.price,
            path,
            stop=vol.stop_loss_price,
            target=vol.take_profit_price,
        )
        out.append(
            OutcomeEvaluatedV1(
                event_id=outcome_event_id(j.signal_id, "1h"),
                source="outcomes",
                symbol=j.symbol,
                observed_at=j.observed_at,
                causation_id=j.event_id,
                signal_id=j.signal_id,
                direction=j.direction,
                verdict=j.ai_verdict_layer.verdict,
                horizon="1h",
                entry_price=j.price,
                exit_price=ev.exit_price,
                pnl_pct=ev.pnl_pct,
                result=ev.result,
                max_favorable_pct=ev.max_favorable_pct,
                max_adverse_pct=ev.max_adverse_pct,
                first_hit=ev.first_hit,
            )
        )
    return out


async def _source_status() -> list[Event]:
    from perpsignal_ingestor.scheduler import SourceLoop

    published: list[Event] = []

    class _Publisher:
        async def publish(self, source: str, events: list[Event]) -> int:
            published.extend(events)
            return len(events)

    async def poll() -> list[Event]:
        return []

    loop = SourceLoop("coinglass", 60, poll, _Publisher())  # type: ignore[arg-type]
    loop.failures = 3
    await loop._set_state("degraded", "transient: coinglass liquidation: HTTP 502")
    await loop._set_state("down", "permanent: coinglass: HTTP 401 (check the key)")
    await loop._set_state("up", None)
    return published


async def _judge_replies(judged: list[Any]) -> list[Event]:
    """The judge service's replies to the gateway's requests (with and without a plan)."""
    from perpsignal_judge.judge import Judge
    from perpsignal_judge.settings import JudgeSettings

    judge = Judge(JudgeSettings(openai_api_key=None))
    out: list[Event] = []
    fields = ScoredSignalFields.model_fields.keys()
    for i, j in enumerate(judged[:4]):
        context = ScoredSignalFields.model_validate(j.model_dump(include=set(fields)))
        direction = "SHORT" if j.direction == "SHORT" else "LONG"
        sign = 1 if direction == "LONG" else -1
        request = JudgeRequestV1(
            event_id=f"req-{i}",
            source="gateway",
            symbol=j.symbol,
            observed_at=j.observed_at,
            correlation_id=f"req-{i}",
            direction=direction,
            score=j.score,
            entry_price=j.price,
            stop_loss_price=j.price * (1 - sign * 0.02) if i % 2 else None,
            take_profit_price=j.price * (1 + sign * 0.04) if i % 2 else None,
            signal=context,
        )
        out += [request, await judge.judge_request(request)]
    # a request the judge cannot price: ok=false with an error, no judged signal
    bare = JudgeRequestV1(
        event_id="req-bare",
        source="gateway",
        symbol="BTCUSDT",
        observed_at=judged[0].observed_at,
        correlation_id="req-bare",
        direction="LONG",
    )
    out += [bare, await judge.judge_request(bare)]
    return out


def _snapshots(events: list[Event]) -> list[Event]:
    from perpsignal_gateway.readmodel import ReadModel
    from perpsignal_gateway.snapshot import all_keys, capture

    model = ReadModel()
    for e in events:
        model.apply(e)
    complete_to = {"market": [12, 0, 3], "signals_judged": [5]}
    return [capture(model, key, complete_to, "gw-1:42") for key in sorted(all_keys(model))]


def _track_command() -> Event:
    from perpsignal_common.events.market import TrackCommandV1

    # as the gateway's on-demand tracking builds it (platform._request_tracking)
    return TrackCommandV1(
        event_id="7b1f4a4e-1b55-4c3c-9d3e-2f8e1f2a9c10",
        source="gateway",
        symbol="ETHUSDT",
        observed_at=datetime.now(UTC),
        action="track",
    )


@cache
def real_events() -> dict[str, tuple[Event, ...]]:
    """{event type: real events of that type}, covering every type of the registry."""
    data = recorded_data_dir()
    assert data is not None, "the recorded data archive ships with the repository"
    api = data / "api"
    candles_csv = data / "market" / "XRP_USDT_USDT-5m-futures.csv"
    judged = [*run("bull"), *run("bear"), *run("wild (6 % ranges)"), *recorded()[:200]]
    scored = scored_signals(candles_csv, "XRPUSDT", 40)
    market = _connector_events(api)
    listings = [
        listing("NEWUSDT", "NEW", datetime.now(UTC) - timedelta(hours=2)),
        listing(*NON_ASCII_LISTING, datetime.now(UTC) - timedelta(hours=1)),
    ]
    statuses = asyncio.run(_source_status())
    mss = _mss(api)
    everything: list[Event] = [
        *market,
        *listings,
        *scored,
        *(JUDGE.judge_rules(s) for s in scored),
        *judged,
        *mss,
        *statuses,
        *_outcomes(judged),
        *asyncio.run(_judge_replies(judged)),
        _track_command(),
    ]
    everything += _snapshots(everything)
    out: dict[str, list[Event]] = {}
    for e in everything:
        out.setdefault(e.type, []).append(e)
    return {k: tuple(v) for k, v in out.items()}


def record(event: Event) -> tuple[bytes, bytes, dict[str, bytes]]:
    """(key, value, headers) exactly as `EventProducer.publish` writes the record."""
    return event.partition_key(), encode(event), dict(event_headers(event))


def all_types() -> list[str]:
    return sorted(cls.model_fields["type"].default for cls in EVENT_CLASSES)


def topic_of(event_type: str) -> str:
    return next(c.topic for c in EVENT_CLASSES if c.model_fields["type"].default == event_type)
