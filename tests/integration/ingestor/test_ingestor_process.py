"""The ingestor as its own process against the fake vendors, the embedded broker and
PostgreSQL: typed events on every topic, liquidations relayed, a new listing announced once,
on-demand tracking from commands.v1, and a clean SIGTERM."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from perpsignal_common.embedded import free_port
from perpsignal_common.events.base import deterministic_id, utcnow
from perpsignal_common.events.market import TrackCommandV1
from perpsignal_common.events.registry import decode
from perpsignal_common.events.topics import Topic
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.settings import KafkaSettings
from tests.fakes.vendors import FakeVendors, Fault
from tests.helpers import ServiceProcess, TopicReader, eventually

pytestmark = [pytest.mark.kafka, pytest.mark.db]


def _env(fake: FakeVendors, kafka_env: dict[str, str], database_url: str) -> dict[str, str]:
    return {
        **kafka_env,
        **fake.env(),
        "DATABASE_URL": database_url,
        "OPS_PORT": str(free_port()),
        "LOG_LEVEL": "INFO",
        "INGESTOR_SYMBOLS": "BTCUSDT,ETHUSDT",
        "INGESTOR_TIMEFRAMES": "5m,1h",
        "COINGLASS_API_KEY": "test-key",
        "LUNARCRUSH_API_KEY": "test-key",
        # CoinAPI deliberately without a key: disabled with one line, the rest keeps going
        # fast cadences stay inside the weight budget (~30 weight per poll)
        "INGESTOR_BINANCE_CADENCE_S": "2",
        "INGESTOR_BINANCE_WEIGHT_BUDGET": "2400",
        "INGESTOR_RATIO_CADENCE_S": "1",
        "INGESTOR_LISTINGS_CADENCE_S": "0.5",
        "INGESTOR_OKX_CADENCE_S": "1",
        "INGESTOR_COINGLASS_CADENCE_S": "5",
        "INGESTOR_COINGLASS_INTERVAL": "1d",
        "INGESTOR_SOCIAL_CADENCE_S": "5",
        "INGESTOR_FEAR_GREED_CADENCE_S": "5",
        "INGESTOR_LIQUIDATION_WINDOW_S": "1",
    }


async def test_ingestor_process_end_to_end(
    shared_data: Path,
    kafka_settings: KafkaSettings,
    kafka_env: dict[str, str],
    database_url: str,
    tmp_path: Path,
) -> None:
    fake = await FakeVendors(shared_data, symbols=["BTCUSDT", "ETHUSDT", "SOLUSDT"]).start()
    env = _env(fake, kafka_env, database_url)
    proc = ServiceProcess("ingestor", env, tmp_path).start()
    producer = EventProducer(kafka_settings, service="test")
    try:
        async with TopicReader(kafka_settings, Topic.MARKET) as market:

            async def have_market() -> bool:
                await market.poll()
                seen = {(e.type, e.venue) for e in market.events()}  # type: ignore[attr-defined]
                return {
                    ("market.candle", "binance"),
                    ("market.funding", "binance"),
                    ("market.open_interest", "binance"),
                    ("market.ticker", "binance"),
                    ("market.long_short_ratio", "binance"),
                    ("market.taker_flow", "binance"),
                    ("market.candle", "okx"),
                    ("market.liquidation_bucket", "coinglass"),
                    ("market.social", "lunarcrush"),
                    ("market.coin_profile", "coingecko"),
                } <= seen

            await eventually(have_market, timeout=60, what=f"every market kind\n{proc.logs()}")
            events = market.events()
            assert {e.symbol for e in events if e.source == "binance"} == {"BTCUSDT", "ETHUSDT"}
            assert all(
                r.key == e.symbol.encode() for r, e in zip(market.records, events, strict=True)
            )
            # re-polls every second, yet every fact is published once
            ids = Counter(e.event_id for e in events)
            assert ids.most_common(1)[0][1] == 1

        async with TopicReader(kafka_settings, Topic.MARKET_GLOBAL) as glob:
            # the topic also carries the sources' `source.status` changes (keyed source:<name>)
            async def fear_greed() -> list[Any]:
                await glob.poll()
                return [r for r in glob.records if decode(r.value).type == "global.fear_greed"]

            await eventually(fear_greed, timeout=30, what="a fear & greed reading")
            fng = await fear_greed()
            assert all(r.key == b"fear_greed" for r in fng)
            assert all(
                decode(r.value).type == "source.status" and r.key.startswith(b"source:")
                for r in glob.records
                if r not in fng
            )

        # liquidation stream: relayed raw and bucketed
        msg = fake.load("binance", "ws_forceOrder.doc_example.json")
        await eventually(lambda: fake.push("binance", msg), timeout=30, what="WS client")
        async with TopicReader(kafka_settings, Topic.LIQUIDATIONS) as liq:
            rec = (await liq.wait_for(1, timeout=30))[0]
            ev = decode(rec.value)
            assert ev.type == "liquidation.order" and rec.key == msg["o"]["s"].encode()
            assert ev.liquidated_side == "LONG"  # type: ignore[attr-defined]

        # a new perpetual after the known set was seeded: announced exactly once
        await eventually(
            lambda: fake.requests[("binance", "/fapi/v1/exchangeInfo")] >= 2,
            timeout=30,
            what="listings seeded",
        )
        fake.add_listing("NEWUSDT", int(utcnow().timestamp() * 1000) - 5_000)
        async with TopicReader(kafka_settings, Topic.LISTINGS) as listings:
            rec = (await listings.wait_for(1, timeout=30))[0]
            assert decode(rec.value).symbol == "NEWUSDT"
            polls = fake.requests[("binance", "/fapi/v1/exchangeInfo")]
            await eventually(
                lambda: fake.requests[("binance", "/fapi/v1/exchangeInfo")] >= polls + 3,
                timeout=30,
                what="more listing polls",
            )
            await listings.poll()
            assert len(listings.records) == 1

        # on-demand tracking of a symbol outside the watch list
        await producer.start()
        await producer.publish(
            TrackCommandV1(
                event_id=deterministic_id("test", "track", "SOLUSDT"),
                source="test",
                symbol="SOLUSDT",
                observed_at=utcnow(),
                ttl_s=600,
            ),
            wait=True,
        )

        async def sol_candles() -> bool:
            await market.poll()
            return any(e.symbol == "SOLUSDT" and e.type == "market.candle" for e in market.events())

        async with TopicReader(kafka_settings, Topic.MARKET) as market:
            await eventually(sol_candles, timeout=60, what="SOLUSDT tracked on demand")

        logs = proc.logs()
        assert logs.count("COINAPI_API_KEY is not set") == 1
        assert proc.terminate(timeout=30) == 0
    finally:
        proc.kill()
        await producer.stop()
        await fake.stop()


async def test_broken_vendors_never_stop_the_others(
    shared_data: Path,
    kafka_settings: KafkaSettings,
    kafka_env: dict[str, str],
    database_url: str,
    tmp_path: Path,
) -> None:
    fake = await FakeVendors(shared_data, symbols=["BTCUSDT", "ETHUSDT"]).start()
    # OKX unreachable, CoinGecko answers HTML, LunarCrush wrong types, Binance klines truncated
    fake.inject("okx", "/", Fault("status", status=503, times=None))
    fake.inject("coingecko", "/", Fault("html", times=None))
    fake.inject("lunarcrush", "/", Fault("wrong_types", times=None))
    fake.inject("binance", "/fapi/v1/klines", Fault("truncated", times=None))
    env = _env(fake, kafka_env, database_url)
    proc = ServiceProcess("ingestor", env, tmp_path).start()
    try:
        async with TopicReader(kafka_settings, Topic.MARKET) as market:

            async def healthy_sources_publish() -> bool:
                await market.poll()
                types = {e.type for e in market.events() if e.source == "binance"}
                return {"market.funding", "market.open_interest", "market.ticker"} <= types

            await eventually(healthy_sources_publish, timeout=60, what=proc.logs())
            async with TopicReader(kafka_settings, Topic.MARKET_GLOBAL) as glob:
                await glob.wait_for(1, timeout=30)
            # several more polls of every broken vendor
            await eventually(
                lambda: (
                    fake.requests[("okx", "/api/v5/market/candles")] >= 6
                    and fake.requests[("lunarcrush", "/public/coins/list/v2")] >= 2
                ),
                timeout=60,
                what="repeated polls of broken vendors",
            )
            await market.poll()
            venues = {(e.venue, e.type) for e in market.events()}  # type: ignore[attr-defined]
            assert not {v for v, _ in venues} & {"okx", "coingecko", "lunarcrush"}
            assert ("binance", "market.candle") not in venues
        assert proc.proc is not None and proc.proc.poll() is None  # still running
        logs = proc.logs()
        assert "malformed vendor response" in logs and '"endpoint":"coinsList"' in logs
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"http://127.0.0.1:{env['OPS_PORT']}/metrics")).text
        assert (
            'perpsignal_vendor_errors_total{endpoint="coinsList",kind="malformed",'
            'vendor="lunarcrush"}' in metrics
        )
        assert 'perpsignal_vendor_circuit_state{vendor="okx"} 2.0' in metrics
        assert proc.terminate(timeout=30) == 0
    finally:
        proc.kill()
        await fake.stop()
