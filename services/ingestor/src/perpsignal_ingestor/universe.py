"""The symbol universe: Binance USDT perpetuals in TRADING ∩ filters, plus on-demand symbols.

Tracked = (watch list, or every tradable perpetual when the list is `*`) + (perpetuals with
24h quote volume ≥ the minimum, when set) + (symbols asked for on `commands.v1`, until their
TTL runs out). Before exchangeInfo has been read once, the watch list is used as is.

The MSS universe (coins the scorer's MSS scanner can rate) is wider: every coin with a
CoinGecko or LunarCrush profile. `ScanCycle` spreads its discovery requests (pages by market
cap and by volume, the newest listings, LunarCrush's Galaxy Score and AltRank sorts) over
polls within a fixed call budget; `SymbolOwners` keeps a shared ticker on the larger coin.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pydantic import TypeAdapter, ValidationError

from perpsignal_common.events.values import MAX_AMOUNT, Symbol
from perpsignal_connectors.binance_usdm.parsing import is_usdt_perpetual
from perpsignal_connectors.binance_usdm.schemas import SymbolInfo, Ticker24h
from perpsignal_ingestor.shards import ShardMap

log = logging.getLogger(__name__)
_SYMBOL: TypeAdapter[str] = TypeAdapter(Symbol)


def _is_symbol(symbol: str) -> bool:
    try:
        _SYMBOL.validate_python(symbol)
    except ValidationError:
        return False
    return True


class Universe:
    """Which symbols each source polls; updated by exchangeInfo, tickers and commands."""

    def __init__(
        self,
        watch: Iterable[str],
        min_quote_volume: float = 0.0,
        clock: Callable[[], float] = time.time,
        shard: ShardMap | None = None,
    ) -> None:
        watch = list(watch)
        # None = a lone ingestor outside any group (tests, tools): it owns every symbol
        self.shard = shard
        self.all_symbols = "*" in watch
        self.watch = {s for s in watch if s != "*"}
        self.min_quote_volume = min_quote_volume
        self._clock = clock
        self.tradable: set[str] | None = None
        self.infos: dict[str, SymbolInfo] = {}
        self.tickers: dict[str, Ticker24h] = {}
        self.on_demand: dict[str, float] = {}
        self._unusable: set[str] = set()  # trading symbols the contract refuses (warned)

    def update_exchange(self, symbols: Iterable[SymbolInfo]) -> None:
        """Adopt exchangeInfo: the USDT perpetuals currently TRADING.

        A symbol the event contract refuses (a space, a bidi control, longer than 64
        characters) is left out, with one warning: none of its events could be published,
        and its kline stream name would make Binance refuse every symbol's subscription.
        """
        self.infos = {s.symbol: s for s in symbols}
        trading = {
            s.symbol for s in self.infos.values() if is_usdt_perpetual(s) and s.status == "TRADING"
        }
        unusable = {s for s in trading if not _is_symbol(s)}
        for sym in sorted(unusable - self._unusable):
            log.warning(
                "perpetual not tracked: the event contract refuses its symbol",
                extra={"symbol": repr(sym)[:80]},
            )
        self._unusable = unusable
        self.tradable = trading - unusable

    def update_tickers(self, tickers: Iterable[Ticker24h]) -> None:
        """Adopt the latest 24h tickers (quote volume filter, listing stats)."""
        self.tickers = {t.symbol: t for t in tickers}

    def track(self, symbol: str, until_s: float) -> None:
        """Track `symbol` on demand until epoch second `until_s`."""
        self.on_demand[symbol.upper()] = max(until_s, self.on_demand.get(symbol.upper(), 0.0))

    def untrack(self, symbol: str) -> None:
        """Stop on-demand tracking of `symbol` (the watch list is unaffected)."""
        self.on_demand.pop(symbol.upper(), None)

    def _active_on_demand(self) -> set[str]:
        now = self._clock()
        for sym in [s for s, until in self.on_demand.items() if until <= now]:
            del self.on_demand[sym]
        return set(self.on_demand)

    def owns(self, symbol: str) -> bool:
        """Return True when this replica's shard holds `symbol` (always, without shards)."""
        return self.shard is None or self.shard.owns(symbol)

    def owned(self, symbols: Iterable[str]) -> list[str]:
        """Return the symbols of `symbols` this replica polls, in their order."""
        return [s for s in symbols if self.owns(s)]

    def binance_symbols(self) -> list[str]:
        """Return the symbols this replica polls on Binance (its shard of the universe)."""
        return self.owned(self.tracked())

    def tracked(self) -> list[str]:
        """Return every symbol tracked on Binance, by all replicas together, sorted."""
        if self.tradable is None:
            return sorted(self.watch | self._active_on_demand())
        chosen = set(self.tradable) if self.all_symbols else self.watch & self.tradable
        if self.min_quote_volume > 0:
            chosen |= {
                s
                for s in self.tradable
                if (t := self.tickers.get(s)) is not None
                and t.quote_volume is not None
                and t.quote_volume >= self.min_quote_volume
            }
        chosen |= self._active_on_demand() & self.tradable
        return sorted(chosen)

    def off_binance(self) -> list[str]:
        """Return this shard's watched or on-demand symbols Binance does not trade (OKX)."""
        if self.tradable is None:
            return []
        return self.owned(sorted((self.watch | self._active_on_demand()) - self.tradable))


