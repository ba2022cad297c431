"""Real market history replayed on the wall clock, behind the fake vendors' Binance endpoints.

The recorded vendor bodies are frozen in the past, so a pipeline fed only with them produces
nothing new and every factor is stale. The tape maps each wall-clock minute to a row of a real
1-minute history (FTX BTC-PERP, ../shared/data/market) so `/fapi/v1/klines` answers like
Binance would right now: closed candles up to the current minute plus the forming one. Each
symbol starts at its own offset in the history, so symbols move differently. Positioning
statistics (`/futures/data/*Ratio`, `openInterestHist`) come the same way from the real
Binance BTCUSDT 5-minute statistics file. Nothing is synthesised: prices, volumes and ratios are
the recorded ones; only the timestamps are shifted.
"""

from __future__ import annotations

import csv
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.fakes.vendors import FakeVendors

MINUTE_MS = 60_000
FIVE_MIN_MS = 300_000
CANDLES_FILE = "ftx-btc-perp-20211231-20220201_1m.csv"
STATS_FILE = "binance-BTCUSDT-5m-oi_longshort_basis.csv"


def _offset(symbol: str, n: int) -> int:
    return zlib.crc32(symbol.encode()) % n


class MarketTape:
    """Wall-clock view of recorded 1-minute candles and 5-minute positioning statistics."""

    def __init__(
        self,
        market_dir: Path,
        clock: Callable[[], float] = time.time,
        *,
        stats_period_ms: int = FIVE_MIN_MS,
    ) -> None:
        self.clock = clock
        # Binance's statistics step every 5 minutes; a shorter step lets a test see them go
        # stale (and fresh again) within a minute-long vendor fault
        self.stats_period_ms = stats_period_ms
        with (market_dir / CANDLES_FILE).open() as f:
            self.candles = [
                (float(r["open"]), float(r["high"]), float(r["low"]), float(r["close"]),
                 float(r["volume_usd"]))
                for r in csv.DictReader(f)
            ]  # fmt: skip
        with (market_dir / STATS_FILE).open() as f:
            self.stats = list(csv.DictReader(f))

    # candles ---------------------------------------------------------------------------
    def candle(self, symbol: str, open_ms: int) -> tuple[float, float, float, float, float]:
        """Return (open, high, low, close, quote volume) of `symbol`'s minute at `open_ms`."""
        i = (open_ms // MINUTE_MS + _offset(symbol, len(self.candles))) % len(self.candles)
        return self.candles[i]

    def kline_row(self, symbol: str, open_ms: int) -> list[Any]:
        """Return one Binance kline array (volume in base units = quote volume / close)."""
        o, h, low, c, quote = self.candle(symbol, open_ms)
        return [
            open_ms, f"{o}", f"{h}", f"{low}", f"{c}", f"{quote / c:.6f}",
            open_ms + MINUTE_MS - 1, f"{quote}", 0, "0", "0", "0",
        ]  # fmt: skip

    def klines(self, symbol: str, q: dict[str, str]) -> list[list[Any]]:
        """Answer `/fapi/v1/klines` (1m only) the way Binance does: oldest first, forming last."""
        now_ms = int(self.clock() * 1000)
        current = now_ms // MINUTE_MS * MINUTE_MS
        limit = min(1500, int(q.get("limit", 500)))
        end = current
        if "endTime" in q:
            end = min(end, int(q["endTime"]) // MINUTE_MS * MINUTE_MS)
        if "startTime" in q:
            start = -(-int(q["startTime"]) // MINUTE_MS) * MINUTE_MS
            opens = list(range(start, end + 1, MINUTE_MS))[:limit]
        else:
            opens = list(range(end - (limit - 1) * MINUTE_MS, end + 1, MINUTE_MS))
        return [self.kline_row(symbol, t) for t in opens]

    def last_closed_open_ms(self) -> int:
        """Return the open time of the most recent closed minute."""
        return int(self.clock() * 1000) // MINUTE_MS * MINUTE_MS - MINUTE_MS

    # positioning statistics --------------------------------------------------------------
    def _stat_rows(self, symbol: str, limit: int) -> list[tuple[int, dict[str, str]]]:
        now_ms = int(self.clock() * 1000)
        step = self.stats_period_ms
        last = now_ms // step * step - step
        n = len(self.stats)
        out = []
        for k in range(limit - 1, -1, -1):
            t = last - k * step
            out.append((t, self.stats[(t // step + _offset(symbol, n)) % n]))
        return out

    def statistics(self, path: str, symbol: str, q: dict[str, str]) -> list[dict[str, Any]]:
        """Answer the `/futures/data/*` endpoints from the recorded 5-minute statistics."""
        limit = min(500, int(q.get("limit", 30)))
        rows = self._stat_rows(symbol, limit)
        if path.endswith("openInterestHist"):
            return [
                {"symbol": symbol, "sumOpenInterest": r["sumOpenInterest"],
                 "sumOpenInterestValue": r["sumOpenInterestValue"], "timestamp": t}
                for t, r in rows
            ]  # fmt: skip
        cols = {
            "globalLongShortAccountRatio": ("globallongShortRatio", "globallongAccount",
                                            "globalshortAccount"),
            "topLongShortAccountRatio": ("topacclongShortRatio", "toplongAccount",
                                         "topshortAccount"),
            "topLongShortPositionRatio": ("topposlongShortRatio", "longPosition",
                                          "shortPosition"),
        }  # fmt: skip
        name = path.rsplit("/", 1)[-1]
        if name not in cols:
            raise KeyError(name)
        ratio, long_, short = cols[name]
        return [
            {"symbol": symbol, "longShortRatio": r[ratio], "longAccount": r[long_],
             "shortAccount": r[short], "timestamp": t}
            for t, r in rows
        ]  # fmt: skip


class TapeVendors(FakeVendors):
    """FakeVendors whose Binance candles and positioning statistics follow the wall clock."""

    def __init__(self, data_dir: Path, tape: MarketTape, **kwargs: Any) -> None:
        super().__init__(data_dir, **kwargs)
        self.tape = tape

    def _binance_body(self, path: str, q: dict[str, str]) -> Any:
        sym = q.get("symbol", "BTCUSDT")
        if path == "/fapi/v1/klines":
            return self.tape.klines(sym, q)
        if path.startswith("/futures/data/") and not path.endswith("takerlongshortRatio"):
            try:
                return self.tape.statistics(path, sym, q)
            except KeyError:
                pass
        return super()._binance_body(path, q)
