"""The klines fallback on a recorded Binance body (../shared/data/api/binance_usdm)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import respx

from perpsignal_outcomes.prices import BinanceKlineSource
from tests.binance_klines import RecordedKlines

BASE = "https://fapi.example.test"


@pytest.fixture
def recorded(shared_data: Path) -> list[list[object]]:
    path = shared_data / "api" / "binance_usdm" / "fapi_v1_klines.recorded.json"
    if not path.exists():
        pytest.skip(f"{path} missing")
    return json.loads(path.read_text())


async def test_fetches_closed_candles_from_recorded_body(recorded) -> None:
    first = datetime.fromtimestamp(int(recorded[0][0]) / 1000, tz=UTC)  # type: ignore[arg-type]
    end = first + timedelta(minutes=len(recorded))
    with respx.mock(assert_all_called=True) as mock:
        route = mock.get(f"{BASE}/fapi/v1/klines").mock(
            return_value=httpx.Response(200, json=recorded)
        )
        source = BinanceKlineSource(BASE)
        try:
            candles = await source.fetch_candles("BTCUSDT", "1m", first, end)
        finally:
            await source.close()
    params = route.calls.last.request.url.params
    assert params["symbol"] == "BTCUSDT" and params["interval"] == "1m"
    assert int(params["startTime"]) == int(first.timestamp() * 1000)
    assert len(candles) == len(recorded)
    # second recorded row: open 71471.00, high 71471.00, low 70459.40, close 70459.40
    c = candles[1]
    assert c.open_time == first + timedelta(minutes=1)
    assert (c.open, c.high, c.low, c.close) == (71471.0, 71471.0, 70459.4, 70459.4)


async def test_venue_error_surfaces_to_the_evaluator(recorded) -> None:
    start = datetime(2024, 4, 10, tzinfo=UTC)
    with respx.mock() as mock:
        mock.get(f"{BASE}/fapi/v1/klines").mock(return_value=httpx.Response(400, json={}))
        source = BinanceKlineSource(BASE)
        try:
            with pytest.raises(Exception):  # noqa: B017 - any venue error; evaluator retries
                await source.fetch_candles("BTCUSDT", "1m", start, start + timedelta(hours=1))
        finally:
            await source.close()


async def test_a_range_longer_than_one_call_is_fetched_page_by_page(shared_data: Path) -> None:
    """Binance serves at most 1500 klines a call: six days of 5m candles (1728) take two."""
    venue = RecordedKlines(shared_data)
    start = datetime(2021, 11, 15, tzinfo=UTC)  # the recording's first candle
    end = start + timedelta(days=6)
    with respx.mock() as mock:
        mock.get(f"{BASE}/fapi/v1/klines").mock(side_effect=venue)
        source = BinanceKlineSource(BASE)
        try:
            candles = await source.fetch_candles("XRPUSDT", "5m", start, end)
        finally:
            await source.close()
    assert len(candles) == 6 * 288  # was 1500: the last 19 hours were never asked for
    assert [c.open_time for c in candles] == [start + i * timedelta(minutes=5) for i in range(1728)]
    last = venue.rows[1727]
    assert (candles[-1].open, candles[-1].close) == (float(last[1]), float(last[4]))  # type: ignore[arg-type]
    assert len(venue.calls) == 2


async def test_klines_of_another_interval_are_not_taken_for_the_one_asked(recorded) -> None:
    """Asked for 5m, a venue (or a proxy) answering with its 1m klines (the recorded body):
    none of them is a 5m candle, so none is returned to be stored as one."""
    first = datetime.fromtimestamp(int(recorded[0][0]) / 1000, tz=UTC)  # type: ignore[arg-type]
    start = first.replace(minute=first.minute - first.minute % 5, second=0)
    with respx.mock() as mock:
        mock.get(f"{BASE}/fapi/v1/klines").mock(return_value=httpx.Response(200, json=recorded))
        source = BinanceKlineSource(BASE)
        try:
            candles = await source.fetch_candles("BTCUSDT", "5m", start, start + timedelta(hours=1))
        finally:
            await source.close()
    assert candles == []  # were the three 1m candles, stored as 5m ones
