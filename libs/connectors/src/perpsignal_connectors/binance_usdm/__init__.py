"""Binance USD-M Futures connector: REST (`http.BinanceUsdmHttp`) and liquidation stream.

`BinanceUsdmHttp.fetch_klines(symbol, interval, start_time=None, end_time=None, limit=500)`
returns `list[schemas.KlineRow]`; `parsing.parse_klines(rows, symbol, tf, now)` turns them
into closed `CandleClosedV1` events (the outcomes service uses both as a price fallback).
"""

from perpsignal_connectors.binance_usdm.http import BinanceUsdmHttp
from perpsignal_connectors.binance_usdm.parsing import parse_klines
from perpsignal_connectors.binance_usdm.schemas import KlineRow

__all__ = ["BinanceUsdmHttp", "KlineRow", "parse_klines"]
