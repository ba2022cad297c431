"""CoinAPI → CandleClosedV1 (venue `coinapi`) and WhaleTradeV1 above a notional threshold."""

from __future__ import annotations

from datetime import UTC, datetime

from perpsignal_common.events.market import CandleClosedV1, Timeframe, WhaleTradeV1
from perpsignal_connectors.coinapi.constants import VENDOR
from perpsignal_connectors.coinapi.schemas import OhlcvRow, Trade
from perpsignal_connectors.ids import event_id


def parse_ohlcv(
    rows: list[OhlcvRow], symbol: str, timeframe: Timeframe, now: datetime
) -> list[CandleClosedV1]:
    """Return the closed periods as candles (a period whose end is after `now` is forming)."""
    out = []
    for r in rows:
        close_at = r.time_period_end.astimezone(UTC)
        if close_at > now:
            continue
        out.append(
            CandleClosedV1(
                event_id=event_id(VENDOR, "market.candle", symbol, close_at, timeframe),
                source=VENDOR,
                venue=VENDOR,
                symbol=symbol,
                observed_at=close_at,
                timeframe=timeframe,
                open_time=r.time_period_start.astimezone(UTC),
                open=r.price_open,
                high=r.price_high,
                low=r.price_low,
                close=r.price_close,
                volume=r.volume_traded,
                trades=r.trades_count,
            )
        )
    return out


def parse_whale_trades(
    trades: list[Trade], symbol: str, min_notional_usd: float, usd_per_quote: float = 1.0
) -> list[WhaleTradeV1]:
    """Return trades whose notional (price * size * quote→USD rate) reaches the threshold.

    Trades with an unknown taker side are skipped: a whale trade without a direction would
    tell the scorer nothing and we never guess it.
    """
    out = []
    for t in trades:
        side = t.taker_side.upper()
        if side not in ("BUY", "SELL"):
            continue
        notional = t.price * t.size * usd_per_quote
        if notional < min_notional_usd:
            continue
        observed = t.time_exchange.astimezone(UTC)
        out.append(
            WhaleTradeV1(
                event_id=event_id(
                    VENDOR, "market.whale_trade", symbol, observed, t.uuid or f"{t.price}:{t.size}"
                ),
                source=VENDOR,
                venue=VENDOR,
                symbol=symbol,
                observed_at=observed,
                price=t.price,
                size=t.size,
                notional_usd=notional,
                side=side,
                trade_id=t.uuid,
            )
        )
    return out
