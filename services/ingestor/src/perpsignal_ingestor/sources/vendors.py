"""Pollers of the secondary sources: OKX, Coinglass, LunarCrush, CoinAPI, CoinGecko, F&G.

Rows are turned into events one by one (`build_each`): a row whose values break the event
contract is refused alone, the rest of its response is published.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from perpsignal_common.events.base import Event
from perpsignal_common.events.market import TIMEFRAME_SECONDS
from perpsignal_connectors.alternative_me.http import FearGreedHttp
from perpsignal_connectors.alternative_me.parsing import parse_fng
from perpsignal_connectors.coinapi import parsing as coinapi_p
from perpsignal_connectors.coinapi.constants import perp_symbol_id
from perpsignal_connectors.coinapi.http import CoinApiHttp
from perpsignal_connectors.coingecko.http import CoinGeckoHttp
from perpsignal_connectors.coingecko.parsing import parse_coins_markets
from perpsignal_connectors.coingecko.schemas import CoinMarket
from perpsignal_connectors.coinglass import parsing as cg_p
from perpsignal_connectors.coinglass.http import CoinglassHttp
from perpsignal_connectors.lunarcrush.http import LunarCrushHttp
from perpsignal_connectors.lunarcrush.parsing import parse_coin_series, parse_coins_list
from perpsignal_connectors.okx.constants import BARS as OKX_BARS
from perpsignal_connectors.okx.http import OkxHttp
from perpsignal_connectors.okx.parsing import parse_candles
from perpsignal_ingestor.publisher import build_each
from perpsignal_ingestor.sources.guard import gather_guarded
from perpsignal_ingestor.universe import ScanCycle, ScanStep, SymbolOwners, Universe

_CG = "coinglass"
log = logging.getLogger(__name__)


class OkxPoller:
    """OKX closed candles for confirmation symbols and symbols Binance does not list."""

    def __init__(
        self,
        client: OkxHttp,
        universe: Universe,
        symbols: Sequence[str],
        timeframes: Sequence[str],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.universe = universe
        self.symbols = list(symbols)
        # OKX has no 8h candles (6H, 12H): a timeframe it lacks is not asked for; it raised a
        # KeyError out of the poll, so no OKX candle of any symbol or timeframe was published
        self.timeframes = [tf for tf in timeframes if tf in OKX_BARS]
        if skipped := [tf for tf in timeframes if tf not in OKX_BARS]:
            log.info(
                "okx has no candles of these timeframes; not polled", extra={"timeframes": skipped}
            )
        self._clock = clock
        # boundaries whose candles are published (acknowledged by the loop) vs fetched by
        # this poll: a candle Kafka refused is fetched again on the next poll (as Binance's)
        self._fetched: dict[tuple[str, str], int] = {}
        self._staged: dict[tuple[str, str], int] = {}

    def acknowledge(self) -> None:
        """Record that everything the last poll returned is published (called by its loop)."""
        self._fetched.update(self._staged)
        self._staged.clear()

    async def poll(self) -> list[Event]:
        """Return newly closed OKX candles."""
        now_s = self._clock()
        self._staged.clear()  # what a failed or cancelled poll fetched was never published
        jobs = []
        for sym in sorted(
            set(self.universe.owned(self.symbols)) | set(self.universe.off_binance())
        ):
            for tf in self.timeframes:
                boundary = int((now_s - 2) // TIMEFRAME_SECONDS[tf])
                if self._fetched.get((sym, tf)) != boundary:
                    jobs.append((f"candles {sym} {tf}", self._candles(sym, tf, boundary)))
        return await gather_guarded("okx", jobs, 4)

    async def _candles(self, sym: str, tf: str, boundary: int) -> list[Event]:
        rows = await self.client.fetch_candles(sym, tf, limit=3)
        self._staged[(sym, tf)] = boundary
        return build_each(
            "okx",
            lambda r: parse_candles([r], sym, tf),  # type: ignore[arg-type]
            rows,
        )


class CoinglassPoller:
    """Aggregated liquidations, funding, OI, long/short ratios and taker flow per coin."""

    def __init__(
        self,
        client: CoinglassHttp,
        universe: Universe,
        interval: str,
        max_coins: int,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.universe = universe
        self.interval = interval
        self.max_coins = max_coins
        self._clock = clock

    async def poll(self) -> list[Event]:
        """Return the latest closed intervals of every watched coin."""
        now = datetime.fromtimestamp(self._clock(), UTC)
        iv, jobs = self.interval, []
        for sym in self.universe.tracked()[: self.max_coins]:
            coin = sym.removesuffix("USDT")
            jobs += [
                (f"liquidations {coin}", self._liq(coin, iv, now)),
                (f"funding {coin}", self._funding(coin, iv, now)),
                (f"openInterest {coin}", self._oi(coin, iv, now)),
                (f"taker {coin}", self._taker(coin, iv, now)),
            ]
            jobs += [
                (f"{kind} {sym}", self._ratio(kind, sym, iv, now))
                for kind in ("global_account", "top_account", "top_position")
            ]
        return await gather_guarded("coinglass", jobs, 2)

    async def _liq(self, coin: str, iv: str, now: datetime) -> list[Event]:
        rows = await self.client.fetch_liquidation_history(coin, iv)
        return build_each(_CG, lambda r: cg_p.parse_liquidation_history([r], coin, iv, now), rows)

    async def _funding(self, coin: str, iv: str, now: datetime) -> list[Event]:
        rows = await self.client.fetch_funding_ohlc(coin, iv)
        return build_each(_CG, lambda r: cg_p.parse_funding_ohlc([r], coin, iv, now), rows)

    async def _oi(self, coin: str, iv: str, now: datetime) -> list[Event]:
        rows = await self.client.fetch_oi_ohlc(coin, iv)
        return build_each(_CG, lambda r: cg_p.parse_oi_ohlc([r], coin, iv, now), rows)

    async def _taker(self, coin: str, iv: str, now: datetime) -> list[Event]:
        rows = await self.client.fetch_taker_history(coin, iv)
        return build_each(_CG, lambda r: cg_p.parse_taker([r], coin, iv, now), rows)

    async def _ratio(self, kind: str, sym: str, iv: str, now: datetime) -> list[Event]:
        rows = await self.client.fetch_ratio(kind, sym, iv)
        return build_each(_CG, lambda r: cg_p.parse_ratio([r], sym, kind, iv, now), rows)


# LunarCrush coin-list sorts of the MSS universe: (sort key, descending, rows). Market-cap rank
# reaches the top 1,000 in one page; Galaxy Score (high = healthy market + social) and AltRank
# (1 = best) surface small coins whose social momentum is rising, whatever their size.
LUNAR_SORTS: tuple[tuple[str, bool, int], ...] = (
    ("market_cap_rank", False, 1000),
    ("galaxy_score", True, 200),
    ("alt_rank", False, 200),
)


class LunarCrushPoller:
    """Social metrics and profiles by market cap, Galaxy Score and AltRank; watched series."""

    def __init__(
        self,
        client: LunarCrushHttp,
        universe: Universe | None = None,
        series_coins: int = 6,
        sorts: Sequence[tuple[str, bool, int]] = LUNAR_SORTS,
    ) -> None:
        self.client = client
        self.universe = universe
        self.series_coins = series_coins
        self.sorts = tuple(sorts)
        self.owners = SymbolOwners()

    async def poll(self) -> list[Event]:
        """Return social metrics and profiles from each coins-list sort, plus per-coin series."""
        jobs = [(f"coinsList {sort}", self._list(sort, desc, n)) for sort, desc, n in self.sorts]
        if self.universe is not None:
            for sym in self.universe.tracked()[: self.series_coins]:
                coin = sym.removesuffix("USDT")
                jobs.append((f"timeSeries {coin}", self._series(coin)))
        return _unique(await gather_guarded("lunarcrush", jobs, 1))

    async def _list(self, sort: str, desc: bool, limit: int) -> list[Event]:
        body = await self.client.fetch_coins_list(sort=sort, limit=limit, desc=desc)

        def one(coin: Any) -> list[Event]:
            social, profiles = parse_coins_list(body.model_copy(update={"data": (coin,)}))
            out: list[Event] = []
            for soc, prof in zip(social, profiles, strict=True):
                if self.owners.accept(prof.symbol, prof.coin_id or prof.symbol, prof.market_cap):
                    out += [soc, prof]
            return out

        # coin by coin: one coin's odd value or symbol must not cost the other coins
        return build_each("lunarcrush", one, body.data)

    async def _series(self, coin: str) -> list[Event]:
        series = await self.client.fetch_coin_series(coin, bucket="hour", interval="1d")
        # bucket by bucket: one the contract refuses costs only itself
        return build_each(
            "lunarcrush",
            lambda p: parse_coin_series(series.model_copy(update={"data": (p,)}), coin),
            series.data,
        )


class CoinApiPoller:
    """Whale trades of the watched symbols (CoinAPI's Binance perpetual feed)."""

    def __init__(
        self, client: CoinApiHttp, universe: Universe, min_notional_usd: float, max_symbols: int = 6
    ) -> None:
        self.client = client
        self.universe = universe
        self.min_notional_usd = min_notional_usd
        self.max_symbols = max_symbols

    async def poll(self) -> list[Event]:
        """Return trades at or above the whale notional."""
        jobs = [
            (f"trades {s}", self._trades(s)) for s in self.universe.tracked()[: self.max_symbols]
        ]
        return await gather_guarded("coinapi", jobs, 1)

    async def _trades(self, sym: str) -> list[Event]:
        trades = await self.client.fetch_latest_trades(perp_symbol_id(sym))
        # trade by trade: one the contract refuses costs only itself
        return build_each(
            "coinapi",
            lambda t: coinapi_p.parse_whale_trades([t], sym, self.min_notional_usd),
            trades,
        )


class CoinGeckoPoller:
    """Tokenomics profiles of the MSS universe: pages by market cap and by volume, new coins.

    Each poll runs the next steps of a `ScanCycle` within `calls_per_poll` calls (see the
    ingestor README for the budget arithmetic). The newest coins come from `/coins/list/new`
    on a paid plan (a pro base URL) and from `/search/trending` on the Demo plan; either way
    a second call fetches their market data by id.
    """

    def __init__(
        self,
        client: CoinGeckoHttp,
        *,
        market_cap_pages: int = 2,
        volume_pages: int = 2,
        new_coins: bool = True,
        calls_per_poll: int = 3,
        per_page: int = 250,
    ) -> None:
        self.client = client
        self.per_page = per_page
        steps: list[ScanStep] = [ScanStep("new", calls=2)] if new_coins else []
        for page in range(1, max(market_cap_pages, volume_pages) + 1):
            if page <= market_cap_pages:
                steps.append(ScanStep(f"market_cap_desc:{page}"))
            if page <= volume_pages:
                steps.append(ScanStep(f"volume_desc:{page}"))
        self.cycle = ScanCycle(steps, calls_per_poll)
        self.owners = SymbolOwners()

    async def poll(self) -> list[Event]:
        """Return one profile per coin of this poll's steps."""
        jobs = [(step.name, self._step(step.name)) for step in self.cycle.next_batch()]
        return _unique(await gather_guarded("coingecko", jobs, 1))

    async def _step(self, name: str) -> list[Event]:
        if name == "new":
            rows = await self._newest()
        else:
            order, _, page = name.partition(":")
            rows = await self.client.fetch_coins_markets(
                order=order, page=int(page), per_page=self.per_page
            )
        kept = [
            r for r in rows if self.owners.accept(f"{r.symbol.upper()}USDT", r.id, r.market_cap)
        ]
        # coin by coin: one coin's odd value must not cost the other coins
        return build_each("coingecko", lambda r: parse_coins_markets([r]), kept)

    async def _newest(self) -> list[CoinMarket]:
        if self.client.pro:
            ids = [c.id for c in await self.client.fetch_new_coins()]
        else:
            ids = [c.item.id for c in (await self.client.fetch_trending()).coins]
        ids = ids[: self.per_page]
        if not ids:
            return []
        return await self.client.fetch_coins_markets(ids=ids, per_page=len(ids))


def _unique(events: list[Event]) -> list[Event]:
    """Drop repeats of one event (a coin in several sorts of one poll)."""
    seen: set[str] = set()
    out = []
    for e in events:
        if e.event_id not in seen:
            seen.add(e.event_id)
            out.append(e)
    return out


class FearGreedPoller:
    """The daily Fear & Greed index."""

    def __init__(self, client: FearGreedHttp) -> None:
        self.client = client

    async def poll(self) -> list[Event]:
        """Return the latest values (re-polls are deduplicated by event id).

        Day by day: one day's odd value or time costs only itself, not today's value.
        """
        body = await self.client.fetch_index(limit=2)
        return build_each(
            "fear_greed", lambda row: parse_fng(body.model_copy(update={"data": (row,)})), body.data
        )
