"""The symbol universe: Binance USDT perpetuals in TRADING ∩ filters, plus on-demand symbols.

Tracked = (watch list, or every tradable perpetual when the list is `*`) + (perpetuals with
24h quote volume ≥ the minimum, when set) + (symbols asked for on `commands.v1`, until their
TTL runs out). Before exchangeInfo has been read once, the watch list is used as is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from perpsignal_connectors.binance_usdm.parsing import is_usdt_perpetual
from perpsignal_connectors.binance_usdm.schemas import SymbolInfo, Ticker24h


class Universe:
    """Which symbols each source polls; updated by exchangeInfo, tickers and commands."""

    def __init__(
        self,
        watch: Iterable[str],
        min_quote_volume: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        watch = list(watch)
        self.all_symbols = "*" in watch
        self.watch = {s for s in watch if s != "*"}
        self.min_quote_volume = min_quote_volume
        self._clock = clock
        self.tradable: set[str] | None = None
        self.infos: dict[str, SymbolInfo] = {}
        self.tickers: dict[str, Ticker24h] = {}
        self.on_demand: dict[str, float] = {}

    def update_exchange(self, symbols: Iterable[SymbolInfo]) -> None:
        """Adopt exchangeInfo: the USDT perpetuals currently TRADING."""
        self.infos = {s.symbol: s for s in symbols}
        self.tradable = {
            s.symbol for s in self.infos.values() if is_usdt_perpetual(s) and s.status == "TRADING"
        }

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

    def binance_symbols(self) -> list[str]:
        """Return the symbols to poll on Binance, sorted."""
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
        """Return watched or on-demand symbols Binance does not trade (OKX covers them)."""
        if self.tradable is None:
            return []
        return sorted((self.watch | self._active_on_demand()) - self.tradable)
