"""Topic registry: the single source of topic names, partitions and retention.

Used by every service at start-up (idempotent creation), by `perpsignal topics`, by the
AsyncAPI export and by the Kubernetes `KafkaTopic` manifests test.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

DAY_MS = 24 * 3600 * 1000


class Topic(StrEnum):
    """Every topic of the platform (contract: design.md section 2)."""

    MARKET = "perpsignal.market.v1"
    MARKET_GLOBAL = "perpsignal.market.global.v1"
    LIQUIDATIONS = "perpsignal.liquidations.v1"
    LISTINGS = "perpsignal.listings.v1"
    COMMANDS = "perpsignal.commands.v1"
    SIGNALS = "perpsignal.signals.v1"
    MSS = "perpsignal.mss.v1"
    SIGNALS_JUDGED = "perpsignal.signals.judged.v1"
    OUTCOMES = "perpsignal.outcomes.v1"
    JUDGE_REQUESTS = "perpsignal.judge.requests.v1"
    JUDGE_REPLIES = "perpsignal.judge.replies.v1"
    GATEWAY_SNAPSHOT = "perpsignal.gateway.snapshot.v1"


DLQ_SUFFIX = ".dlq"


def dlq_topic(topic: str) -> str:
    """Return the dead-letter topic of `topic`."""
    return topic + DLQ_SUFFIX


@dataclass(frozen=True)
class TopicSpec:
    """How a topic is created: partitions, retention, cleanup and what its key means.

    `compacted`: `cleanup.policy=compact` on Apache Kafka (the latest record per key is kept
    forever; `retention_ms` does not apply); the embedded broker ignores it, so readers of a
    compacted topic must take the newest record per key themselves. `segment_ms` rolls the
    active segment that often (only closed segments are compacted). `dead_letters`: whether
    the topic gets a `.dlq` companion (only topics some consumer group handles need one).
    """

    name: str
    partitions: int
    retention_ms: int
    key: str
    description: str
    compacted: bool = False
    segment_ms: int | None = None
    dead_letters: bool = True

    def configs(self) -> dict[str, str]:
        """Return the topic-level configs this spec sets (admin client and KafkaTopic)."""
        out = {
            "retention.ms": str(self.retention_ms),
            "cleanup.policy": "compact" if self.compacted else "delete",
        }
        if self.segment_ms is not None:
            out["segment.ms"] = str(self.segment_ms)
        return out


DEFAULT_PARTITIONS = 12

TOPIC_SPECS: tuple[TopicSpec, ...] = (
    TopicSpec(
        Topic.MARKET,
        DEFAULT_PARTITIONS,
        7 * DAY_MS,
        "symbol",
        "typed market events: candle, funding, OI, ratios, taker flow, liquidation "
        "buckets, social, whale trades, coin profiles, tickers",
    ),
    TopicSpec(
        Topic.MARKET_GLOBAL,
        3,
        30 * DAY_MS,
        "metric name or `source:<name>`",
        "market-wide events (fear & greed) and data-source status changes",
    ),
    TopicSpec(
        Topic.LIQUIDATIONS,
        DEFAULT_PARTITIONS,
        2 * DAY_MS,
        "symbol",
        "individual liquidation orders",
    ),
    TopicSpec(Topic.LISTINGS, 3, 365 * DAY_MS, "symbol", "newly listed perpetuals"),
    # 12 partitions: the ingestor's consumer group on this topic shards the symbol universe
    # (a replica polls the symbols of its partitions), so partitions bound ingestor replicas
    TopicSpec(
        Topic.COMMANDS,
        DEFAULT_PARTITIONS,
        1 * DAY_MS,
        "symbol",
        "track/untrack requests; its ingestor group assignment shards the symbol universe",
    ),
    TopicSpec(Topic.SIGNALS, DEFAULT_PARTITIONS, 30 * DAY_MS, "symbol", "scorer output"),
    TopicSpec(Topic.MSS, 3, 30 * DAY_MS, "coin", "MSS emerging-coin results"),
    TopicSpec(
        Topic.SIGNALS_JUDGED,
        DEFAULT_PARTITIONS,
        90 * DAY_MS,
        "symbol",
        "signal + aiVerdictLayer + trade plan (the product)",
    ),
    TopicSpec(
        Topic.OUTCOMES,
        DEFAULT_PARTITIONS,
        90 * DAY_MS,
        "signal id",
        "each horizon's evaluation as it completes",
    ),
    TopicSpec(
        Topic.JUDGE_REQUESTS,
        3,
        1 * DAY_MS,
        "correlation id",
        "on-request validation of a caller-supplied signal",
    ),
    TopicSpec(Topic.JUDGE_REPLIES, 3, 1 * DAY_MS, "correlation id", "replies to judge requests"),
    # one partition: the writer's records stay in order (a full dump, then its end marker)
    TopicSpec(
        Topic.GATEWAY_SNAPSHOT,
        1,
        7 * DAY_MS,
        "`<kind>:<id>` (e.g. `symbol:BTCUSDT`, `mss:PEPE`, `global`, `dump`)",
        "the gateway read model's state per key with the source offsets it is complete to; "
        "a new gateway replica starts from it instead of re-reading the market history",
        compacted=True,
        segment_ms=3600 * 1000,
        dead_letters=False,
    ),
)


def all_topic_specs(*, with_dlq: bool = True) -> list[TopicSpec]:
    """Return every topic spec, with a DLQ topic for each consumed topic when asked."""
    specs = list(TOPIC_SPECS)
    if with_dlq:
        specs += [
            TopicSpec(
                dlq_topic(s.name),
                s.partitions,
                30 * DAY_MS,
                s.key,
                f"dead letters of {s.name} (error and origin in headers)",
            )
            for s in TOPIC_SPECS
            if s.dead_letters
        ]
    return specs
