"""Binance USD-M wire models → platform events (perpsignal_common.events.market).

Every event's `observed_at` is Binance's own time (candle close, funding/OI/ratio timestamp,
ticker close time, liquidation trade time) and its id is derived from it, so re-polling the
same data yields the same `event_id`.
"""

from __future__ import annotations

from datetime import datetime

from perpsignal_common.events.market import (
    TIMEFRAME_SECONDS,
    CandleClosedV1,
    FundingRateV1,
    LiquidationOrderV1,
    LongShortRatioV1,
    OpenInterestV1,
    TakerFlowV1,
    TickerV1,
    Timeframe,
)
from perpsignal_connectors.binance_usdm.constants import VENDOR
from perpsignal_connectors.binance_usdm.schemas import (
    ForceOrderEvent,
    FundingRateRow,
    KlineRow,
    KlineStreamEvent,
    LongShortRow,
    OpenInterest,
    OpenInterestHistRow,
    PremiumIndex,
    SymbolInfo,
    TakerRatioRow,
    Ticker24h,
)
from perpsignal_connectors.ids import event_id, ms_to_dt

LongShortKind = str  # "global_account" | "top_account" | "top_position"


def is_usdt_perpetual(info: SymbolInfo) -> bool:
    """Return True for a USDT-margined perpetual (any status)."""
    return info.contract_type == "PERPETUAL" and info.quote_asset == "USDT"


def check_span(open_ms: int, close_ms: int, timeframe: str) -> None:
    """Raise ValueError unless a kline's open and close times span exactly `timeframe`.

    Binance's close time is the last millisecond of the candle. Rows of another interval (a
    cache that ignores the query, a vendor bug) would otherwise be published as candles of
    this one, under the ids of the real ones, which are then skipped as already published.
    """
    span, want = close_ms + 1 - open_ms, TIMEFRAME_SECONDS.get(timeframe, 0) * 1000
    if span != want:
        raise ValueError(f"kline spans {span} ms; a {timeframe} candle spans {want} ms")


def parse_klines(
    rows: list[KlineRow],
    symbol: str,
    timeframe: Timeframe,
    now: datetime,
    *,
    venue: str = VENDOR,
) -> list[CandleClosedV1]:
    """Return the CLOSED candles of `rows` (Binance includes the forming one last).

    Raises ValueError for a row whose span is not `timeframe`'s (`check_span`).
    """
    out = []
    for r in rows:
        check_span(r.open_time_ms, r.close_time_ms, timeframe)
        # closeTime is the last ms of the candle: closed once now is past it
        close_at = ms_to_dt(r.close_time_ms + 1)
        if close_at > now:
            continue
        out.append(
            CandleClosedV1(
                event_id=event_id(venue, "market.candle", symbol, close_at, timeframe),
                source=venue,
                venue=venue,
                symbol=symbol,
                observed_at=close_at,
                timeframe=timeframe,
                open_time=ms_to_dt(r.open_time_ms),
                open=r.open,
                high=r.high,
                low=r.low,
                close=r.close,
                volume=r.volume,
                quote_volume=r.quote_volume,
                trades=r.trades,
                taker_buy_volume=r.taker_buy_volume,
            )
        )
    return out


def parse_kline_stream(msg: KlineStreamEvent) -> CandleClosedV1 | None:
    """Return the candle of a kline stream message when it is closed (`x`), else None."""
    k = msg.k
    if not k.x:
        return None
    check_span(k.t, k.T, k.i)
    close_at = ms_to_dt(k.T + 1)
    return CandleClosedV1(
        event_id=event_id(VENDOR, "market.candle", k.s, close_at, k.i),
        source=VENDOR,
        venue=VENDOR,
        symbol=k.s,
        observed_at=close_at,
        timeframe=k.i,
        open_time=ms_to_dt(k.t),
        open=k.o,
        high=k.h,
        low=k.l,
        close=k.c,
        volume=k.v,
        quote_volume=k.q,
        trades=k.n,
        taker_buy_volume=k.V,
    )


def parse_premium_index(item: PremiumIndex) -> FundingRateV1:
    """Return the current (predicted) funding rate and mark price of one symbol."""
    observed = ms_to_dt(item.time_ms)
    return FundingRateV1(
        event_id=event_id(VENDOR, "market.funding", item.symbol, observed, "predicted"),
        source=VENDOR,
        venue=VENDOR,
        symbol=item.symbol,
        observed_at=observed,
        rate=item.last_funding_rate,
        mark_price=item.mark_price,
        index_price=item.index_price,
        next_funding_at=ms_to_dt(item.next_funding_time_ms),
        settled=False,
    )


def parse_funding_history(rows: list[FundingRateRow]) -> list[FundingRateV1]:
    """Return settled funding rates (observed at their settlement time)."""
    out = []
    for r in rows:
        observed = ms_to_dt(r.funding_time_ms)
        out.append(
            FundingRateV1(
                event_id=event_id(VENDOR, "market.funding", r.symbol, observed, "settled"),
                source=VENDOR,
                venue=VENDOR,
                symbol=r.symbol,
                observed_at=observed,
                rate=r.funding_rate,
                mark_price=r.mark_price,
                settled=True,
            )
        )
    return out


