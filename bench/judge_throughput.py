"""Judge throughput: rule judge signals/s, and the LLM path at 2 s simulated latency.

* Rules: what `JudgeService` does per record, one process: `JudgeCodec.decode` ->
  `Judge.judge` (LLM off) -> `JudgeCodec.encode`, against the shared codec alone
  (`registry.decode` -> `registry.encode` of the scored signal) measured in the same run; the
  same path with the shared codec instead of `JudgeCodec` is reported next to it. The signals
  are what the scorer sends: per symbol, 30-candle windows one bar apart, symbols interleaved,
  no candle shared between symbols, so the codec meets one new candle per signal as in
  production. Each row is the best of 5 cold passes, rows alternating. Goal (same run):
  end-to-end >= 0.5x the codec alone, i.e. the judging itself costs at most what decoding
  and encoding the signal does; >= 5,000 judged/s is reported as an absolute figure.
* LLM: the real SDK path with a transport that answers after 2 s, driven through the real
  `ConsumerLoop` batch processing; throughput at LLM concurrency 4 and 16 against
  concurrency 1 measured in the same run. Goal: near-linear scaling (>= 0.8 x the bound)
  with every symbol's judged signals published in input order.

Run: `uv run python bench/judge_throughput.py`.
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import openai
from aiokafka.structs import ConsumerRecord

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Row, report
from perpsignal_common.events.base import Event, deterministic_id
from perpsignal_common.events.factors import funding_inputs, long_short_inputs
from perpsignal_common.events.registry import decode, encode
from perpsignal_common.events.signals import (
    FACTOR_NAMES,
    FactorScore,
    Ohlc,
    Scalar,
    SignalJudgedV1,
    SignalScoredV1,
    SmcSummary,
)
from perpsignal_common.kafka.consumer import ConsumerLoop, ConsumerOptions
from perpsignal_common.settings import KafkaSettings
from perpsignal_judge.codec import JudgeCodec
from perpsignal_judge.judge import Judge
from perpsignal_judge.llm import Budget, LlmJudge
from perpsignal_judge.settings import JudgeSettings

REPO = Path(__file__).resolve().parents[1]
XRP = REPO.parent / "shared" / "data" / "market" / "XRP_USDT_USDT-1h-futures.csv"
LATENCY_S = 2.0
T0 = datetime(2021, 11, 17, tzinfo=UTC)
# Candles per signal: what the scorer really sends (SCORER_SIGNAL_CANDLES, default 30). The
# benchmark used 60 before, which doubled the codec's work per signal over production's.
SIGNAL_CANDLES = 30
ROUNDS = 5


def candles() -> list[Ohlc]:
    """Real XRPUSDT 1h candles when ../shared is present, else a labelled synthetic walk."""
    if XRP.exists():
        with XRP.open() as fh:
            return [
                Ohlc(
                    open_time=datetime.fromtimestamp(int(r["open_time"]) / 1000, UTC),
                    open=float(r["open"]),
                    high=float(r["high"]),
                    low=float(r["low"]),
                    close=float(r["close"]),
                    volume=float(r["volume"]),
                )
                for r in csv.DictReader(fh)
            ]
    print("(../shared/data absent: using a synthetic sine walk for timing only)")
    out = []
    for i in range(100):
        c = 1 + 0.05 * math.sin(i / 7)
        out.append(
            Ohlc(open_time=T0 + timedelta(hours=i), open=c, high=c * 1.01, low=c * 0.99, close=c)
        )
    return out


def scorer_stream(cs: list[Ohlc], symbols: int = 50, per_symbol: int = 60) -> list[bytes]:
    """Encoded signals as the scorer publishes them, symbols interleaved.

    Each symbol's signals carry 30-candle windows one bar apart (each brings one new candle),
    cut from its own copy of the recorded candles moved later in time: no two symbols share a
    candle.
    """
    span = timedelta(hours=len(cs))
    histories = [
        [c.model_copy(update={"open_time": c.open_time + k * span}) for c in cs]
        for k in range(symbols)
    ]
    return [
        encode(make_signal(f"S{k}USDT", j * symbols + k, histories[k][j : j + SIGNAL_CANDLES]))
        for j in range(per_symbol)
        for k in range(symbols)
    ]


def _inputs(name: str, seq: int) -> dict[str, Scalar]:
    """The inputs the judge reads, with the scorer's keys (its own builders)."""
    if name == "funding":
        return funding_inputs(rate_8h=0.0002 * (seq % 7), previous_rate_8h=0.0001)
    if name == "long_short":
        share = 0.4 + 0.05 * (seq % 8)
        return long_short_inputs(
            global_long_share=share, top_account_long_share=share, global_share_change=0.01
        )
    return {}


