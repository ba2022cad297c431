"""The gateway read-model snapshot: `perpsignal.gateway.snapshot.v1` (compacted, one partition).

A new gateway replica would otherwise re-read every retained market event before it serves.
Instead one replica (the writer) publishes, per key, the state the read model serves for that
key and the source offsets that state is complete to; a new replica loads the newest record
per key, resumes each source partition at the smallest recorded offset and skips, per key,
the events its record already holds. Every record is self-contained, so records from two
writers (a rebalance) or duplicates (the embedded broker does not compact) are harmless.

A `dump` record closes a full dump (every key written again) and names the snapshot-topic
offset where that dump began: a reader that read from there on has every key.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from perpsignal_common.events.base import Event
from perpsignal_common.events.market import (
    CandleClosedV1,
    CoinProfileV1,
    FearGreedV1,
    FundingRateV1,
    LiquidationBucketV1,
    LiquidationOrderV1,
    ListingDetectedV1,
    LongShortRatioV1,
    OpenInterestV1,
    SocialMetricsV1,
    TakerFlowV1,
    TickerV1,
    WhaleTradeV1,
)
from perpsignal_common.events.signals import MssScoredV1, SignalJudgedV1
from perpsignal_common.events.status import SourceStatusV1
from perpsignal_common.events.topics import Topic
from perpsignal_common.events.values import Count

SnapshotKind = Literal["symbol", "liquidations", "mss", "global", "dump"]

AnyMarketEvent = Annotated[
    CandleClosedV1
    | FundingRateV1
    | OpenInterestV1
    | LongShortRatioV1
    | TakerFlowV1
    | LiquidationBucketV1
    | SocialMetricsV1
    | WhaleTradeV1
    | CoinProfileV1
    | TickerV1,
    Field(discriminator="type"),
]


class GatewaySnapshotV1(Event):
    """The gateway read model's state for one key, complete up to the source offsets given.

    Kafka key `<kind>:<symbol>`; `symbol` is the symbol (`symbol`, `liquidations`), the coin
    (`mss`), `global` or `dump`. `observed_at` is when the writer captured the state.
    """

    topic: ClassVar[str] = Topic.GATEWAY_SNAPSHOT
    type: Literal["gateway.snapshot"] = "gateway.snapshot"
    kind: SnapshotKind
    writer: str = Field(description="The gateway replica that wrote it (host name and pid)")
    complete_to: dict[str, list[Count]] = Field(
        description="Per source topic (logical name), the next offset of each partition "
        "(list index = partition) whose events this state already includes"
    )
    signal: SignalJudgedV1 | None = Field(default=None, description="kind=symbol")
    market: list[AnyMarketEvent] = Field(
        default_factory=list, description="kind=symbol: the latest event of each market slot"
    )
    listing: ListingDetectedV1 | None = Field(default=None, description="kind=symbol")
    liquidations: list[LiquidationOrderV1] = Field(
        default_factory=list, description="kind=liquidations: recent orders, oldest first"
    )
    mss: MssScoredV1 | None = Field(default=None, description="kind=mss")
    fear_greed: FearGreedV1 | None = Field(default=None, description="kind=global")
    sources: list[SourceStatusV1] = Field(
        default_factory=list, description="kind=global: the latest status of each source"
    )
    dump_began_at: Count | None = Field(
        default=None,
        description="kind=dump: snapshot-topic offset of the first record of the full dump "
        "this record closes",
    )

    def partition_key(self) -> bytes:
        """Return the compaction key: `<kind>:<symbol>`."""
        return f"{self.kind}:{self.symbol}".encode()