def parse_open_interest(item: OpenInterest) -> OpenInterestV1:
    """Return the live open interest (base units) of one symbol."""
    observed = ms_to_dt(item.time_ms)
    return OpenInterestV1(
        event_id=event_id(VENDOR, "market.open_interest", item.symbol, observed, "live"),
        source=VENDOR,
        venue=VENDOR,
        symbol=item.symbol,
        observed_at=observed,
        open_interest=item.open_interest,
    )


def parse_open_interest_hist(rows: list[OpenInterestHistRow], period: str) -> list[OpenInterestV1]:
    """Return open interest per period, in base units and USDT notional."""
    out = []
    for r in rows:
        observed = ms_to_dt(r.timestamp_ms)
        out.append(
            OpenInterestV1(
                event_id=event_id(VENDOR, "market.open_interest", r.symbol, observed, period),
                source=VENDOR,
                venue=VENDOR,
                symbol=r.symbol,
                observed_at=observed,
                open_interest=r.sum_open_interest,
                open_interest_usd=r.sum_open_interest_value,
                period=period,
            )
        )
    return out


def check_symbol(rows: list[LongShortRow], symbol: str) -> None:
    """Raise ValueError when a row names another symbol than the one asked for: the answer
    is another symbol's (a cache that ignores the query), none of it is `symbol`'s."""
    for r in rows:
        if r.symbol is not None and r.symbol != symbol:
            raise ValueError(f"long/short row of {r.symbol[:32]!r} in the answer for {symbol!r}")


def parse_long_short(
    rows: list[LongShortRow], symbol: str, kind: LongShortKind, period: str
) -> list[LongShortRatioV1]:
    """Return positioning events; the ratio is long/short of the shares Binance reports.

    The shares are the primary data: Binance's own `longShortRatio` is long/short of them,
    and the documented examples contain rows where the two disagree, so we derive the ratio
    from the shares rather than trust a second copy.

    Raises ValueError for a row naming another symbol (a cache that ignores the query):
    its positioning is not `symbol`'s.
    """
    check_symbol(rows, symbol)
    out = []
    for r in rows:
        observed = ms_to_dt(r.timestamp_ms)
        ratio = r.long_share / r.short_share if r.short_share > 0 else r.long_short_ratio
        out.append(
            LongShortRatioV1(
                event_id=event_id(
                    VENDOR, "market.long_short_ratio", symbol, observed, kind, period
                ),
                source=VENDOR,
                venue=VENDOR,
                symbol=symbol,
                observed_at=observed,
                kind=kind,
                long_share=r.long_share,
                short_share=r.short_share,
                ratio=ratio,
                period=period,
            )
        )
    return out


def parse_taker_ratio(rows: list[TakerRatioRow], symbol: str, period: str) -> list[TakerFlowV1]:
    """Return taker buy/sell flow; the ratio is derived from the volumes (see parse_long_short)."""
    out = []
    for r in rows:
        observed = ms_to_dt(r.timestamp_ms)
        ratio = r.buy_volume / r.sell_volume if r.sell_volume > 0 else r.buy_sell_ratio
        out.append(
            TakerFlowV1(
                event_id=event_id(VENDOR, "market.taker_flow", symbol, observed, period),
                source=VENDOR,
                venue=VENDOR,
                symbol=symbol,
                observed_at=observed,
                buy_volume=r.buy_volume,
                sell_volume=r.sell_volume,
                buy_sell_ratio=ratio,
                unit="base",
                period=period,
            )
        )
    return out


def parse_ticker(item: Ticker24h) -> TickerV1:
    """Return the rolling 24h ticker of one symbol (observed at its window close)."""
    observed = ms_to_dt(item.close_time_ms)
    return TickerV1(
        event_id=event_id(VENDOR, "market.ticker", item.symbol, observed),
        source=VENDOR,
        venue=VENDOR,
        symbol=item.symbol,
        observed_at=observed,
        last_price=item.last_price,
        price_change_pct=item.price_change_pct,
        high=item.high,
        low=item.low,
        volume=item.volume,
        quote_volume=item.quote_volume,
        trades=item.trades,
    )


def parse_force_order(msg: ForceOrderEvent) -> LiquidationOrderV1:
    """Return one liquidation: a SELL order liquidates a LONG, a BUY order a SHORT.

    Raises ValueError for any other side: which positions were liquidated is then unknown;
    and for a zero quantity (`q` and `z` "0"): a liquidation of nothing, which would count as
    one order in its bucket and tell the scorer a liquidation happened.
    """
    o = msg.order
    if o.side.upper() not in ("BUY", "SELL"):
        raise ValueError(f"force order side {o.side[:16]!r} is neither BUY nor SELL")
    observed = ms_to_dt(o.trade_time_ms)
    price = o.avg_price if o.avg_price else o.price
    qty = o.filled_qty if o.filled_qty else o.quantity
    if not qty > 0:
        raise ValueError(f"force order of {o.symbol[:32]!r} has no quantity")
    side = "LONG" if o.side.upper() == "SELL" else "SHORT"
    return LiquidationOrderV1(
        event_id=event_id(VENDOR, "liquidation.order", o.symbol, observed, side, qty, price),
        source=VENDOR,
        venue=VENDOR,
        symbol=o.symbol,
        observed_at=observed,
        liquidated_side=side,
        price=price,
        quantity=qty,
        notional_usd=price * qty,
    )
