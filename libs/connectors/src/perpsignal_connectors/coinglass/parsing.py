"""Coinglass rows → platform events (venue `coinglass` = aggregated across exchanges).

Rows carry the interval's start time; an interval's fact is complete at `time + interval`,
which becomes `observed_at`, and intervals not yet over are skipped. Coins map to the
Binance-style symbol (`BTC` → `BTCUSDT`) so they share the symbol's partition.
"""

from __future__ import annotations

from datetime import datetime

from perpsignal_common.events.market import (
    TIMEFRAME_SECONDS,
    FundingRateV1,
    LiquidationBucketV1,
    LiquidationOrderV1,
    LongShortRatioV1,
    OpenInterestV1,
    TakerFlowV1,
)
from perpsignal_common.events.values import venue_token
from perpsignal_connectors.coinglass import schemas as s
from perpsignal_connectors.coinglass.constants import VENDOR
from perpsignal_connectors.ids import event_id, ms_to_dt


def coin_symbol(coin: str) -> str:
    """Return our symbol for a Coinglass coin."""
    return f"{coin.upper()}USDT"


def _closed(time_ms: int, interval: str, now: datetime) -> datetime | None:
    end = ms_to_dt(time_ms + TIMEFRAME_SECONDS[interval] * 1000)
    return end if end <= now else None


def parse_liquidation_history(
    rows: list[s.LiquidationAggRow], coin: str, interval: str, now: datetime
) -> list[LiquidationBucketV1]:
    """Return aggregated liquidation buckets; `count` is None: Coinglass gives sums only."""
    sym, out = coin_symbol(coin), []
    for r in rows:
        if (end := _closed(r.time, interval, now)) is None:
            continue
        out.append(
            LiquidationBucketV1(
                event_id=event_id(VENDOR, "market.liquidation_bucket", sym, end, interval),
                source=VENDOR,
                venue=VENDOR,
                symbol=sym,
                observed_at=end,
                window_s=TIMEFRAME_SECONDS[interval],
                long_liquidations_usd=r.aggregated_long_liquidation_usd,
                short_liquidations_usd=r.aggregated_short_liquidation_usd,
                count=None,  # unknown, not zero: the history reports USD sums, no order count
            )
        )
    return out


def parse_funding_ohlc(
    rows: list[s.OhlcRow], coin: str, interval: str, now: datetime
) -> list[FundingRateV1]:
    """Return the OI-weighted funding rate (close), converted from percent to a fraction."""
    sym, out = coin_symbol(coin), []
    for r in rows:
        if (end := _closed(r.time, interval, now)) is None:
            continue
        out.append(
            FundingRateV1(
                event_id=event_id(VENDOR, "market.funding", sym, end, interval),
                source=VENDOR,
                venue=VENDOR,
                symbol=sym,
                observed_at=end,
                rate=r.close / 100,
            )
        )
    return out


def parse_oi_ohlc(
    rows: list[s.OhlcRow], coin: str, interval: str, now: datetime
) -> list[OpenInterestV1]:
    """Return aggregated open interest in USD (close of each interval)."""
    sym, out = coin_symbol(coin), []
    for r in rows:
        if (end := _closed(r.time, interval, now)) is None:
            continue
        out.append(
            OpenInterestV1(
                event_id=event_id(VENDOR, "market.open_interest", sym, end, interval),
                source=VENDOR,
                venue=VENDOR,
                symbol=sym,
                observed_at=end,
                open_interest_usd=r.close,
                period=interval,
            )
        )
    return out


def parse_ratio(
    rows: list[s.GlobalRatioRow] | list[s.TopAccountRow] | list[s.TopPositionRow],
    symbol: str,
    kind: str,
    interval: str,
    now: datetime,
) -> list[LongShortRatioV1]:
    """Return long/short shares (percent → fraction) and their ratio, per closed interval."""
    out = []
    for r in rows:
        if (end := _closed(r.time, interval, now)) is None or r.short_pct <= 0:
            continue
        out.append(
            LongShortRatioV1(
                event_id=event_id(VENDOR, "market.long_short_ratio", symbol, end, kind, interval),
                source=VENDOR,
                venue=VENDOR,
                symbol=symbol,
                observed_at=end,
                kind=kind,
                long_share=r.long_pct / 100,
                short_share=r.short_pct / 100,
                ratio=r.long_pct / r.short_pct,
                period=interval,
            )
        )
    return out


def parse_taker(
    rows: list[s.TakerAggRow], coin: str, interval: str, now: datetime
) -> list[TakerFlowV1]:
    """Return aggregated taker flow in USD."""
    sym, out = coin_symbol(coin), []
    for r in rows:
        if (end := _closed(r.time, interval, now)) is None or r.sell_usd <= 0:
            continue
        out.append(
            TakerFlowV1(
                event_id=event_id(VENDOR, "market.taker_flow", sym, end, interval),
                source=VENDOR,
                venue=VENDOR,
                symbol=sym,
                observed_at=end,
                buy_volume=r.buy_usd,
                sell_volume=r.sell_usd,
                buy_sell_ratio=r.buy_usd / r.sell_usd,
                unit="usd",
                period=interval,
            )
        )
    return out


def parse_ws_liquidation(row: s.WsLiquidation) -> LiquidationOrderV1 | None:
    """Return one liquidation from the stream (docs: side 1 = long liquidated, 2 = short)."""
    if row.side not in (1, 2):
        return None
    observed = ms_to_dt(row.time)
    side = "LONG" if row.side == 1 else "SHORT"
    venue = venue_token(row.exchange)
    return LiquidationOrderV1(
        event_id=event_id(
            VENDOR, "liquidation.order", row.symbol, observed, venue, side, row.vol_usd, row.price
        ),
        source=VENDOR,
        venue=venue,
        symbol=row.symbol,
        observed_at=observed,
        liquidated_side=side,
        price=row.price,
        quantity=row.vol_usd / row.price,
        notional_usd=row.vol_usd,
    )
