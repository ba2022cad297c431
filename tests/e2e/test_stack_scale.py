"""Issue #21's multi-replica proof on a running `perpsignal up --scale`.

`perpsignal up --scale scorer=3,judge=2,outcomes=2,notifier=2,gateway=2` on the embedded broker
and PostgreSQL, the notifier talking to the local Telegram Bot API server. Recorded 5m candles
of four real markets (two windows of each, moved onto one clock so outcomes run on one market
time) stream in round by round; mid-stream the scorer replica that owns the most of them is
SIGKILLed, then a judge, an outcomes and a notifier replica; `up` restarts each. Then:

* nothing lost, nothing doubled: every candle has exactly one judged signal (by event id,
  the idempotency key), every LONG/SHORT one exactly three outcome rows, each evaluated at
  most once; every alert-worthy signal reached each chat at most once (and at least once,
  unless the notifier's ledger marks its send uncertain: the documented no-duplicate choice);
* one owner at a time: the consumer's ownership log lines (pid, partitions, time) of every
  replica, closed at the test's kill times, never give a partition two holders at once, and
  at the end every partition of each group's input has exactly one live holder;
* the sharded ingestors (issue #21's ingestor=2): the one polling more of the watch list is
  SIGKILLed too; its partitions of commands.v1 pass to another process with no overlap (the
  same ownership check), its symbols are polled again after its death (the vendor fake's
  request log), and at the end the replicas' `/shards` split the watch list with no gap and
  no symbol twice;
* both gateways serve each symbol's last judged signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from aiokafka.partitioner import DefaultPartitioner

from perpsignal_common.events.market import CandleClosedV1
from perpsignal_common.events.signals import OutcomeEvaluatedV1, SignalJudgedV1, SignalScoredV1
from perpsignal_common.events.topics import DEFAULT_PARTITIONS, Topic
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.settings import KafkaSettings
from perpsignal_connectors.binance_usdm.parsing import parse_klines
from perpsignal_connectors.binance_usdm.schemas import KLINES
from tests.e2e.checks import FIRST_LINE, alert_worthy, distinct_judged, fetch, read_topic
from tests.e2e.stack import BackgroundLoop
from tests.fakes.telegram import DEFAULT_TOKEN, FakeTelegram
from tests.fakes.vendors import FakeVendors
from tests.helpers import REPO, eventually, kill_on_exit
from tests.poison_helpers import NOW

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

SCALE = {"ingestor": 2, "scorer": 3, "judge": 2, "outcomes": 2, "notifier": 2, "gateway": 2}
GROUP_INPUT = {  # consumer group -> the topic whose partitions split its work
    "ingestor": Topic.COMMANDS,  # its assignment shards the symbol universe
    "scorer": Topic.MARKET,
    "judge": Topic.SIGNALS,
    "outcomes": Topic.SIGNALS_JUDGED,
    "notifier": Topic.SIGNALS_JUDGED,
}
N = 40  # 5m candles per symbol: 1h outcomes of the first 28 complete on market time
TF_MS = 300_000
# symbol -> (recorded 5m candles, first row); the second window of each market is a later
# stretch of the same recording, moved onto the common clock
SERIES = {
    "XRPUSDT": ("XRP_USDT_USDT-5m-futures.csv", 0),
    "XRPUSDT2": ("XRP_USDT_USDT-5m-futures.csv", 900),
    "ETHBTC": ("ETH_BTC-5m.csv", 0),
    "ETHBTC2": ("ETH_BTC-5m.csv", 3000),
    "ADABTC": ("ADA_BTC-5m.csv", 0),
    "ADABTC2": ("ADA_BTC-5m.csv", 3000),
    "XRPETH": ("XRP_ETH-5m.csv", 0),
    "XRPETH2": ("XRP_ETH-5m.csv", 400),
}
CLOCK_START_MS = 1_636_934_400_000  # 2021-11-15 00:00 UTC, the XRPUSDT recording's first bar
CHATS = (2001, 2002)
# (round of candles after which to kill, service): mid-stream, each after the last restarted
KILLS = [(6, "ingestor"), (10, "scorer"), (18, "judge"), (26, "outcomes"), (30, "notifier")]
# the ingestors' watch list, polled on the recorded-response vendor fake for positioning
# statistics only (no candles: the replayed candles above are the market's only clock);
# on partitions 2, 5, 6 and 9 of commands.v1: both replicas poll some whether the assignor
# deals the 12 partitions in ranges (0-5, 6-11) or round robin (even, odd)
WATCH = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "DOTUSDT"]
RATIO_CADENCE_S = 10  # 4 symbols x 5 statistics endpoints: within Binance's 1,000 per 5 min


def recorded_candles(path: Path, symbol: str, first: int) -> list[CandleClosedV1]:
    """`N` recorded rows from `first` on, as Binance klines on the common clock, through the
    Binance parser (what the ingestor publishes)."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))[first : first + N]
    assert len(rows) == N, (path, first)
    klines = []
    for i, r in enumerate(rows):
        t = CLOCK_START_MS + i * TF_MS
        vol = float(r["volume"])
        quote = f"{vol * float(r['close']):.4f}"
        prices = [r["open"], r["high"], r["low"], r["close"], r["volume"]]
        klines.append([t, *prices, t + TF_MS - 1, quote, 100, f"{vol / 2}", quote, "0"])
    return parse_klines(KLINES.validate_python(klines), symbol, "5m", NOW)  # type: ignore[arg-type]