def make_signal(symbol: str, seq: int, window: list[Ohlc]) -> SignalScoredV1:
    factors = tuple(
        FactorScore(
            name=n,  # type: ignore[arg-type]
            score=50 + ((seq + k) % 5) * 6,
            weight=12.5,
            contribution=0.125 * ((seq + k) % 5) * 6,
            inputs=_inputs(n, seq),
        )
        for k, n in enumerate(FACTOR_NAMES)
    )
    return SignalScoredV1(
        event_id=deterministic_id("bench", symbol, seq),
        source="scorer",
        symbol=symbol,
        observed_at=T0 + timedelta(hours=seq),
        signal_id=deterministic_id("bench-sig", symbol, seq),
        timeframe="1h",
        direction="LONG" if seq % 3 else "SHORT",
        score=60 + seq % 30,
        confidence=40 + seq % 50,
        price=window[-1].close,
        factors=factors,
        top_factors=("momentum", "funding", "oi_trend"),
        smc=SmcSummary(bias="BULLISH" if seq % 2 else "NEUTRAL"),
        candles=tuple(window),
    )


async def bench_rules(cs: list[Ohlc]) -> list[Row]:
    """Best of `ROUNDS` passes per row, the rows alternating within each round, so a machine
    shared with other work loads them alike (one pass is ~0.5 s: a neighbour's burst moved
    single-pass figures by +-30 %). Every pass starts cold: a fresh judge and codec, so each
    symbol's first signal validates all of its candles."""
    raws = scorer_stream(cs)
    scored = [decode(raw) for raw in raws]

    async def codec_only() -> None:
        for raw in raws:
            encode(decode(raw))

    async def shared_codec() -> None:
        judge = Judge(JudgeSettings())
        for raw in raws:
            event = decode(raw)
            assert isinstance(event, SignalScoredV1)
            encode(await judge.judge(event))

    async def service_path() -> None:
        # wired as JudgeService wires them
        judge_codec = JudgeCodec()
        judge = Judge(JudgeSettings(), known_ranges=judge_codec.true_ranges)
        for raw in raws:
            event = judge_codec.decode(raw)
            assert isinstance(event, SignalScoredV1)
            judge_codec.encode(await judge.judge(event))

    async def rules_only() -> None:
        judge = Judge(JudgeSettings())
        for event in scored:
            judge.judge_rules(event)  # type: ignore[arg-type]

    passes = {"codec": codec_only, "shared": shared_codec, "judged": service_path}
    passes["judge_only"] = rules_only
    best = dict.fromkeys(passes, float("inf"))
    for _ in range(ROUNDS):
        for name, run in passes.items():
            started = time.perf_counter()
            await run()
            best[name] = min(best[name], time.perf_counter() - started)
    codec, shared, judged, judge_only = (len(raws) / best[name] for name in passes)
    base = "codec only (decode+encode)"
    return [
        Row(
            "rule judge end-to-end (decode+judge+encode)",
            judged,
            "signals/s",
            base,
            codec,
            ">= 0.50x (judging costs at most the codec)",
            goal_ratio=0.5,
        ),
        Row("rule judge only (Judge.judge_rules)", judge_only, "signals/s", base, codec, "info"),
        Row.absolute(
            "rule judge end-to-end (decode+judge+encode)",
            judged,
            "signals/s",
            ">= 5,000/s",
            limit=5000.0,
            baseline_name=base,
            baseline_value=codec,
        ),
        Row(
            "rule judge end-to-end, shared codec (registry decode/encode)",
            shared,
            "signals/s",
            base,
            codec,
            "(for comparison)",
        ),
    ]


class _Collector:
    """Stands in for EventProducer: records publish order, acknowledges at once."""

    def __init__(self) -> None:
        self.out: list[SignalJudgedV1] = []

    async def publish(self, event: Event, **_: Any) -> None:
        assert isinstance(event, SignalJudgedV1)
        self.out.append(event)

    async def wait_delivered(self, deliveries: object = None) -> None:
        return None


