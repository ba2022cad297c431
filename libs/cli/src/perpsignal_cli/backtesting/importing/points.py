"""The other inputs as the live ingestor's events: funding, open interest, long/short,
Fear & Greed, liquidations (orders or interval totals), social metrics, taker flow."""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from perpsignal_cli.backtesting.importing.base import (
    SOURCE,
    HistoryFormatError,
    _contract_errors_named,
    norm,
)
from perpsignal_cli.backtesting.importing.files import read_table
from perpsignal_cli.backtesting.importing.layouts import LS_KINDS
from perpsignal_cli.backtesting.importing.resolving import Resolved, _load, _same_symbol, _time
from perpsignal_cli.backtesting.importing.times import ms_to_dt
from perpsignal_common.events.base import deterministic_id
from perpsignal_common.events.market import (
    TIMEFRAME_SECONDS,
    FearGreedV1,
    FundingRateV1,
    LiquidationBucketV1,
    LiquidationOrderV1,
    LongShortRatioV1,
    OpenInterestV1,
    SocialMetricsV1,
    TakerFlowV1,
)
from perpsignal_common.events.values import venue_token

_E = TypeVar("_E", bound=Any)

# the importers' one logger, whichever module logs
log = logging.getLogger("perpsignal_cli.backtesting.importers")


def _unique(events: Iterable[_E]) -> list[_E]:
    """Return `events` in time order, one per event id (the last row of a time given twice:
    overlapping pages of an API dump would otherwise count a value twice, e.g. charge a
    funding rate twice in net P&L)."""
    return sorted({e.event_id: e for e in events}.values(), key=lambda e: e.observed_at)


def _present(
    value: float | None, what: str, path: Path, row: Sequence[Any], res: Resolved
) -> float | None:
    """Return a value a reader will do arithmetic on: None when absent or NaN (how pandas
    writes "none"); an infinity is refused naming the row's time, as no reading."""
    if value is None or value != value:
        return None
    if value in (math.inf, -math.inf):
        at = ms_to_dt(_time(res, row, path)).isoformat().replace("+00:00", "Z")
        raise HistoryFormatError(f"{path}: the row at {at} has {what} {value}: not a number")
    return value


@_contract_errors_named
def read_funding(path: Path, symbol: str, venue: str = SOURCE) -> list[FundingRateV1]:
    """Read settled funding rates (any shape in `KINDS["funding"]`)."""
    res, rows = _load("funding", path, symbol)
    out = []
    for row in rows:
        rate = res.get(row, "rate")
        if rate is None:
            continue
        at = ms_to_dt(_time(res, row, path))
        out.append(
            FundingRateV1(
                event_id=deterministic_id(SOURCE, "market.funding", symbol, at),
                source=SOURCE,
                venue=venue,
                symbol=symbol,
                observed_at=at,
                produced_at=at,
                rate=rate,
                mark_price=res.get(row, "mark_price"),
                interval_h=res.get(row, "interval_h"),
                settled=True,
            )
        )
    out = _unique(out)
    _refuse_snapshots(out, path)
    return out


