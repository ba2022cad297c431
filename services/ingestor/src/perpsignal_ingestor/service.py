"""The ingestor service: one scheduler loop per source, two liquidation streams, commands.

Wiring is plain code: `IngestorService(settings)` builds one client per enabled source (a
keyed source without its key is switched off with one log line), a `SourceLoop` per poller,
the liquidation streams with their aggregator, and a `ConsumerLoop` (group `ingestor`) on
`commands.v1` that tracks symbols on demand with a TTL. The same group membership shards
the symbol universe between replicas (`shards.py`): the per-symbol sources poll only the
symbols of this replica's partitions, the market-wide ones run where partition 0 is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from aiokafka import TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from perpsignal_common.db.engine import create_engine, create_sessionmaker
from perpsignal_common.events.base import Event, deterministic_id
from perpsignal_common.events.market import CandleClosedV1, TrackCommandV1
from perpsignal_common.events.topics import Topic
from perpsignal_common.kafka.consumer import ConsumerLoop, ConsumerOptions, Record
from perpsignal_common.runtime import KafkaService
from perpsignal_connectors.alternative_me.http import FearGreedHttp
from perpsignal_connectors.binance_usdm.http import BinanceUsdmHttp
from perpsignal_connectors.binance_usdm.stream import BinanceUsdmStream
from perpsignal_connectors.coinapi.http import CoinApiHttp
from perpsignal_connectors.coingecko.http import CoinGeckoHttp
from perpsignal_connectors.coinglass.http import CoinglassHttp
from perpsignal_connectors.coinglass.stream import CoinglassStream
from perpsignal_connectors.keys import key_env
from perpsignal_connectors.lunarcrush.http import LunarCrushHttp
from perpsignal_connectors.okx.http import OkxHttp
from perpsignal_connectors.redact import remember
from perpsignal_ingestor.budget import binance_limiter
from perpsignal_ingestor.listings import ListingMonitor
from perpsignal_ingestor.publisher import Publisher
from perpsignal_ingestor.scheduler import SourceLoop
from perpsignal_ingestor.settings import KEY_FIELDS, IngestorSettings
from perpsignal_ingestor.shards import ShardMap, partition_of
from perpsignal_ingestor.sources.binance import (
    BinanceFundingPoller,
    BinanceMarketPoller,
    BinanceRatiosPoller,
)
from perpsignal_ingestor.sources.liquidations import (
    LiquidationAggregator,
    LiquidationRelay,
    Outbox,
    flush_loop,
)
from perpsignal_ingestor.sources.vendors import (
    CoinApiPoller,
    CoinGeckoPoller,
    CoinglassPoller,
    FearGreedPoller,
    LunarCrushPoller,
    OkxPoller,
)
from perpsignal_ingestor.universe import Universe

log = logging.getLogger(__name__)

# source -> (VendorKeys field, documented variable from the registry shared with the gateway)
KEYED = {
    "coinglass": ("coinglass_api_key", key_env("coinglass")),
    "coinglass_stream": ("coinglass_api_key", key_env("coinglass")),
    "lunarcrush": ("lunarcrush_api_key", key_env("lunarcrush")),
    "coinapi": ("coinapi_api_key", key_env("coinapi")),
}
# Sources that run on every replica owning a shard (per-symbol polls of its own symbols;
# `listings` reads exchangeInfo for the universe and announces only on the leader). Every
# other source is market-wide, or has a per-key plan budget that replicas must not
# multiply, and runs on partition 0's owner only.
SHARDED = {"binance", "binance_ratios", "binance_funding", "okx", "listings"}


class IngestorService(KafkaService):
    """Polls every market-data vendor and publishes typed events."""

    def __init__(self, settings: IngestorSettings, clock: Callable[[], float] = time.time):
        super().__init__("ingestor", settings)
        self.cfg = settings
        self.clock = clock
        # every configured key is masked in vendor text, whichever client sent it
        for field in KEY_FIELDS.values():
            if (key := getattr(settings.keys, field)) is not None:
                remember(key.get_secret_value())
        self.publisher = Publisher(self.producer)
        self.shard = ShardMap()
        self._commands_topic = settings.kafka.topic(Topic.COMMANDS)
        self.universe = Universe(
            settings.symbols(), settings.ingestor_min_quote_volume, clock, shard=self.shard
        )
        self.sources = self._enabled_sources()
        self.source_loops: list[SourceLoop] = []
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._engine: AsyncEngine | None = None
        self.sessions: async_sessionmaker[AsyncSession] | None = None
        self._build()
        # the group on commands.v1 is both the command reader and the shard coordinator: a
        # new owner of a partition replays its commands (on-demand symbols and their TTLs)
        self.commands = ConsumerLoop(
            kafka=settings.kafka,
            service="ingestor",
            producer=self.producer,
            handler=self.handle_command,
            options=ConsumerOptions(
                group_id="ingestor",
                topics=[Topic.COMMANDS],
                rewind_on_assign=-1,
                on_assigned=self._on_assigned,
                on_revoked=self._on_revoked,
            ),
        )
        self.loops.append(self.commands)
        self.tasks.append(self._report_shards)

    def _enabled_sources(self) -> set[str]:
        enabled = self.cfg.sources()
        missing: dict[str, list[str]] = {}
        for source, (field, env) in KEYED.items():
            if source in enabled and getattr(self.cfg.keys, field) is None:
                enabled.discard(source)
                missing.setdefault(env, []).append(source)
        # Logged from on_start, once logging is configured (build() runs before that)
        self._missing_keys = missing
        return enabled

    def _key(self, field: str) -> str:
        secret = getattr(self.cfg.keys, field)
        return str(secret.get_secret_value())

    def _loop(
        self,
        name: str,
        cadence_s: float,
        poll: Callable[[], Awaitable[list[Event]]],
        timeout_s: float | None = None,
        on_published: Callable[[], None] | None = None,
    ) -> None:
        active = self.shard.active if name in SHARDED else self.shard.leads
        loop = SourceLoop(
            name,
            cadence_s,
            poll,
            self.publisher,
            timeout_s=timeout_s,
            on_published=on_published,
            active=active,
        )
        self.source_loops.append(loop)
        self.tasks.append(loop.run)

    def _build(self) -> None:
        cfg, urls, src = self.cfg, self.cfg.urls, self.sources
        timeout = httpx.Timeout(cfg.ingestor_http_timeout_s, connect=5.0)
        binance = BinanceUsdmHttp(
            urls.binance_fapi_base_url,
            limiter=binance_limiter(
                cfg.ingestor_binance_weight_budget, cfg.ingestor_replicas, self.clock
            ),
            timeout=timeout,
            clock=self.clock,
        )
        self._closers.append(binance.aclose)
        self.binance = binance
        tfs = cfg.timeframes()
        if "listings" in src:
            self.listings = ListingMonitor(
                binance,
                self.universe,
                None,
                self.publisher,
                bootstrap_window_s=cfg.ingestor_listing_bootstrap_window_h * 3600,
                clock=self.clock,
                announce=self.shard.leads,
            )
            # every replica reads exchangeInfo (its universe); only the leader announces
            self._loop("listings", cfg.ingestor_listings_cadence_s, self.listings.poll)
        market = BinanceMarketPoller(binance, self.universe, tfs, clock=self.clock)
        if "binance" in src:
            self._loop(
                "binance",
                cfg.ingestor_binance_cadence_s,
                market.poll,
                timeout_s=600,
                on_published=market.acknowledge,
            )
        if "binance_ratios" in src:
            ratios = BinanceRatiosPoller(binance, self.universe)
            self._loop("binance_ratios", cfg.ingestor_ratio_cadence_s, ratios.poll, 900)
        if "binance_funding" in src:
            funding = BinanceFundingPoller(binance, self.universe, market, clock=self.clock)
            self._loop(
                "binance_funding",
                cfg.ingestor_binance_cadence_s,
                funding.poll,
                900,
                on_published=funding.acknowledge,
            )
        self.aggregator = LiquidationAggregator(
            cfg.ingestor_liquidation_window_s,
            self.clock,
            owns=self.universe.owns,
            settled=self.shard.active,
        )
        if "binance_stream" in src:
            # every replica reads the all-market stream and relays its own symbols' orders
            relay = LiquidationRelay(
                self.publisher, self.aggregator, "binance_stream", owns=self.universe.owns
            )

            # Kafka not acknowledging is ridden out as the pollers do (120 s), the candle
            # sent again with the next one; raising out of the socket's handler ended the
            # stream task, and with it the process, at the first refused publish
            candles = Outbox(self.publisher, "binance_stream")

            async def on_candle(candle: CandleClosedV1) -> None:
                # subscriptions follow the shard within a moment; until then, filter
                if self.universe.owns(candle.symbol):
                    await candles.send([candle])

            async def on_connect() -> None:
                # candles closed while disconnected come from REST on the next poll
                market.forget_klines()

            def kline_streams() -> list[str]:
                symbols = self.universe.binance_symbols()[: cfg.ingestor_kline_stream_max_symbols]
                return [f"{s.lower()}@kline_{tf}" for s in symbols for tf in tfs]

            self._kline_streams = kline_streams

            self.binance_stream = BinanceUsdmStream(
                urls.binance_ws_url,
                relay.on_liquidation,
                on_candle=on_candle,
                kline_streams=kline_streams,
                on_connect=on_connect,
            )
            self.tasks.append(self._run_binance_stream)
        if "coinglass_stream" in src:
            relay = LiquidationRelay(
                self.publisher, self.aggregator, "coinglass_stream", owns=self.universe.owns
            )
            self.coinglass_stream = CoinglassStream(
                self._key("coinglass_api_key"), relay.on_liquidation, urls.coinglass_ws_url
            )
            self.tasks.append(self.coinglass_stream.ws.run)
        if src & {"binance_stream", "coinglass_stream"}:
            self.tasks.append(lambda stop: flush_loop(self.aggregator, self.publisher, stop))
        if "okx" in src:
            okx = OkxHttp(urls.okx_base_url, timeout=timeout, clock=self.clock)
            self._closers.append(okx.aclose)
            poller = OkxPoller(
                okx, self.universe, cfg.ingestor_okx_symbols.split(","), tfs, clock=self.clock
            )
            self._loop(
                "okx", cfg.ingestor_okx_cadence_s, poller.poll, on_published=poller.acknowledge
            )
        if "coinglass" in src:
            cg = CoinglassHttp(
                self._key("coinglass_api_key"),
                urls.coinglass_base_url,
                limit_per_min=cfg.keys.coinglass_plan_limit_per_min,
                clock=self.clock,
            )
            self._closers.append(cg.aclose)
            cgp = CoinglassPoller(
                cg,
                self.universe,
                cfg.ingestor_coinglass_interval,
                cfg.ingestor_coinglass_max_coins,
                clock=self.clock,
            )
            self._loop("coinglass", cfg.ingestor_coinglass_cadence_s, cgp.poll, 900)
        if "lunarcrush" in src:
            lc = LunarCrushHttp(
                self._key("lunarcrush_api_key"), urls.lunarcrush_base_url, clock=self.clock
            )
            self._closers.append(lc.aclose)
            lcp = LunarCrushPoller(lc, self.universe)
            self._loop("lunarcrush", cfg.ingestor_social_cadence_s, lcp.poll)
        if "coinapi" in src:
            ca = CoinApiHttp(
                self._key("coinapi_api_key"),
                urls.coinapi_base_url,
                clock=self.clock,
                daily_credits=cfg.keys.coinapi_daily_credits,
                gateway_share=cfg.keys.gateway_coinapi_daily_share,
            )
            self._closers.append(ca.aclose)
            cap = CoinApiPoller(ca, self.universe, cfg.ingestor_whale_min_notional_usd)
            self._loop("coinapi", cfg.ingestor_coinapi_cadence_s, cap.poll)
        if "coingecko" in src:
            key = cfg.keys.coingecko_api_key
            gecko = CoinGeckoHttp(
                urls.coingecko_base_url, key.get_secret_value() if key else None, clock=self.clock
            )
            self._closers.append(gecko.aclose)
            cgk = CoinGeckoPoller(
                gecko,
                market_cap_pages=cfg.ingestor_coingecko_market_cap_pages,
                volume_pages=cfg.ingestor_coingecko_volume_pages,
                new_coins=cfg.ingestor_coingecko_new_coins,
                calls_per_poll=cfg.ingestor_coingecko_calls_per_poll,
            )
            self._loop("coingecko", cfg.ingestor_social_cadence_s, cgk.poll)
        if "fear_greed" in src:
            fg = FearGreedHttp(urls.fear_greed_url, clock=self.clock)
            self._closers.append(fg.aclose)
            self._loop("fear_greed", cfg.ingestor_fear_greed_cadence_s, FearGreedPoller(fg).poll)

    async def on_start(self) -> None:
        """Say which keyed sources are off; open the database of the listings monitor."""
        log.info(
            "ingestor sources",
            extra={"sources": sorted(self.sources), "watch_list": self.cfg.symbols()},
        )
        for env, sources in self._missing_keys.items():
            log.warning(
                f"{sources[0]} disabled: {env} is not set", extra={"sources": sources, "env": env}
            )
        if "listings" in self.sources:
            self._engine = create_engine(self.cfg.database, pool_size=2)
            self.sessions = create_sessionmaker(self._engine)
            self.listings.sessions = self.sessions

    async def on_close(self) -> None:
        """Close HTTP pools and the database engine."""
        for close in self._closers:
            await close()
        if self._engine is not None:
            await self._engine.dispose()

    async def _run_binance_stream(self, stop: asyncio.Event) -> None:
        # connect once this replica owns symbols; then the kline streams follow the tracked
        # symbols (exchangeInfo, listings, commands and their TTLs, a rebalance) on the open
        # connection, checked every 0.5 s, instead of at the next reconnect (up to 24 h)
        while not stop.is_set():
            if not self.shard.active():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)
                continue
            session = asyncio.Event()
            task = asyncio.create_task(self.binance_stream.ws.run(session))
            try:
                while not stop.is_set() and not task.done():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 0.5)
                    added, removed = await self.binance_stream.follow_klines()
                    if added or removed:
                        log.info(
                            "tracked symbols changed: kline streams updated on the open socket",
                            extra={"added": added, "removed": removed},
                        )
            finally:
                session.set()
                await task

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        # before the partitions are released: stop every poll of their symbols, so the next
        # owner never overlaps (a cancelled poll's events are the next owner's to publish)
        self.shard.revoke(tp.partition for tp in revoked if tp.topic == self._commands_topic)
        for loop in self.source_loops:
            await loop.interrupt()
        log.info("shards revoked", extra={"partitions": sorted(tp.partition for tp in revoked)})

    async def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = self.commands.consumer
        topic = self._commands_topic
        count = len(consumer.partitions_for_topic(topic) or ()) or None
        if count is None:
            log.warning("commands topic has no partition metadata; owning no symbols")
            return
        coordinator = getattr(consumer, "_coordinator", None)  # aiokafka keeps it private
        member_id = getattr(coordinator, "member_id", None)
        self.shard.assign(
            (tp.partition for tp in consumer.assignment() if tp.topic == topic), count, member_id
        )
        doc = self.shards()
        log.info(
            "shards assigned",
            extra={
                "partitions": doc["partitions"],
                "partition_count": count,
                "leader": doc["leader"],
                "symbols": len(doc["symbols"]),
            },
        )

    def shards(self) -> dict[str, Any]:
        """Return what this replica owns: the `/shards` document of its ops server."""
        return self.shard.snapshot(self.universe.binance_symbols() + self.universe.off_binance())

    def is_ready(self) -> bool:
        """Ready once the group has answered: a replica beyond the partition count is a
        ready standby (it owns nothing until a member leaves), so rollouts never wait on it."""
        return self._started and self.shard.generation > 0

    async def _report_shards(self, stop: asyncio.Event) -> None:
        # the owned-symbols gauge follows the universe (exchangeInfo, commands, TTLs) too
        while not stop.is_set():
            self.shards()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5.0)

    def ops_routes(self) -> dict[str, Callable[[], Any]]:
        """Return the extra JSON endpoints of the ops server."""
        return {"/shards": self.shards}

    async def _forward(self, command: TrackCommandV1, record: Record) -> None:
        # keyed by another spelling (`solusdt`) whose hash is not the symbol's shard: send it
        # on, normalised, to the partition of the replica that polls the symbol (once: a
        # replay after a rebalance was forwarded when first read)
        if self.commands.is_replay(record):
            return
        forwarded = command.model_copy(
            update={
                "symbol": command.symbol.upper(),
                "event_id": deterministic_id("ingestor", "command.forward", command.event_id),
            }
        )
        await self.producer.publish(forwarded, wait=True)
        log.info("command forwarded to its shard", extra={"symbol": forwarded.symbol})

    async def handle_command(self, event: Event, record: Record) -> None:
        """Track or untrack a symbol on demand; the TTL counts from the command's own time."""
        if not isinstance(event, TrackCommandV1):
            return
        count = self.shard.partition_count
        if count and record.partition != partition_of(event.symbol, count):
            await self._forward(event, record)
            return
        if event.action == "untrack":
            self.universe.untrack(event.symbol)
            log.info("on-demand tracking stopped", extra={"symbol": event.symbol})
            return
        ttl = min(event.ttl_s, self.cfg.ingestor_command_ttl_max_s)
        until = event.observed_at.timestamp() + ttl
        if until > self.clock():
            self.universe.track(event.symbol, until)
            log.info("on-demand tracking", extra={"symbol": event.symbol, "ttl_s": ttl})
