"""Issue #23's acceptance on a running `perpsignal up`: NaN, zero-price and year-9999 candles
for three symbols beside a clean twin. Each poisoned candle reaches `perpsignal.market.v1.dlq`
with the reason in its headers, once per consumer group even after the scorer is killed and
rewinds over it, and every symbol produces exactly as many judged signals as the twin."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from perpsignal_common.events.market import CandleClosedV1
from perpsignal_common.events.registry import encode
from perpsignal_common.events.topics import Topic, dlq_topic
from perpsignal_common.kafka.producer import EventProducer, event_headers
from perpsignal_common.settings import KafkaSettings
from tests.helpers import REPO, TopicReader, eventually
from tests.poison_helpers import binance_candles, poison

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

N = 30  # clean 5m candles per symbol before the scorer is killed, then MORE after it
MORE = 5
AT = 15  # the poisoned copy goes just before the clean candle of this index
SERIES = {  # symbol -> (recorded 5m candles, poison)
    "XRPUSDT": ("XRP_USDT_USDT-5m-futures.csv", "nan"),
    "ETHBTC": ("ETH_BTC-5m.csv", "zero"),
    "ADABTC": ("ADA_BTC-5m.csv", "year9999"),
    "XRPETH": ("XRP_ETH-5m.csv", None),  # the clean twin
}


def _poisoned(candle: CandleClosedV1, kind: str) -> bytes:
    """The bytes a broken vendor feed would give for `candle` (same event id)."""
    raw = encode(candle)
    if kind == "nan":
        return poison(raw, "close", "NaN")  # the bare token json.dumps writes for nan
    if kind == "zero":
        return poison(poison(poison(raw, "low", "0"), "close", "0"), "open", "0")
    return poison(raw, "open_time", '"9999-12-31T23:55:00Z"')


def _wait_text(path: Path, proc: subprocess.Popen[bytes], needle: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while needle not in text:
        assert proc.poll() is None, path.read_text()
        assert time.monotonic() < deadline, text
        time.sleep(0.2)
        text = path.read_text()
    return text


async def _judged(kafka: KafkaSettings) -> Counter[str]:
    """Judged signals per symbol, counted once per event id (consumers dedupe on it: a
    killed scorer re-emits what it had not committed, with the same ids)."""
    async with TopicReader(kafka, Topic.SIGNALS_JUDGED) as reader:
        quiet = 0
        while quiet < 5:  # read until the topic has nothing more for five polls
            before = len(reader.records)
            quiet = quiet + 1 if len(await reader.poll()) == before else 0
        ids = {(r.key.decode(), dict(r.headers)["event_id"]) for r in reader.records}
        return Counter(symbol for symbol, _ in ids)


async def _dead_letters(kafka: KafkaSettings, at_least: int) -> list[Any]:
    async with TopicReader(kafka, dlq_topic(Topic.MARKET)) as reader:
        await reader.wait_for(at_least, timeout=60)
        for _ in range(20):  # a duplicate would come with the others: read on a little
            await reader.poll()
        return list(reader.records)


async def _publish(kafka: KafkaSettings, sends: list[tuple[str, bytes, CandleClosedV1]]) -> None:
    producer = EventProducer(kafka, "acceptance")
    await producer.start()
    try:
        for symbol, value, candle in sends:
            await producer.send_raw(
                kafka.topic(Topic.MARKET), symbol.encode(), value, event_headers(candle), wait=True
            )
    finally:
        await producer.stop()


def test_poisoned_symbols_keep_pace_with_a_clean_twin_through_a_scorer_crash(
    tmp_path: Path, shared_data: Path
) -> None:
    market = shared_data / "market"
    candles = {s: binance_candles(market / f, s, "5m", N + MORE) for s, (f, _) in SERIES.items()}
    first: list[tuple[str, bytes, CandleClosedV1]] = []
    poisons: dict[str, bytes] = {}
    for i in range(N):
        for symbol, (_, kind) in SERIES.items():
            c = candles[symbol][i]
            if kind and i == AT:
                poisons[symbol] = _poisoned(c, kind)
                first.append((symbol, poisons[symbol], c))
            first.append((symbol, encode(c), c))
    later = [(s, encode(candles[s][i]), candles[s][i]) for i in range(N, N + MORE) for s in SERIES]

    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "DATABASE_URL"))}
    data_dir = tmp_path / "data"
    env |= {"PYTHONUNBUFFERED": "1", "SCORER_PRIMARY_TIMEFRAME": "5m"}
    out_path = tmp_path / "up.out"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "perpsignal_cli", "up", "--port", "0", "--data-dir",
             str(data_dir), "--services", "scorer", "judge", "outcomes", "gateway"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    children: list[psutil.Process] = []
    try:
        _wait_text(out_path, proc, "stack is up", 120)
        info = json.loads((data_dir / "stack.json").read_text())
        children = psutil.Process(proc.pid).children(recursive=True)
        kafka = KafkaSettings(kafka_bootstrap_servers=info["kafka_bootstrap"])

        asyncio.run(_publish(kafka, first))

        async def caught_up(n: int) -> None:
            async def done() -> bool:
                counts = await _judged(kafka)
                return all(counts[s] >= n for s in SERIES)

            await eventually(done, timeout=120, what=f"{n} judged signals per symbol")

        asyncio.run(caught_up(N))
        # the scorer dies; `up` restarts it and it rewinds over the poisoned records
        scorer = info["services"]["scorer"]
        os.kill(scorer, signal.SIGKILL)
        _wait_text(out_path, proc, "scorer restarted", 30)
        asyncio.run(_publish(kafka, later))
        asyncio.run(caught_up(N + MORE))

        judged = asyncio.run(_judged(kafka))  # no symbol beyond its candles either
        assert {s: judged[s] for s in SERIES} == dict.fromkeys(SERIES, N + MORE)
        letters = asyncio.run(_dead_letters(kafka, 2 * len(poisons)))
        copies = Counter(
            (r.value, dict(r.headers)["dlq.group"].decode()) for r in letters
        )  # fmt: skip
        for symbol, raw in poisons.items():
            assert copies[(raw, "scorer")] == 1, (symbol, copies)  # once, not once per start
            assert copies[(raw, "outcomes")] == 1, (symbol, copies)
        errors = {r.value: dict(r.headers)["dlq.error"].decode() for r in letters}
        assert "market.candle.close: Input should be a finite number" in errors[poisons["XRPUSDT"]]
        assert "greater than or equal to 0.000000000001" in errors[poisons["ETHBTC"]]
        assert "9999-12-31T23:55:00+00:00 is in the future" in errors[poisons["ADABTC"]]

        # nothing hostile through the gateway: each symbol shows its last clean candle
        url = info["gateway_url"]
        for symbol in SERIES:
            last = candles[symbol][N + MORE - 1]
            m = httpx.get(f"{url}/market/{symbol}", timeout=10)
            assert m.status_code == 200, m.text
            assert m.json()["price"] == last.close
            assert m.json()["sources"][0]["data"]["openTime"] == last.open_time.isoformat(
                timespec="seconds"
            ).replace("+00:00", "Z")
            s = httpx.get(f"{url}/signals/{symbol}", timeout=10).json()
            assert s["price"] == last.close and s["timestamp"].startswith(
                last.observed_at.strftime("%Y-%m-%dT%H:%M:%S")
            )

        children = psutil.Process(proc.pid).children(recursive=True)  # the new scorer too
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
        left = [c for c in children if c.is_running() and c.status() != "zombie"]
        assert left == [], [c.cmdline() for c in left]
    finally:
        if proc.poll() is None:
            children += psutil.Process(proc.pid).children(recursive=True)
            proc.kill()
        for c in children:
            if c.is_running():
                c.kill()
