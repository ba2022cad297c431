"""The chain as a user depends on it: vendor edge in, judged signal out at every exit.

One stack for the module (see `conftest.stack`): six service processes on the embedded broker
and PostgreSQL, vendors/OpenAI/Telegram played by local servers. Market data enters only at
the ingestor's edge (its HTTP pollers against the fake vendors, real candle history on the
wall clock); nothing is published on a topic by the test except the poison records.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx
import pytest

from perpsignal_common.events.market import CandleClosedV1
from perpsignal_common.events.signals import OutcomeEvaluatedV1, SignalJudgedV1, SignalScoredV1
from perpsignal_common.events.topics import Topic
from perpsignal_common.settings import KafkaSettings
from tests.e2e.checks import (
    alert_worthy,
    distinct_judged,
    fetch,
    message_keys,
    outcome_rows,
    read_topic,
)
from tests.e2e.conftest import E2E_SYMBOLS, ON_DEMAND
from tests.e2e.stack import CHAT_IDS, STATS_STALE_S, Stack, fault_window
from tests.fakes.openai import AGREEING_SUMMARY
from tests.helpers import TopicReader, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

HEADERS = {"X-API-Key": "e2e-key"}


def ts_ms(value: str) -> int:
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


async def latest_signals(stack: Stack, symbols: list[str], deadline_s: float) -> dict[str, Any]:
    """Poll `GET /signals/{symbol}` until every symbol answers 200; return the bodies."""
    bodies: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=HEADERS) as http:

        async def all_ready() -> bool:
            for sym in symbols:
                if sym not in bodies:
                    try:
                        r = await http.get(f"/signals/{sym}", timeout=10)
                    except httpx.HTTPError:
                        continue  # the gateway is restarting
                    if r.status_code == 200:
                        bodies[sym] = r.json()
            return len(bodies) == len(symbols)

        await eventually(
            all_ready,
            timeout=deadline_s,
            interval=1.0,
            what=f"GET /signals for {symbols} (have {sorted(bodies)})",
        )
    return bodies


async def test_market_data_comes_out_judged_at_every_exit(
    stack: Stack, e2e_kafka_settings: KafkaSettings
) -> None:
    # REST: a judged signal per watched symbol, priced from the candle the vendor served
    bodies = await latest_signals(stack, E2E_SYMBOLS, deadline_s=240)
    for sym, body in bodies.items():
        assert body["symbol"] == sym and body["timeframe"] == "1m"
        close_ms = ts_ms(body["timestamp"])
        tape_close = stack.tape.candle(sym, close_ms - 60_000)[3]
        assert body["price"] == pytest.approx(tape_close), (sym, body["timestamp"])
        # up to three, each one that pulls (a factor contributing nothing is none of them)
        assert len(body["topFactors"]) <= 3
        assert all(f["contribution"] != 0 for f in body["topFactors"]), body["topFactors"]
        layer = body["aiVerdictLayer"]
        assert layer["verdict"] in ("CONFIRM", "DOWNSIZE", "SKIP", "WAIT")
        assert set(layer["volatilityMetrics"]) >= {"atr", "atrPct", "volatilityClass"}

    judged = distinct_judged(await read_topic(e2e_kafka_settings, Topic.SIGNALS_JUDGED))
    directional = [e for e in judged.values() if e.direction != "NEUTRAL"]
    assert directional, "no LONG/SHORT signal in the whole backfill: the chain judged nothing"
    # the OpenAI fake agrees with the rule judge (never overruled): every directional
    # verdict came from the LLM path, with the model's own summary
    llm = [e for e in directional if e.ai_verdict_layer.judge == "llm"]
    assert llm and all(e.ai_verdict_layer.ai_summary == AGREEING_SUMMARY for e in llm)
    assert stack.openai.requests, "the judge never called the OpenAI endpoint"

    # WebSocket: the client connected before any market data saw every judged signal
    gateway_up_until = stack.first_kill.get("gateway", float("inf"))
    expected_ws = {
        e.signal_id for e in judged.values() if e.produced_at.timestamp() < gateway_up_until - 1
    }

    def ws_ids() -> set[str]:
        return {m["data"]["signalId"] for m in stack.ws_inbox if m.get("type") == "signal"}

    await eventually(
        lambda: expected_ws <= ws_ids(), timeout=30, what="every judged signal on /ws/signals"
    )
    # nothing invented: every frame is a judged signal (read after the frames were taken, as
    # the watched symbols keep closing candles after the snapshot above)
    seen = ws_ids()
    now_judged = distinct_judged(await read_topic(e2e_kafka_settings, Topic.SIGNALS_JUDGED))
    assert seen <= {e.signal_id for e in now_judged.values()}

    # Telegram: exactly one message per alert-worthy signal per chat
    want = Counter((e.direction, e.symbol) for e in judged.values() if alert_worthy(e))
    assert want, "no alert-worthy signal: the notifier path was not exercised"
    for chat in CHAT_IDS:
        await eventually(
            lambda c=chat: message_keys(stack.telegram_texts(c)) >= want,
            timeout=60,
            what=f"alerts to chat {chat}",
        )

    # Outcomes: rows for every LONG/SHORT signal and horizon; those due complete exactly once,
    # with the exit price of the tape's candle that closes at the horizon
    flow_started = stack.start_times["ingestor"]

    async def live_horizon_done() -> bool:
        rows = await outcome_rows(stack.database_url)
        return any(
            r["status"] == "completed" and r["due_at"].timestamp() > flow_started for r in rows
        )

    await eventually(
        live_horizon_done,
        timeout=240,
        interval=2,
        what="an outcome whose horizon passed during the run",
    )
    want_stored = {e.signal_id for e in directional}

    async def all_stored() -> bool:
        return want_stored <= {r["signal_id"] for r in await outcome_rows(stack.database_url)}

    try:
        await eventually(all_stored, timeout=60, interval=2, what="a row per LONG/SHORT signal")
    except AssertionError:
        have = {r["signal_id"] for r in await outcome_rows(stack.database_url)}
        lost = [(e.symbol, e.direction, e.observed_at.isoformat(), e.produced_at.isoformat())
                for e in directional if e.signal_id not in have]  # fmt: skip
        raise AssertionError(f"{len(lost)} LONG/SHORT signals never stored: {lost[:10]}") from None
    rows = await outcome_rows(stack.database_url)
    stored = {r["signal_id"] for r in rows}
    assert Counter(r["signal_id"] for r in rows) == Counter(dict.fromkeys(stored, 3))  # 1h, 4h, 24h
    # every row whose exit candle has closed on the tape gets evaluated: awaited, not assumed
    # to be done within a fixed margin (ingest, settle and poll take longer on a busy machine)
    last_close_ms = stack.tape.last_closed_open_ms() + 60_000
    due = {
        (r["signal_id"], r["horizon"])
        for r in rows
        if int(r["due_at"].timestamp() * 1000) + 60_000 <= last_close_ms
    }

    async def due_completed() -> bool:
        done = {
            (r["signal_id"], r["horizon"])
            for r in await outcome_rows(stack.database_url)
            if r["status"] == "completed"
        }
        return due <= done

    await eventually(due_completed, timeout=120, interval=2, what="every due outcome evaluated")
    rows = await outcome_rows(stack.database_url)
    for r in rows:
        due_ms = int(r["due_at"].timestamp() * 1000)
        if r["status"] == "completed":
            assert r["evaluation_count"] == 1, dict(r)
            tape_exit = stack.tape.candle(r["symbol"], due_ms - 60_000)[3]
            assert r["exit_price"] == pytest.approx(tape_exit), dict(r)


async def test_sigkill_each_service_mid_stream_loses_and_duplicates_nothing(
    stack: Stack, e2e_kafka_settings: KafkaSettings
) -> None:
    """Each service is SIGKILLed while a fresh 99-candle burst flows through it, then restarted.

    A burst is what the gateway's on-demand tracking starts: `GET /signals/NEW` → track
    command → the ingestor backfills NEW → scorer → judge → outcomes/notifier/gateway.
    """
    await latest_signals(stack, E2E_SYMBOLS[:1], deadline_s=240)  # the stack is flowing
    k = e2e_kafka_settings
    readers = {t: TopicReader(k, t) for t in (Topic.MARKET, Topic.SIGNALS, Topic.SIGNALS_JUDGED)}
    for r in readers.values():
        await r.__aenter__()
    at_kill: dict[str, int] = {}
    try:

        def count(topic: str, cls: type, sym: str) -> int:
            return len(
                {
                    e.event_id
                    for e in readers[topic].events()
                    if isinstance(e, cls) and e.symbol == sym
                }
            )

        async def poll_all() -> None:
            for r in readers.values():
                await r.poll()

        plan = [
            ("ingestor", Topic.MARKET, CandleClosedV1),
            ("scorer", Topic.SIGNALS, SignalScoredV1),
            ("judge", Topic.SIGNALS_JUDGED, SignalJudgedV1),
            ("outcomes", Topic.SIGNALS_JUDGED, SignalJudgedV1),
            ("notifier", Topic.SIGNALS_JUDGED, SignalJudgedV1),
            ("gateway", Topic.SIGNALS_JUDGED, SignalJudgedV1),
        ]
        async with httpx.AsyncClient(base_url=stack.gateway_url, headers=HEADERS) as http:
            for (name, topic, cls), sym in zip(plan, ON_DEMAND, strict=False):
                r = await http.get(f"/signals/{sym}", timeout=30)
                assert r.status_code in (200, 202), r.text  # 202: analysed on demand

                async def flowing(s: str = sym, t: str = topic, c: type = cls) -> bool:
                    await poll_all()
                    return count(t, c, s) > 0

                await eventually(
                    flowing, timeout=120, interval=0.05, what=f"{sym} burst reaching {name}"
                )
                at_kill[name] = count(topic, cls, sym)
                stack.kill(name)
                stack.start(name)
        stack.wait_started()

        bursts = ON_DEMAND[: len(plan)]

        async def settled() -> bool:
            await poll_all()
            return all(
                count(Topic.MARKET, CandleClosedV1, s) >= 99
                and count(Topic.SIGNALS_JUDGED, SignalJudgedV1, s)
                >= count(Topic.MARKET, CandleClosedV1, s)
                for s in bursts
            )

        await eventually(settled, timeout=300, interval=1, what="every burst judged end to end")
    finally:
        for r in readers.values():
            await r.__aexit__(None, None, None)

    # mid-stream: each service died with part of its burst still ahead of it
    events = await read_topic(k, Topic.MARKET)
    candles = Counter(
        e.symbol for e in {e.event_id: e for e in events if isinstance(e, CandleClosedV1)}.values()
    )
    scored_events = [e for e in await read_topic(k, Topic.SIGNALS) if isinstance(e, SignalScoredV1)]
    scored = {e.event_id: e for e in scored_events}
    judged_events = await read_topic(k, Topic.SIGNALS_JUDGED)
    judged = distinct_judged(judged_events)

    # a redelivery repeats an id with the same content: a restarted scorer rebuilds the same
    # state, a restarted judge reads back what it published instead of asking the LLM again
    def versions(evs: list[Any], what: Callable[[Any], tuple[Any, ...]]) -> dict[str, set[Any]]:
        seen: dict[str, set[Any]] = {}
        for e in evs:
            seen.setdefault(e.event_id, set()).add(what(e))
        return {i: v for i, v in seen.items() if len(v) > 1}

    assert not versions(scored_events, lambda e: (e.direction, e.score)), "scored twice"
    assert not versions(
        [e for e in judged_events if isinstance(e, SignalJudgedV1)],
        lambda e: (e.ai_verdict_layer.verdict, e.ai_verdict_layer.judge, e.direction),
    ), "one judged id, two verdicts"
    mid = {n: (at_kill[n], candles[s]) for n, s in zip([p[0] for p in plan], bursts, strict=True)}
    assert sum(1 for got, total in mid.values() if got < total) >= 3, mid

    # no judged signal lost: one scored signal per closed candle, one judged per scored
    for s in bursts:  # (on-demand requests may add `trigger=on_demand` signals: not counted)
        n_scored = sum(1 for e in scored.values() if e.symbol == s and e.trigger == "candle")
        triggers = Counter(e.trigger for e in scored.values() if e.symbol == s)
        assert n_scored == candles[s], (s, n_scored, candles[s], triggers)
    # one judged per scored: the snapshot of scored ids may hold a signal scored a moment ago
    # (the symbols keep closing candles), so its judgement is awaited, not assumed
    scored_ids = {e.signal_id for e in scored.values()}

    async def all_judged() -> bool:
        now = distinct_judged(await read_topic(k, Topic.SIGNALS_JUDGED))
        return scored_ids <= {e.signal_id for e in now.values()}

    await eventually(all_judged, timeout=60, interval=2, what="every scored signal judged")

    # no duplicate Telegram message; none missing except a send the crash left "uncertain"
    # (the notifier's documented choice: never risk a duplicate, see its README)
    want = Counter((e.direction, e.symbol) for e in judged.values() if alert_worthy(e))
    for chat in CHAT_IDS:

        def delivered(c: int = chat) -> bool:
            return message_keys(stack.telegram_texts(c)) >= want

        with contextlib.suppress(AssertionError):
            await eventually(delivered, timeout=90, interval=1, what=f"alerts in chat {chat}")
        have = message_keys(stack.telegram_texts(chat))
        # the watched and on-demand symbols keep closing candles: judged signals newer than
        # `want` may be alerted too, so the ceiling is read after the messages were counted
        # (an alert's judged signal is on the topic before the alert is sent)
        ceiling = Counter(
            (e.direction, e.symbol)
            for e in distinct_judged(await read_topic(k, Topic.SIGNALS_JUDGED)).values()
            if alert_worthy(e)
        )
        extra = have - ceiling
        assert not extra, f"chat {chat}: duplicate or unexpected alerts {extra}"
        missing = Counter({sym: n for (_, sym), n in (want - have).items()})
        if missing:
            ledger = await fetch(
                stack.database_url,
                f"select symbol, status from notifier_deliveries where chat_id = {chat}",
            )
            uncertain = Counter(r["symbol"] for r in ledger if r["status"] == "uncertain")
            assert not (missing - uncertain), (
                f"chat {chat}: alerts lost {dict(missing - uncertain)}; ledger statuses "
                f"{Counter(r['status'] for r in ledger)}"
            )

    # every outcome evaluated exactly once, and published once per (signal, horizon)
    async def outcomes_done() -> bool:
        rows = await outcome_rows(stack.database_url)
        directional = {e.signal_id for e in judged.values() if e.direction != "NEUTRAL"}
        return directional <= {r["signal_id"] for r in rows}

    await eventually(outcomes_done, timeout=120, interval=2, what="outcome rows of every burst")
    rows = await outcome_rows(stack.database_url)
    assert all(r["evaluation_count"] <= 1 for r in rows), [
        dict(r) for r in rows if r["evaluation_count"] > 1
    ]
    completed = {(r["signal_id"], r["horizon"]) for r in rows if r["status"] == "completed"}

    async def all_published() -> bool:
        outs = await read_topic(k, Topic.OUTCOMES)
        ids = {(e.signal_id, e.horizon) for e in outs if isinstance(e, OutcomeEvaluatedV1)}
        return completed <= ids

    await eventually(all_published, timeout=60, interval=2, what="every outcome on the topic")

    # the gateway rebuilt its read model: each burst's latest judged signal is served
    latest = {}
    for e in judged.values():
        if e.symbol in bursts and (
            e.symbol not in latest or e.observed_at > latest[e.symbol].observed_at
        ):
            latest[e.symbol] = e
    bodies = await latest_signals(stack, bursts, deadline_s=60)
    # the burst symbols stay tracked and keep closing candles, so the gateway may already
    # serve a newer signal than the snapshot's latest: it must be a judged one, not older
    now_judged = {
        e.signal_id: e for e in distinct_judged(await read_topic(k, Topic.SIGNALS_JUDGED)).values()
    }
    for s in bursts:
        served = now_judged.get(bodies[s]["signalId"])
        assert served is not None and served.symbol == s, bodies[s]["signalId"]
        assert served.observed_at >= latest[s].observed_at, (served, latest[s])
    assert all(stack.alive().values()), stack.alive()


async def test_nothing_crashed_in_a_loop(stack: Stack) -> None:
    """Every service process started exactly as often as the tests started it."""
    await asyncio.sleep(0)
    for name, proc in stack.procs.items():
        marker = '"msg":"Started server process' if name == "gateway" else '"service starting"'
        starts = proc.logs().count(marker)
        assert starts == stack.starts[name], (name, starts, stack.starts[name])
    assert time.time() > stack.started_at


# design.md section 2: who consumes each topic (the DLQ copies must come from at least these)
# The gateway is listed apart: its read model (every partition, no group, one copy per
# replica) skips poison with a logged reason instead of dead-lettering it (reported).
CONSUMERS: dict[str, set[str]] = {
    Topic.MARKET: {"scorer", "outcomes"},
    Topic.MARKET_GLOBAL: {"scorer"},
    Topic.LIQUIDATIONS: {"scorer"},
    Topic.LISTINGS: {"scorer", "notifier"},
    Topic.COMMANDS: {"ingestor"},
    Topic.SIGNALS: {"judge"},
    Topic.MSS: {"notifier", "outcomes"},
    Topic.SIGNALS_JUDGED: {"outcomes", "notifier"},
    Topic.OUTCOMES: set(),
    Topic.JUDGE_REQUESTS: {"judge"},
    Topic.JUDGE_REPLIES: set(),
}
# design.md also lists the gateway under signals.v1 and outcomes.v1; its read model reads
# neither (it serves judged signals, and outcomes from PostgreSQL): reported, not asserted
GATEWAY_READS = (
    Topic.MARKET, Topic.MARKET_GLOBAL, Topic.LIQUIDATIONS, Topic.LISTINGS, Topic.MSS,
    Topic.SIGNALS_JUDGED, Topic.JUDGE_REPLIES,
)  # fmt: skip
POISONS = (
    b"\xff\xfe not json at all",
    b'{"type": "signal.judged", "symbol": "BTCUSDT", "score": "very high"}',
    b'{"type": "no.such.type", "event_id": "x", "symbol": "BTCUSDT"}',
)


async def test_poison_on_every_consumed_topic_is_dead_lettered_and_partitions_move_on(
    stack: Stack, e2e_kafka_settings: KafkaSettings
) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    k = e2e_kafka_settings
    gateway_mark = len(stack.logs("gateway"))
    await latest_signals(stack, E2E_SYMBOLS[:1], deadline_s=240)  # every consumer is running
    producer = AIOKafkaProducer(bootstrap_servers=k.kafka_bootstrap_servers, acks="all")
    await producer.start()
    sent: dict[tuple[str, bytes], tuple[int, int]] = {}  # (topic, value) -> (partition, offset)
    try:
        for topic in CONSUMERS:
            for value in POISONS:
                md = await producer.send_and_wait(k.topic(topic), value, key=b"BTCUSDT")
                sent[(topic, value)] = (md.partition, md.offset)
    finally:
        await producer.stop()

    readers = {t: TopicReader(k, t + ".dlq") for t in CONSUMERS}
    for r in readers.values():
        await r.__aenter__()
    try:

        def groups_by_poison() -> dict[tuple[str, bytes], set[str]]:
            seen: dict[tuple[str, bytes], set[str]] = {}
            for t, r in readers.items():
                for rec in r.records:
                    h = dict(rec.headers)
                    if (t, rec.value) in sent:
                        assert h.get("dlq.error"), h  # a reason, not just a copy
                        assert h["dlq.topic"].decode() == k.topic(t)
                        seen.setdefault((t, rec.value), set()).add(h["dlq.group"].decode())
            return seen

        async def all_dead_lettered() -> bool:
            for r in readers.values():
                await r.poll()
            seen = groups_by_poison()
            return all(
                {g.split("-")[0] for g in seen.get(key, set())} >= CONSUMERS[key[0]] for key in sent
            )

        try:
            await eventually(
                all_dead_lettered,
                timeout=90,
                interval=0.5,
                what="every poison dead-lettered by every consumer",
            )
        except AssertionError:
            seen = groups_by_poison()
            missing = {f"{t} {v[:20]!r}": sorted(CONSUMERS[t] - {g.split('-')[0] for g in
                                                                   seen.get((t, v), set())})
                       for (t, v) in sent}  # fmt: skip
            raise AssertionError(f"not dead-lettered by: {missing}") from None
        seen = groups_by_poison()
    finally:
        for r in readers.values():
            await r.__aexit__(None, None, None)

    # the partitions moved on: every consumer group committed past its poison records
    groups = {g for gs in seen.values() for g in gs}
    for group in groups:
        consumer = AIOKafkaConsumer(bootstrap_servers=k.kafka_bootstrap_servers,
                                    group_id=k.group(group),
                                    enable_auto_commit=False)  # fmt: skip
        await consumer.start()
        try:
            for (topic, value), (partition, offset) in sent.items():
                if group not in seen.get((topic, value), set()):
                    continue
                tp = TopicPartition(k.topic(topic), partition)

                # the gateway's read model and the scorer's fear & greed loop read without a
                # group (they own every partition); every other consumer must have committed
                groupless = (group, topic) == ("scorer", Topic.MARKET_GLOBAL)

                async def past(
                    tp: TopicPartition = tp,
                    offset: int = offset,
                    groupless: bool = groupless,
                    c: AIOKafkaConsumer = consumer,
                ) -> bool:
                    committed = await c.committed(tp)
                    return groupless if committed is None else committed > offset

                await eventually(
                    past,
                    timeout=30,
                    interval=0.5,
                    what=f"{group} committing past its poison on {tp}",
                )
        finally:
            await consumer.stop()

    # the gateway's read model skipped every poison it reads, saying why, and kept serving
    def gateway_skips() -> int:
        return stack.logs("gateway")[gateway_mark:].count("skipping undecodable record")

    want_skips = len(POISONS) * len(GATEWAY_READS)
    await eventually(lambda: gateway_skips() >= want_skips, timeout=30,
                     what=f"the gateway logging each of {want_skips} poisons it skipped "
                     f"(logged {gateway_skips()})")  # fmt: skip
    await latest_signals(stack, E2E_SYMBOLS, deadline_s=30)
    assert all(stack.alive().values()), stack.alive()


async def test_vendor_answering_garbage_keeps_signals_flowing_and_recovers(
    stack: Stack, e2e_kafka_settings: KafkaSettings
) -> None:
    """Binance's statistics endpoints and Fear & Greed answer 429/5xx/truncated/wrong types/
    HTML for `fault_window(60)` s, and at least until a candle closes after the statistics went
    stale: candles and judged signals keep flowing, the signals scored on stale statistics mark
    them stale (neutral, no invented value) with lowered confidence, nothing crashes, and the
    failing sources come back by themselves (fresh statistics in later signals)."""
    from tests.fakes.vendors import Fault

    await latest_signals(stack, E2E_SYMBOLS, deadline_s=240)

    def fresh_stats_since(t: float) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            judged = distinct_judged(await read_topic(e2e_kafka_settings, Topic.SIGNALS_JUDGED))
            return all(
                any(e.symbol == s and e.observed_at.timestamp() > t and e.trigger == "candle"
                    and "long_short" not in e.stale_factors + e.missing_factors
                    for e in judged.values())
                for s in E2E_SYMBOLS
            )  # fmt: skip

        return check

    # precondition: every symbol's candle signals show fresh statistics shortly before the fault
    await eventually(
        fresh_stats_since(time.time() - 60), timeout=150, interval=2, what="fresh statistics"
    )
    # a candle must close once the statistics are older than their staleness limit
    stale_from = time.time() + STATS_STALE_S + 10
    to_boundary = 60 - stale_from % 60
    window = max(fault_window(60), stale_from + to_boundary + 20 - time.time())
    bad = [
        Fault("status", 429, retry_after=1, times=2),
        Fault("status", 503, times=2),
        Fault("truncated", times=2),
        Fault("wrong_types", times=2),
        Fault("html", times=None),  # then HTML error pages until cleared
    ]

    async def inject() -> None:
        stack.vendors.inject("binance", "/futures/data/", *bad)
        stack.vendors.inject(
            "alternative_me",
            "/fng",
            *[Fault(f.kind, f.status, f.retry_after, times=f.times) for f in bad],
        )

    async def clear() -> None:
        stack.vendors.clear_faults()

    before = sum(n for (v, p), n in stack.vendors.requests.items() if p.startswith("/futures"))
    failing = ("binance_ratios", "fear_greed")

    def errors_counted() -> dict[str, float]:
        return {
            src: stack.metric_total(
                "ingestor", "perpsignal_ingestor_source_errors_total", f'source="{src}"'
            )
            for src in failing
        }

    errors_before = errors_counted()
    stack.bg.run(inject())
    fault_start = time.time()
    while time.time() - fault_start < window:
        assert all(stack.alive().values()), stack.alive()
        await asyncio.sleep(0.5)
    stack.bg.run(clear())
    cleared_at = time.time()
    during = sum(n for (v, p), n in stack.vendors.requests.items() if p.startswith("/futures"))
    assert during > before, "the ingestor never asked the failing vendor during the window"
    # every failing source counted its failures in the window, and the log names each one:
    # a request already failing (and said) before the window, or a source already degraded,
    # is not said again, so its line may predate the window
    errors_after = errors_counted()
    assert all(errors_after[s] > errors_before[s] for s in failing), (errors_before, errors_after)
    log = stack.logs("ingestor")
    said = [ln for ln in log.splitlines() if '"level":"warning"' in ln or '"level":"error"' in ln]
    assert all(any(s in ln for ln in said) for s in failing), log[-2000:]

    # signals kept flowing: every watched symbol judged a candle that closed during the fault
    async def judged_in_window() -> bool:
        judged = distinct_judged(await read_topic(e2e_kafka_settings, Topic.SIGNALS_JUDGED))
        return all(
            any(e.symbol == s and fault_start <= e.observed_at.timestamp() <= cleared_at
                for e in judged.values())
            for s in E2E_SYMBOLS
        )  # fmt: skip

    await eventually(
        judged_in_window,
        timeout=60,
        interval=1,
        what="judged signals of candles closed while the vendor failed",
    )

    # signals scored on stale statistics say so, and their confidence is capped lower. The
    # candle the window waits for closes ~20 s before the faults are cleared: its judged
    # signal can still be on its way (a loaded CI box), so wait for it rather than read once
    stale_lo = fault_start + STATS_STALE_S + 10

    async def stale_phase_judged() -> bool:
        judged = distinct_judged(await read_topic(e2e_kafka_settings, Topic.SIGNALS_JUDGED))
        return any(stale_lo <= e.observed_at.timestamp() <= cleared_at for e in judged.values())

    await eventually(
        stale_phase_judged,
        timeout=90,
        interval=1,
        what="a judged signal of a candle closed once the statistics were stale",
    )
    judged = distinct_judged(await read_topic(e2e_kafka_settings, Topic.SIGNALS_JUDGED))

    def ok_share(e: SignalJudgedV1) -> float:
        return sum(f.weight for f in e.factors if f.status == "ok") / 100

    def ok_factors(e: SignalJudgedV1) -> set[str]:
        return {f.name for f in e.factors if f.status == "ok"}

    def by_time(lo: float, hi: float) -> list[SignalJudgedV1]:
        return [e for e in judged.values() if lo <= e.observed_at.timestamp() <= hi]

    stale_phase = by_time(stale_lo, cleared_at)
    before = by_time(fault_start - 600, fault_start)
    assert stale_phase and before, (len(stale_phase), len(before))
    for e in stale_phase:
        status = {f.name: f.status for f in e.factors}
        assert status["long_short"] != "ok" and "long_short" in e.stale_factors, status
        assert e.confidence <= 100 * ok_share(e) + 1e-6, (e.confidence, ok_share(e))
        # the same symbol counted fresh statistics in its completeness before the fault and
        # lost them during it (other factors, funding among them, go stale on their own
        # cadence either way, so whole completeness figures are not comparable)
        prior = [b for b in before if b.symbol == e.symbol and b.trigger == "candle"]
        assert any("long_short" in ok_factors(b) for b in prior), (e.symbol, len(prior))
        assert "long_short" not in ok_factors(e), (e.symbol, status)

    # and the failing sources recover by themselves (breaker half-opens, backoff ends)
    def recovered() -> bool:
        return all(
            (stack.metric("ingestor", "perpsignal_ingestor_source_last_success_timestamp_seconds",
                          f'source="{src}"') or 0) > cleared_at
            for src in ("binance_ratios", "fear_greed")
        )  # fmt: skip

    await eventually(recovered, timeout=120, interval=1, what="failing sources polled again OK")

    await eventually(
        fresh_stats_since(cleared_at), timeout=150, interval=2, what="fresh statistics again"
    )
    assert all(stack.alive().values()), stack.alive()


async def test_every_record_the_services_published_conforms_to_its_published_schema(
    stack: Stack, e2e_kafka_settings: KafkaSettings
) -> None:
    """Downstream consumers validate our topics with the JSON Schemas we publish
    (`schemas/events/`), not with our pydantic models: every record the running services
    wrote from the vendors' data (candles to outcomes, snapshots and source status included)
    passes a standard Draft 2020-12 validator with formats checked. The poison records other
    tests put on the topics are left out: they are the ones our decoder refuses."""
    import json

    import jsonschema

    from perpsignal_common.errors import PoisonMessage
    from perpsignal_common.events.registry import decode
    from tests.helpers import REPO

    await latest_signals(stack, E2E_SYMBOLS[:1], deadline_s=240)  # the chain has run
    validators: dict[str, jsonschema.Draft202012Validator] = {}
    seen: Counter[str] = Counter()
    for topic in Topic:
        async with TopicReader(e2e_kafka_settings, topic) as reader:
            empty = 0
            while empty < 3:  # three empty polls in a row: the end of the log
                before = len(reader.records)
                await reader.poll()
                empty = empty + 1 if len(reader.records) == before else 0
        for rec in reader.records:
            try:
                decode(rec.value)
            except PoisonMessage:
                continue
            body = json.loads(rec.value)
            kind = body["type"]
            if kind not in validators:
                schema = json.loads((REPO / "schemas" / "events" / f"{kind}.json").read_text())
                validators[kind] = jsonschema.Draft202012Validator(
                    schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
                )
            errors = [e.message for e in validators[kind].iter_errors(body)][:3]
            assert not errors, (topic, kind, errors)
            seen[kind] += 1
    # the run covered the chain's records, not just one kind
    chain = {"market.candle", "signal.scored", "signal.judged", "outcome.evaluated"}
    assert chain | {"source.status", "gateway.snapshot"} <= set(seen), seen
    assert len(seen) >= 8, seen
