"""OKX candles → CandleClosedV1 (venue `okx`, keyed by the Binance-style symbol)."""

from __future__ import annotations

from perpsignal_common.events.market import TIMEFRAME_SECONDS, CandleClosedV1, Timeframe
from perpsignal_connectors.ids import event_id, ms_to_dt
from perpsignal_connectors.okx.constants import VENDOR
from perpsignal_connectors.okx.schemas import OkxCandle


def parse_candles(
    rows: tuple[OkxCandle, ...] | list[OkxCandle], symbol: str, timeframe: Timeframe
) -> list[CandleClosedV1]:
    """Return confirmed candles oldest first (OKX sends newest first, `confirm`=1 = closed)."""
    step_ms = TIMEFRAME_SECONDS[timeframe] * 1000
    out = []
    for r in sorted(rows, key=lambda r: r.ts_ms):
        if not r.confirmed:
            continue
        close_at = ms_to_dt(r.ts_ms + step_ms)
        out.append(
            CandleClosedV1(
                event_id=event_id(VENDOR, "market.candle", symbol, close_at, timeframe),
                source=VENDOR,
                venue=VENDOR,
                symbol=symbol,
                observed_at=close_at,
                timeframe=timeframe,
                open_time=ms_to_dt(r.ts_ms),
                open=r.open,
                high=r.high,
                low=r.low,
                close=r.close,
                volume=r.vol_base,
                quote_volume=r.vol_quote,
            )
        )
    return out