def _completion_body(request: bytes) -> bytes:
    """The model's answer: the rule judge's own verdict, read from the prompt's data block.

    The judge overrules a model that takes (CONFIRM/DOWNSIZE) a signal its rules SKIP or
    WAIT; an always-CONFIRM model would measure the fallback path, not the LLM's.
    """
    user = json.loads(request)["messages"][-1]["content"]
    rules = json.loads(user.removeprefix("<data>").removesuffix("</data>"))["rule_judge"]
    answer = {
        "verdict": rules["verdict"],
        "risk_mode": rules["risk_mode"],
        "position_multiplier": rules["position_multiplier"],
        "summary": "ok",
        "agreements": [],
        "conflicts": [],
    }
    return json.dumps(
        {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "bench",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": json.dumps(answer)},
                }
            ],
            "usage": {"prompt_tokens": 900, "completion_tokens": 40, "total_tokens": 940},
        }
    ).encode()


async def run_llm(
    concurrency: int, symbols: int, per_symbol: int, cs: list[Ohlc]
) -> tuple[float, bool, int]:
    """Return (judged/s, per-symbol order held, fallbacks) for one LLM concurrency bound."""

    async def handler(request: httpx2.Request) -> httpx2.Response:
        await asyncio.sleep(LATENCY_S)
        body = _completion_body(request.content)
        return httpx2.Response(200, content=body, headers={"content-type": "application/json"})

    client = openai.AsyncOpenAI(
        api_key="bench",
        base_url="http://llm.invalid/v1",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
    )
    llm = LlmJudge(
        client,
        model="bench",
        timeout_s=120,
        concurrency=concurrency,
        budget=Budget(100_000, 0),
        cache_size=0,
    )
    judge = Judge(JudgeSettings(), llm=llm)
    sink = _Collector()

    async def handle(event: Event, record: Any) -> None:
        assert isinstance(event, SignalScoredV1)
        await sink.publish(await judge.judge(event))

    loop = ConsumerLoop(
        kafka=KafkaSettings(),
        service="bench",
        options=ConsumerOptions(
            group_id=None, topics=["bench"], concurrency=256, handler_timeout_s=600
        ),
        handler=handle,
        producer=sink,  # type: ignore[arg-type]
    )
    from aiokafka import TopicPartition

    batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
    offsets: dict[int, int] = {}
    for seq in range(per_symbol):
        for s in range(symbols):
            sym = f"L{s}USDT"
            part = s % 12
            offsets[part] = offsets.get(part, -1) + 1
            n = seq + 1000 * concurrency
            raw = encode(make_signal(sym, n, cs[n % 40 : n % 40 + SIGNAL_CANDLES]))
            batches.setdefault(TopicPartition("bench", part), []).append(
                ConsumerRecord(
                    topic="bench",
                    partition=part,
                    offset=offsets[part],
                    timestamp=0,
                    timestamp_type=0,
                    key=sym.encode(),
                    value=raw,
                    checksum=None,
                    serialized_key_size=len(sym),
                    serialized_value_size=len(raw),
                    headers=(),
                )
            )
    started = time.perf_counter()
    await loop.process_batch(batches, asyncio.Event())
    rate = len(sink.out) / (time.perf_counter() - started)
    ordered = all(
        [e.observed_at for e in sink.out if e.symbol == f"L{s}USDT"]
        == sorted(e.observed_at for e in sink.out if e.symbol == f"L{s}USDT")
        for s in range(symbols)
    )
    fallbacks = sum(1 for e in sink.out if e.ai_verdict_layer.judge != "llm")
    await judge.close()
    return rate, ordered and len(sink.out) == symbols * per_symbol, fallbacks


async def bench_llm(cs: list[Ohlc]) -> list[Row]:
    base, base_ok, _ = await run_llm(1, 4, 1, cs)
    rows: list[Row] = []
    for conc, symbols in ((4, 8), (16, 16)):
        rate, ordered, fallbacks = await run_llm(conc, symbols, 2, cs)
        rows.append(
            Row(
                f"LLM @2s, concurrency {conc} ({symbols} symbols x 2, order kept={ordered},"
                f" fallbacks={fallbacks})",
                rate,
                "signals/s",
                "LLM @2s, concurrency 1",
                base,
                f">= {0.8 * conc:g}x baseline, per-symbol order",
                goal_ratio=0.8 * conc,
                extra_ok=ordered and base_ok and fallbacks == 0,
            )
        )
    return rows


async def _main() -> list[Row]:
    cs = candles()
    return [*(await bench_rules(cs)), *(await bench_llm(cs))]


def main() -> list[dict[str, object]]:
    """Run the benchmark; print the table and write bench/results/judge_throughput.json."""
    return report("judge_throughput", asyncio.run(_main()))


if __name__ == "__main__":
    main()