def partition_of(symbol: str) -> int:
    """The partition aiokafka's producer puts `symbol`'s events on (its default partitioner)."""
    parts = list(range(DEFAULT_PARTITIONS))
    return int(DefaultPartitioner()(symbol.encode(), parts, parts))


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def ownership(logs: Path) -> dict[str, list[dict[str, Any]]]:
    """Every "partitions assigned/revoked" line of every replica's log, by consumer group."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in sorted(logs.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if '"partitions ' not in line:
                continue
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if rec.get("msg") in ("partitions assigned", "partitions revoked"):
                    out[rec["group"]].append(rec | {"at": _ts(rec["ts"]), "log": path.name})
    return out


def holdings(
    lines: list[dict[str, Any]], killed_at: dict[int, float], until: float
) -> dict[str, list[tuple[float, float, int]]]:
    """Per partition, the (from, to, pid) spans a process held it: from its "assigned" line
    to its "revoked" line, or to the moment the test SIGKILLed it, or to `until`."""
    spans: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    open_: dict[tuple[int, str], float] = {}
    for rec in sorted(lines, key=lambda r: r["at"]):
        for part in rec["partitions"]:
            key = (rec["pid"], part)
            if rec["msg"] == "partitions assigned":
                assert key not in open_, f"{part} assigned twice to pid {rec['pid']}"
                open_[key] = rec["at"]
            elif key in open_:
                spans[part].append((open_.pop(key), rec["at"], rec["pid"]))
    for (pid, part), start in open_.items():
        spans[part].append((start, min(killed_at.get(pid, until), until), pid))
    return spans


def overlaps(spans: dict[str, list[tuple[float, float, int]]]) -> list[str]:
    """Return a description of every moment two processes held one partition."""
    bad = []
    for part, held in spans.items():
        held.sort()
        for (s1, e1, p1), (s2, _, p2) in itertools.pairwise(held):
            if s2 < e1:
                bad.append(f"{part}: pid {p1} [{s1:.3f}, {e1:.3f}] and pid {p2} from {s2:.3f}")
    return bad


def current_owners(lines: list[dict[str, Any]], live: set[int], topic: str) -> dict[int, int]:
    """Partition -> how many live processes hold it now (by their last ownership line)."""
    last: dict[int, set[str]] = {}
    for rec in sorted(lines, key=lambda r: r["at"]):
        held = last.setdefault(rec["pid"], set())
        if rec["msg"] == "partitions assigned":
            held |= set(rec["partitions"])
        else:
            held -= set(rec["partitions"])
    count: Counter[int] = Counter()
    for pid, held in last.items():
        if pid in live:
            count.update(int(p.rsplit(":", 1)[1]) for p in held if p.rsplit(":", 1)[0] == topic)
    return dict(count)


class Up:
    """`perpsignal up --scale ...` as a user runs it, its terminal and its stack.json."""

    def __init__(self, data_dir: Path, out_path: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.out_path = out_path
        scale = ",".join(f"{k}={v}" for k, v in SCALE.items())
        with open(out_path, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "perpsignal_cli", "up", "--port", "0", "--data-dir",
                 str(data_dir), "--services", *SCALE, "--scale", scale],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.children: list[psutil.Process] = []
        self.forget = kill_on_exit(self.kill)

    def text(self) -> str:
        return self.out_path.read_text(errors="replace")

    def wait_text(self, needle: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            assert self.proc.poll() is None, self.text()
            assert time.monotonic() < deadline, self.text()
            time.sleep(0.2)

    def info(self) -> dict[str, Any]:
        return dict(json.loads((self.data_dir / "stack.json").read_text()))

    def replicas(self, service: str) -> list[dict[str, Any]]:
        return list(self.info()["replicas"][service])

    def live_pids(self) -> set[int]:
        return {
            r["pid"]
            for reps in self.info()["replicas"].values()
            for r in reps
            if psutil.pid_exists(r["pid"])
            and psutil.Process(r["pid"]).status() != psutil.STATUS_ZOMBIE
        }

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                self.children += psutil.Process(self.proc.pid).children(recursive=True)
            self.proc.kill()
        for c in self.children:
            with contextlib.suppress(psutil.Error):
                c.kill()


def test_replicas_killed_mid_stream_lose_and_duplicate_nothing_one_owner_at_a_time(
    tmp_path: Path, shared_data: Path
) -> None:
    market = shared_data / "market"
    candles = {s: recorded_candles(market / f, s, first) for s, (f, first) in SERIES.items()}
    spread = {partition_of(s) for s in SERIES}
    assert len(spread) >= 5, spread  # the symbols fall on enough partitions to split

    assert sorted(partition_of(s) for s in WATCH) == [2, 5, 6, 9]
    bg = BackgroundLoop()
    telegram = FakeTelegram()
    bg.run(telegram.start())
    vendors = FakeVendors(shared_data, symbols=WATCH)
    bg.run(vendors.start())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "DATABASE_URL"))}
    env |= {
        "PYTHONUNBUFFERED": "1",
        "LOG_FORMAT": "json",
        "EMBEDDED_POSTGRES_DURABLE": "false",
        "KAFKA_SESSION_TIMEOUT_MS": "3000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
        "KAFKA_FETCH_MAX_WAIT_MS": "25",
        "KAFKA_LINGER_MS": "1",
        "SCORER_PRIMARY_TIMEFRAME": "5m",
        # a narrower neutral band: LONG/SHORT signals on every market, so alerts and outcome
        # tracking are exercised (as the other end-to-end stacks do)
        "SCORER_LONG_THRESHOLD": "55",
        "SCORER_SHORT_THRESHOLD": "45",
        "SCORER_NEUTRAL_MIN_HISTORY": "2",
        "ENABLE_AI_JUDGE": "false",
        "OUTCOMES_CLOCK": "event",
        "OUTCOMES_KLINES_FALLBACK": "false",
        "OUTCOMES_CANDLE_TIMEFRAMES": "5m",
        "OUTCOMES_SETTLE_S": "0",
        # a row due before its symbol's last candle is stored (a lagging or restarted
        # replica) is retried after this, not after the default minute
        "OUTCOMES_RETRY_S": "2",
        "OUTCOMES_POLL_INTERVAL_S": "0.5",
        "TELEGRAM_BOT_TOKEN": DEFAULT_TOKEN,
        "TELEGRAM_API_BASE": telegram.base_url,
        "TELEGRAM_CHAT_IDS": ",".join(str(c) for c in CHATS),
        "TELEGRAM_REQUEST_TIMEOUT_S": "60",
        "NOTIFIER_COOLDOWN_S": "0",
        "NOTIFIER_RATE_PRIVATE_PER_S": "1000",
        "NOTIFIER_RATE_GLOBAL_PER_S": "1000",
        "NOTIFIER_POLL_TIMEOUT_S": "1",
        "GATEWAY_API_KEYS": "",
        **vendors.env(),
        "INGESTOR_SYMBOLS": ",".join(WATCH),
        "INGESTOR_ENABLED_SOURCES": "binance_ratios",
        "INGESTOR_RATIO_CADENCE_S": str(RATIO_CADENCE_S),
    }
    up = Up(tmp_path / "data", tmp_path / "up.out", env)
    killed_at: dict[int, float] = {}
    killed: dict[str, str] = {}  # service -> replica name
    ingestor_died: list[float] = []  # time.monotonic() of its kill (the fake's request clock)
    orphans: list[str] = []  # the symbols the killed ingestor polled
    try:
        up.wait_text("stack is up", 180)
        info = up.info()
        assert len(info["gateway_urls"]) == 2 and all(
            u in up.text() for u in info["gateway_urls"]
        ), up.text()  # every gateway URL printed
        assert {s: len(r) for s, r in info["replicas"].items()} == SCALE
        kafka = KafkaSettings(kafka_bootstrap_servers=info["kafka_bootstrap"])
        logs = Path(info["logs"])

        def settled() -> bool:
            """Every replica of every group holds some of its group's input partitions."""
            own = ownership(logs)
            for group, topic in GROUP_INPUT.items():
                for pid in (pids := {r["pid"] for r in up.replicas(group)}):
                    if not current_owners(own.get(group, []), {pid}, kafka.topic(topic)):
                        return False  # a replica without work: the group is still joining
                held = current_owners(own.get(group, []), pids, kafka.topic(topic))
                if held != dict.fromkeys(range(DEFAULT_PARTITIONS), 1):
                    return False
            return True

        asyncio.run(eventually(settled, timeout=120, interval=0.5, what="every group settled"))

        def owner_of(group: str, symbol: str) -> str | None:
            """The replica whose last ownership line gives it `symbol`'s partition."""
            part = f"{kafka.topic(GROUP_INPUT[group])}:{partition_of(symbol)}"
            mine: dict[int, bool] = {}
            for rec in sorted(ownership(logs)[group], key=lambda r: r["at"]):
                if part in rec["partitions"]:
                    mine[rec["pid"]] = rec["msg"] == "partitions assigned"
            names = [r["name"] for r in up.replicas(group) if mine.get(r["pid"])]
            return names[0] if len(names) == 1 else None

        async def stream() -> dict[str, int]:
            """Publish round by round; SIGKILL replicas at their rounds; return how many
            judged signals existed at each kill (mid-stream: fewer than the candles)."""
            producer = EventProducer(kafka, "acceptance")
            await producer.start()
            at_kill: dict[str, int] = {}
            try:
                for i in range(N):
                    await producer.publish_many([candles[s][i] for s in SERIES])
                    for round_, service in KILLS:
                        if round_ != i:
                            continue
                        # the replica owning most of the symbols dies, not an idle one
                        symbols = WATCH if service == "ingestor" else list(SERIES)
                        owners = Counter(owner_of(service, s) for s in symbols)
                        name = owners.most_common(1)[0][0]
                        assert name is not None, owners
                        (victim,) = [r for r in up.replicas(service) if r["name"] == name]
                        if service == "ingestor":
                            orphans.extend(s for s in symbols if owner_of(service, s) == name)
                            ingestor_died.append(time.monotonic())
                        killed_at[victim["pid"]] = time.time()
                        os.kill(victim["pid"], signal.SIGKILL)
                        killed[service] = name
                        judged = await read_topic(kafka, Topic.SIGNALS_JUDGED)
                        at_kill[service] = len(distinct_judged(judged))
                    await asyncio.sleep(0.3)
            finally:
                await producer.stop()
            return at_kill

        at_kill = asyncio.run(stream())
        for name in killed.values():
            up.wait_text(f"{name} restarted (pid", 60)
        total = N * len(SERIES)
        assert all(n < total for n in at_kill.values()), at_kill  # each died mid-stream

        async def all_judged() -> bool:
            judged = distinct_judged(await read_topic(kafka, Topic.SIGNALS_JUDGED))
            return len({(e.symbol, e.observed_at) for e in judged.values()}) >= total

        asyncio.run(eventually(all_judged, timeout=150, interval=2, what="every candle judged"))

        # nothing lost, nothing twice: one judged id per candle, none for anything else
        judged_events = asyncio.run(read_topic(kafka, Topic.SIGNALS_JUDGED))
        judged = distinct_judged(judged_events)
        per_candle = Counter((e.symbol, e.observed_at) for e in judged.values())
        want = Counter({(s, c.observed_at): 1 for s in SERIES for c in candles[s]})
        assert per_candle == want, (per_candle - want, want - per_candle)
        scored = [e for e in asyncio.run(read_topic(kafka, Topic.SIGNALS))
                  if isinstance(e, SignalScoredV1)]  # fmt: skip
        assert (
            Counter((e.symbol, e.observed_at) for e in {e.event_id: e for e in scored}.values())
            == want
        )
        # a redelivered id is the same judgement (the restarted judge did not judge anew)
        verdicts: dict[str, set[Any]] = defaultdict(set)
        for e in judged_events:
            if isinstance(e, SignalJudgedV1):
                verdicts[e.event_id].add((e.direction, e.ai_verdict_layer.verdict, e.score))
        assert all(len(v) == 1 for v in verdicts.values())

        # outcomes: three rows per LONG/SHORT signal, each evaluated at most once, and the
        # 1h horizons that market time has passed evaluated (not lost with a killed replica)
        directional = {e.signal_id: e for e in judged.values() if e.direction != "NEUTRAL"}
        assert directional, "no LONG/SHORT signal: outcomes and alerts were not exercised"
        db = info["database_url"]
        sql = "select signal_id, horizon, status, evaluation_count from signal_outcomes"
        last_close = max(c.observed_at for cs in candles.values() for c in cs)
        # 1h horizons the replayed market passed, with the candle after the horizon closed
        # too (the price path is read up to it, as tests/e2e/test_whole_system.py allows)
        due = {
            (sid, "1h")
            for sid, e in directional.items()
            if (last_close - e.observed_at).total_seconds() >= 3600 + TF_MS / 1000
        }

        async def outcomes_done() -> bool:
            rows = await fetch(db, sql)
            done = {(r["signal_id"], r["horizon"]) for r in rows if r["status"] == "completed"}
            return {r["signal_id"] for r in rows} >= set(directional) and due <= done

        try:
            asyncio.run(eventually(outcomes_done, timeout=90, interval=2, what="outcomes"))
        except AssertionError:
            rows = asyncio.run(fetch(db, sql))
            missing = set(directional) - {r["signal_id"] for r in rows}
            states = Counter((r["horizon"], r["status"]) for r in rows)
            late = [
                (directional[r["signal_id"]].symbol, str(directional[r["signal_id"]].observed_at))
                for r in rows
                if (r["signal_id"], r["horizon"]) in due and r["status"] != "completed"
            ]
            raise AssertionError(
                f"{len(missing)} signals without rows; rows {states}; due, not done: {late}"
            ) from None
        rows = asyncio.run(fetch(db, sql))
        assert Counter(r["signal_id"] for r in rows) == Counter(dict.fromkeys(directional, 3))
        assert all(r["evaluation_count"] <= 1 for r in rows), [dict(r) for r in rows]
        outs = asyncio.run(read_topic(kafka, Topic.OUTCOMES))
        ids: dict[tuple[str, str], set[str]] = defaultdict(set)
        for e in outs:
            if isinstance(e, OutcomeEvaluatedV1):
                ids[(e.signal_id, e.horizon)].add(e.event_id)
        assert all(len(v) == 1 for v in ids.values()), "an outcome published under two ids"

        # Telegram: each alert-worthy signal at most once per chat, and none lost unless the
        # killed notifier left its send uncertain (the ledger says so)
        def key(e: SignalJudgedV1) -> tuple[str, str, str]:
            return (e.direction, e.symbol, e.observed_at.strftime("%Y-%m-%d %H:%M UTC"))

        worthy = Counter(key(e) for e in judged.values() if alert_worthy(e))
        assert worthy, "no alert-worthy signal: the notifier path was not exercised"

        def sent(chat: int) -> Counter[tuple[str, str, str]]:
            got: Counter[tuple[str, str, str]] = Counter()
            for m in telegram.messages:
                first = FIRST_LINE.search(m.text)
                stamp = m.text.rsplit("<i>", 1)[-1].split("</i>", 1)[0]
                if m.chat_id == chat and first:
                    got[(first.group(1), first.group(2), stamp)] += 1
            return got

        with contextlib.suppress(AssertionError):
            asyncio.run(
                eventually(
                    lambda: all(sent(c) >= worthy for c in CHATS),
                    timeout=60,
                    interval=1,
                    what="every alert delivered",
                )
            )
        ledger = asyncio.run(fetch(db, "select chat_id, symbol, status from notifier_deliveries"))
        for chat in CHATS:
            got = sent(chat)
            twice = {k: n for k, n in got.items() if n > 1}
            assert not twice, f"chat {chat}: alerts sent twice {twice}"
            assert not (got - worthy), f"chat {chat}: alerts for no signal {got - worthy}"
            lost = Counter(k[1] for k in worthy - got)
            uncertain = Counter(
                r["symbol"] for r in ledger if r["chat_id"] == chat and r["status"] == "uncertain"
            )
            assert not (lost - uncertain), f"chat {chat}: alerts lost {lost - uncertain}"

        # one owner at a time, and once the restarted replicas have joined, exactly one live
        # holder per partition, every replica (the restarted ones too) holding some
        asyncio.run(
            eventually(settled, timeout=150, interval=0.5, what="every group settled again")
        )
        now = time.time()
        own = ownership(logs)
        live = up.live_pids()
        for group, topic in GROUP_INPUT.items():
            spans = holdings(own[group], killed_at, now)
            name = kafka.topic(topic)
            bad = overlaps(spans)
            assert not bad, f"{group}: a partition held twice at once: {bad}"
            held = current_owners(own[group], live, kafka.topic(topic))
            assert held == dict.fromkeys(range(DEFAULT_PARTITIONS), 1), (group, held)
            # the killed replica's partitions went to another process after its death
            orphaned = [
                (part, end)
                for part, held_by in spans.items()
                for _, end, pid in held_by
                if pid in killed_at and end == killed_at[pid] and part.rsplit(":", 1)[0] == name
            ]
            assert orphaned, f"{group}: the killed replica held none of {topic}"
            for part, died in orphaned:
                assert any(s >= died for s, _, _ in spans[part]), f"{part} never moved on"
        # the killed replicas' partitions moved: each killed pid held some, none holds any now
        for pid in killed_at:
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
        # nothing else crashed: the supervisor restarted exactly the replicas killed
        exits = [ln for ln in up.text().splitlines() if " exited with code " in ln]
        assert sorted(ln.split("] ", 1)[1].split(" ")[0] for ln in exits) == sorted(
            killed.values()
        ), exits

        # the killed ingestor's symbols were polled again after its death (by the survivor,
        # then maybe by its restarted self), and the replicas' shards split the watch list
        def polled_since(t: float) -> set[str]:
            return {
                q.get("symbol", "")
                for (_, path, q), at in zip(vendors.calls, vendors.call_times, strict=True)
                if at > t and path.endswith("openInterestHist")
            }

        asyncio.run(
            eventually(
                lambda: set(orphans) <= polled_since(ingestor_died[0]),
                timeout=60,
                interval=1,
                what=f"{orphans} polled after their ingestor died",
            )
        )

        async def shards() -> list[dict[str, Any]]:
            async with httpx.AsyncClient(timeout=5) as http:
                return [
                    (await http.get(f"http://127.0.0.1:{r['ops_port']}/shards")).json()
                    for r in up.replicas("ingestor")
                ]

        docs = asyncio.run(shards())
        owned = [set(d["symbols"]) for d in docs]
        assert all(owned), docs  # both replicas poll some
        assert sorted(s for o in owned for s in o) == sorted(WATCH), docs  # no gap, no twice

        # both gateways serve each symbol's last judged signal
        last = {s: candles[s][-1] for s in SERIES}
        for url in info["gateway_urls"]:

            async def serves(base: str = url) -> bool:
                async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                    for s, c in last.items():
                        r = await http.get(f"/signals/{s}")
                        if r.status_code != 200 or r.json()["price"] != c.close:
                            return False
                return True

            asyncio.run(eventually(serves, timeout=60, interval=1, what=f"{url} up to date"))

        children = psutil.Process(up.proc.pid).children(recursive=True)
        up.proc.send_signal(signal.SIGINT)
        assert up.proc.wait(90) == 0
        left = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        assert left == [], [c.cmdline() for c in left]
    finally:
        up.kill()
        up.forget()
        for fake in (telegram, vendors):
            with contextlib.suppress(Exception):
                bg.run(fake.stop(), timeout=10)
        bg.close()
