"""A Binance USD-M `/fapi/v1/klines` endpoint serving the recorded XRPUSDT 5m week.

It answers as Binance does: the klines opening in [startTime, endTime], oldest first, at most
`limit` (1500) per call. Open, high, low, close, volume and the open time are the recording's;
the close time is the candle's last millisecond; the quote volume, trade count and taker buy
volume were not recorded and are "0" (nothing on the outcomes path reads them).
"""

from __future__ import annotations

import csv
from pathlib import Path

import httpx
import pytest

STEP_MS = 300_000
XRP_5M = "XRP_USDT_USDT-5m-futures.csv"


class RecordedKlines:
    """`respx` side effect: the recorded XRPUSDT 5m klines; counts the calls."""

    def __init__(self, shared_data: Path) -> None:
        path = shared_data / "market" / XRP_5M
        if not path.exists():
            pytest.skip(f"{path} missing")
        with path.open() as f:
            self.rows = [
                [
                    int(r["open_time"]),
                    r["open"],
                    r["high"],
                    r["low"],
                    r["close"],
                    r["volume"],
                    int(r["open_time"]) + STEP_MS - 1,
                    "0",
                    0,
                    "0",
                    "0",
                    "0",
                ]
                for r in csv.DictReader(f)
            ]
        self.calls: list[dict[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        self.calls.append(params)
        assert params["symbol"] == "XRPUSDT" and params["interval"] == "5m"
        start, end = int(params["startTime"]), int(params["endTime"])
        limit = min(int(params.get("limit", 500)), 1500)
        rows = [r for r in self.rows if start <= int(r[0]) <= end][:limit]  # type: ignore[call-overload]
        return httpx.Response(200, json=rows)