def _refuse_snapshots(rates: Sequence[FundingRateV1], path: Path) -> None:
    """Refuse a funding file whose rows come faster than any venue settles (every 1-8 h).

    Such rows are ticker snapshots of the predicted rate; read as settlements, every one was
    charged in net P&L (a recording every 10 minutes charged 48 'settlements' per 8 h).
    """
    if len(rates) < 3:
        return
    steps = sorted(
        (b.observed_at - a.observed_at).total_seconds() for a, b in itertools.pairwise(rates)
    )
    median = steps[len(steps) // 2]
    if median < 3600:
        raise HistoryFormatError(
            f"{path}: funding rows come every {median / 60:g} min, faster than any venue "
            "settles (every 1-8 h): ticker snapshots of the predicted rate, not a settled "
            "history. Give the venue's funding-rate history, or a column with each row's "
            "settlement time (next_funding_time / funding_timestamp; --columns "
            "funding.time=<column>)"
        )


@_contract_errors_named
def read_open_interest(path: Path, symbol: str, venue: str = SOURCE) -> list[OpenInterestV1]:
    """Read open interest in base units and/or USD (any shape in `KINDS["open_interest"]`).

    Bybit's inverse contracts (`category: inverse`: BTCUSD, ETHUSDH25) count their
    `openInterest` in 1-USD contracts, not coins: it is read as USD (it was read as that many
    BTC). It is not turned into coins with the price: an inverse position's size is its
    contract count, which moves only when positions open or close, as a linear contract's
    coin count does; divided by the price it would move with every rally and read as
    positions closing.
    """
    res, rows = _load("open_interest", path, symbol)
    inverse = res.envelope.get("category", "").lower() == "inverse"
    if inverse:
        log.info("%s: inverse contracts: openInterest read as USD (1 USD a contract)", path.name)
    out = []
    for row in rows:
        oi, oi_usd = res.get(row, "open_interest"), res.get(row, "open_interest_usd")
        if inverse and oi_usd is None:
            oi, oi_usd = None, oi
        if oi is None and oi_usd is None:
            continue
        at = ms_to_dt(_time(res, row, path))
        out.append(
            OpenInterestV1(
                event_id=deterministic_id(SOURCE, "market.open_interest", symbol, at),
                source=SOURCE,
                venue=venue,
                symbol=symbol,
                observed_at=at,
                produced_at=at,
                open_interest=oi,
                open_interest_usd=oi_usd,
            )
        )
    return _unique(out)


@_contract_errors_named
def read_long_short(path: Path, symbol: str, venue: str = SOURCE) -> list[LongShortRatioV1]:
    """Read long/short positioning, every kind the file has (`KINDS["long_short"]`)."""
    res, rows = _load("long_short", path, symbol)
    kinds = {k: v for k, v in LS_KINDS.items() if v[0] in res.index or v[1] in res.index}
    out = []
    for row in rows:
        at: datetime | None = None
        for kind, (share_f, ratio_f) in kinds.items():
            share = _present(res.get(row, share_f), "long share", path, row, res)
            ratio = _present(res.get(row, ratio_f), "long/short ratio", path, row, res)
            if share is None and ratio is None:
                continue
            if ratio is not None and ratio < 0:  # longs over shorts: -1 divided by zero
                when = ms_to_dt(_time(res, row, path)).isoformat().replace("+00:00", "Z")
                raise HistoryFormatError(
                    f"{path}: the row at {when} has long/short ratio {ratio}: a ratio of "
                    "accounts or positions is 0 or more"
                )
            if share is None:
                assert ratio is not None
                share = ratio / (1.0 + ratio)
            if ratio is None:
                ratio = share / (1.0 - share) if share < 1 else 0.0
            at = at or ms_to_dt(_time(res, row, path))
            out.append(
                LongShortRatioV1(
                    event_id=deterministic_id(SOURCE, "market.long_short_ratio", symbol, at, kind),
                    source=SOURCE,
                    venue=venue,
                    symbol=symbol,
                    observed_at=at,
                    produced_at=at,
                    kind=kind,
                    long_share=share,
                    short_share=1.0 - share,
                    ratio=ratio,
                )
            )
    return _unique(out)


@_contract_errors_named
def read_fear_greed(path: Path) -> list[FearGreedV1]:
    """Read the Fear & Greed history (`time,value[,value_classification]`, alternative.me)."""
    res, rows = _load("fear_greed", path)
    out = []
    for row in rows:
        value = _present(res.get(row, "value"), "value", path, row, res)
        if value is None:
            continue
        at = ms_to_dt(_time(res, row, path))
        cls = res.raw(row, "classification")
        out.append(
            FearGreedV1(
                event_id=deterministic_id("alternative_me", "global.fear_greed", "fear_greed", at),
                source="alternative_me",
                symbol="fear_greed",
                observed_at=at,
                produced_at=at,
                value=round(value),
                classification=str(cls) if cls not in (None, "") else None,
            )
        )
    return _unique(out)


# Liquidated side: Binance order side (a SELL liquidates a LONG), Coinglass 1/2, words
_LIQUIDATED = {
    "sell": "LONG",
    "long": "LONG",
    "1": "LONG",
    "1.0": "LONG",
    "buy": "SHORT",
    "short": "SHORT",
    "2": "SHORT",
    "2.0": "SHORT",
}


@_contract_errors_named
def read_liquidations(
    path: Path, symbol: str, venue: str = SOURCE
) -> list[LiquidationOrderV1 | LiquidationBucketV1]:
    """Read liquidations (`KINDS["liquidations"]`): one `LiquidationOrderV1` per order, or
    one `LiquidationBucketV1` per interval of long/short totals, as the live ingestor
    produces them. Rows of another symbol (a `symbol` column) are left out.

    A bucket's `time` is its start (Coinglass); it is observed at its end, the interval
    being the `window_s` column or else the smallest step between rows.
    """
    res, rows = _load("liquidations", path)
    idx = res.index
    bucketed = "long_usd" in idx or "short_usd" in idx
    if not bucketed and "side" not in idx:
        raise HistoryFormatError(_sideless_message(path))
    if not bucketed and "notional_usd" not in idx and not {"price", "quantity"} <= set(idx):
        raise HistoryFormatError(f"{path}: liquidation orders need a USD value or price and size")
    kept = [r for r in rows if _same_symbol(res.raw(r, "symbol"), symbol)]
    if bucketed:
        return _liquidation_buckets(res, kept, path, symbol, venue)
    orders: list[LiquidationOrderV1 | LiquidationBucketV1] = []
    for row in kept:
        side = _LIQUIDATED.get(str(res.raw(row, "side")).strip().lower())
        if side is None:
            raise HistoryFormatError(
                f"{path}: liquidation side {res.raw(row, 'side')!r} is none of "
                "BUY/SELL, LONG/SHORT, 1/2"
            )
        price, qty, usd = (res.get(row, n) for n in ("price", "quantity", "notional_usd"))
        if usd is None and price is not None and qty is not None:
            usd = price * qty
        if usd is None or usd <= 0:
            continue
        if price is None or price <= 0:
            price = usd / qty if qty else usd
        qty = qty if qty else usd / price
        at = ms_to_dt(_time(res, row, path))
        exchange = res.raw(row, "exchange")
        # as the live Coinglass stream relays it: a space refused the whole file
        token = venue_token(str(exchange)) if exchange is not None else ""
        order_venue = token or venue
        orders.append(
            LiquidationOrderV1(
                event_id=deterministic_id(
                    SOURCE, "liquidation.order", symbol, at, order_venue, side, price, qty
                ),
                source=SOURCE,
                venue=order_venue,
                symbol=symbol,
                observed_at=at,
                produced_at=at,
                liquidated_side=side,
                price=price,
                quantity=qty,
                notional_usd=usd,
            )
        )
    return sorted(orders, key=lambda e: e.observed_at)


# Hyperliquid's public historical_data liquidations.csv: one row per liquidated *account*
_HYPERLIQUID_ACCOUNTS = frozenset({"user", "liquidatedntlpos", "liquidatedaccountvalue"})


def _sideless_message(path: Path) -> str:
    """Say why a liquidation list without sides is refused and what would be accepted."""
    header = read_table(path).header or []
    seen = ", ".join(header) if header else "rows without a header"
    what = (
        "it is Hyperliquid's account-level list (historical_data liquidations.csv): a row is "
        "one account's liquidation, `liquidated_ntl_pos` its unsigned notional over every "
        "position closed (a cross-margin account's positions in any coins, long and short "
        "together), so neither the coin nor the side can be derived from it"
        if {norm(h) for h in header} >= _HYPERLIQUID_ACCOUNTS
        else "no column says which side each liquidation forced out"
    )
    return (
        f"{path}: liquidations without a side (columns: {seen}); {what}. The liquidation "
        "factor weighs longs against shorts liquidated, so it needs either a side per order "
        "(BUY/SELL of the liquidation order, LONG/SHORT or 1/2 of the position: name the "
        "column with --columns liquidations.side=<column>) or long/short USD totals per "
        "interval (--columns liquidations.long_usd=<column>,liquidations.short_usd=<column>), "
        "and a symbol column (--columns liquidations.symbol=<column>) when the file mixes coins"
    )


def _liquidation_buckets(
    res: Resolved, rows: Iterable[Sequence[Any]], path: Path, symbol: str, venue: str
) -> list[LiquidationOrderV1 | LiquidationBucketV1]:
    parsed = [(_time(res, r, path), r) for r in rows]
    parsed.sort(key=lambda x: x[0])
    steps = [b - a for (a, _), (b, _) in itertools.pairwise(parsed) if b > a]
    step_s = min(steps) // 1000 if steps else None
    out: list[LiquidationOrderV1 | LiquidationBucketV1] = []
    for t_ms, row in parsed:
        window = res.get(row, "window_s")
        if window is not None and not 0 < window < math.inf:
            at = ms_to_dt(t_ms).isoformat().replace("+00:00", "Z")
            raise HistoryFormatError(
                f"{path}: the total at {at} has window_s {window}: not an interval's length"
            )
        window_s = int(window) if window else step_s
        if not window_s:
            raise HistoryFormatError(
                f"{path}: one liquidation total and no window_s column: interval unknown"
            )
        end = ms_to_dt(t_ms + window_s * 1000)
        long_usd, short_usd = res.get(row, "long_usd") or 0.0, res.get(row, "short_usd") or 0.0
        out.append(
            LiquidationBucketV1(
                event_id=deterministic_id(SOURCE, "market.liquidation_bucket", symbol, end),
                source=SOURCE,
                venue=venue,
                symbol=symbol,
                observed_at=end,
                produced_at=end,
                window_s=window_s,
                long_liquidations_usd=long_usd,
                short_liquidations_usd=short_usd,
                count=None,
            )
        )
    return _unique(out)


@_contract_errors_named
def read_social(path: Path, symbol: str) -> list[SocialMetricsV1]:
    """Read a LunarCrush coin time series (`KINDS["social"]`) as the live ingestor's
    `SocialMetricsV1` (vendor `lunarcrush`), each observed at its own time."""
    res, rows = _load("social", path)
    metrics = ("galaxy_score", "sentiment", "social_volume_change_pct")
    if not any(m in res.index for m in metrics):
        raise HistoryFormatError(
            f"{path}: no sentiment, galaxy_score or social_volume_change_pct column: "
            "nothing the social factor scores"
        )
    out = []
    for row in rows:
        values = {m: res.get(row, m) for m in metrics}
        if all(v is None for v in values.values()):
            continue
        at = ms_to_dt(_time(res, row, path))
        rank = _present(res.get(row, "alt_rank"), "alt_rank", path, row, res)
        out.append(
            SocialMetricsV1(
                event_id=deterministic_id("lunarcrush", "market.social", symbol, at),
                source="lunarcrush",
                venue="lunarcrush",
                symbol=symbol,
                observed_at=at,
                produced_at=at,
                galaxy_score=values["galaxy_score"],
                sentiment=values["sentiment"],
                social_volume_change_pct=values["social_volume_change_pct"],
                alt_rank=None if rank is None else round(rank),
                social_dominance=res.get(row, "social_dominance"),
                interactions_24h=res.get(row, "interactions_24h"),
                social_volume_24h=res.get(row, "social_volume_24h"),
            )
        )
    return _unique(out)


@_contract_errors_named
def read_taker_flow(path: Path, symbol: str, venue: str = SOURCE) -> list[TakerFlowV1]:
    """Read taker buy/sell volumes (`KINDS["taker_flow"]`) as the live ingestor's
    `TakerFlowV1`, in base units or USD as the file has them.

    A row's volume is known once its period closes: it is observed one period after its
    time (the smallest step between rows; a lone row at its time). Coinglass stamps a period
    with its start; a venue stamping the end is then read one period late, never early.
    """
    res, rows = _load("taker_flow", path, symbol)
    idx = res.index
    usd = {"buy_volume_usd", "sell_volume_usd"} <= set(idx)
    if not usd and not {"buy_volume", "sell_volume"} <= set(idx):
        raise HistoryFormatError(
            f"{path}: cannot read as taker flow: need taker buy and sell volumes (columns "
            f"found: {', '.join(sorted(idx))}; accepted: buyVol/sellVol, "
            "aggregated_buy_volume_usd/aggregated_sell_volume_usd, taker_buy_volume_usd/"
            "taker_sell_volume_usd, or --columns buy_volume=<col>,sell_volume=<col>)"
        )
    buy_f, sell_f = ("buy_volume_usd", "sell_volume_usd") if usd else ("buy_volume", "sell_volume")
    parsed = sorted(((_time(res, r, path), r) for r in rows), key=lambda x: x[0])
    steps = [b - a for (a, _), (b, _) in itertools.pairwise(parsed) if b > a]
    step_ms = min(steps) if steps else 0
    period = next((n for n, sec in TIMEFRAME_SECONDS.items() if sec * 1000 == step_ms), None)
    out = []
    for t_ms, row in parsed:
        buy, sell = res.get(row, buy_f), res.get(row, sell_f)
        if buy is None or sell is None or buy < 0 or sell < 0 or buy + sell <= 0:
            continue
        at = ms_to_dt(t_ms + step_ms)
        out.append(
            TakerFlowV1(
                event_id=deterministic_id(SOURCE, "market.taker_flow", symbol, at),
                source=SOURCE,
                venue=venue,
                symbol=symbol,
                observed_at=at,
                produced_at=at,
                buy_volume=buy,
                sell_volume=sell,
                buy_sell_ratio=buy / sell if sell > 0 else 0.0,
                unit="usd" if usd else "base",
                period=period,
            )
        )
    return _unique(out)


def describe(events: Sequence[Any]) -> tuple[datetime, datetime] | None:
    """Return (first, last) observed_at of time-ordered events, or None when empty."""
    if not events:
        return None
    return events[0].observed_at, events[-1].observed_at