@dataclass(frozen=True)
class ScanStep:
    """One discovery request of the MSS universe scan, and what it costs in vendor calls."""

    name: str  # e.g. "market_cap_desc:2", "volume_desc:1", "new"
    calls: int = 1


class ScanCycle:
    """Round-robin over the discovery steps, at most `calls_per_poll` vendor calls per poll.

    The whole scan (every page, every sort, the newest coins) is covered every
    `ceil(total calls / calls_per_poll)` polls, so the call rate is fixed by the setting, not
    by how far the scan reaches. A step dearer than the budget still runs, alone.
    """

    def __init__(self, steps: Iterable[ScanStep], calls_per_poll: int) -> None:
        self.steps = list(steps)
        self.calls_per_poll = max(1, calls_per_poll)
        self._next = 0

    def total_calls(self) -> int:
        """Return the calls of one full pass."""
        return sum(s.calls for s in self.steps)

    def next_batch(self) -> list[ScanStep]:
        """Return the steps of the next poll and advance."""
        batch: list[ScanStep] = []
        spent = 0
        for _ in range(len(self.steps)):
            step = self.steps[self._next]
            if batch and spent + step.calls > self.calls_per_poll:
                break
            batch.append(step)
            spent += step.calls
            self._next = (self._next + 1) % len(self.steps)
        return batch


class SymbolOwners:
    """Which coin a `<SYMBOL>USDT` key stands for when several coins share a ticker.

    Small caps and new listings often reuse a big coin's ticker ("a new BTC"): the coin with
    the larger market cap keeps the symbol, so a fresh token never overwrites the profile of
    the coin the futures market trades. A coin without a market cap never takes a symbol
    another coin holds.
    """

    def __init__(self) -> None:
        self._owner: dict[str, tuple[str, float]] = {}

    def accept(self, symbol: str, coin_id: str, market_cap: float | None) -> bool:
        """Return True when `coin_id` may publish under `symbol` (and record it).

        A market cap the contract refuses (NaN, infinite, negative, above 1e30: a junk
        token's bogus supply times price) counts as none: it won the symbol for good while
        its own profile was refused, and the real coin's was never published again.
        """
        if market_cap is not None and not 0 <= market_cap <= MAX_AMOUNT:
            market_cap = None
        cap = market_cap or 0.0
        held = self._owner.get(symbol)
        if held is not None and held[0] != coin_id and (market_cap is None or held[1] >= cap):
            return False
        self._owner[symbol] = (coin_id, cap)
        return True
