"""Notifier throughput: alerts rendered and handed to aiogram per second, rate limiter on.

A local Bot API server (tests/fakes/telegram.py, in its own process so its CPU is not ours,
enforcing Telegram's limits with 429s) receives the messages. In this process each alert is
rendered (`render_signal`), delivered through `Deliverer` (sent-message ledger, limiters,
retries) and sent with aiogram. Figures, all from the same run:

* limited: the shipped limits (NotifierSettings defaults: 30 msg/s global, 1 msg/s per
  private chat), 100 chats, ledger in PostgreSQL (embedded): 429s against messages sent
  (same run, goal 0) and, as absolute figures, sustained alerts/s (goal >= 0.9x the limit),
  the most messages seen in any 1 s window (goal <= the limit) and this process's CPU %
  while saturating the limit (goal < 10 %).
* unlimited: the same pipeline with the limits lifted: its rate against the limited run's
  (same run, the headroom above the limiter) and its CPU per alert (absolute).

Run: `uv run python bench/notifier_throughput.py` (BENCH_NOTIFIER_ALERTS=300 by default).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from bench.common import Row, report  # noqa: E402
from perpsignal_common.db.migrate import upgrade  # noqa: E402
from perpsignal_common.embedded import EmbeddedPostgres, free_port, wait_for_port  # noqa: E402
from perpsignal_notifier.delivery import Alert, Deliverer, Outcome  # noqa: E402
from perpsignal_notifier.ratelimit import TelegramLimits  # noqa: E402
from perpsignal_notifier.render import render_signal  # noqa: E402
from perpsignal_notifier.repository import NotifierRepository  # noqa: E402
from perpsignal_notifier.settings import NotifierSettings  # noqa: E402
from perpsignal_notifier.telegram import BotSender, create_bot  # noqa: E402
from tests.fakes.telegram import DEFAULT_TOKEN  # noqa: E402
from tests.unit.notifier.builders import judged  # noqa: E402

N = int(os.environ.get("BENCH_NOTIFIER_ALERTS", "300"))
_LIMITS = NotifierSettings.model_fields  # the shipped defaults
GLOBAL_LIMIT = float(_LIMITS["notifier_rate_global_per_s"].default)
GROUP_PER_MIN = float(_LIMITS["notifier_rate_group_per_min"].default)
PRIVATE_PER_S = float(_LIMITS["notifier_rate_private_per_s"].default)
CHATS = 100
CPU_BUDGET_PCT = 10.0


@dataclass
class Run:
    sends: list[float]
    wall_s: float
    cpu_s: float
    rejected_429: int

    @property
    def sustained_per_s(self) -> float:
        # the first window's burst is free; the rate after it is what the limiter sustains
        stamps = sorted(self.sends)
        first_window = sum(1 for t in stamps if t < stamps[0] + 1.0)
        span = stamps[-1] - stamps[0]
        return (len(stamps) - first_window) / (span - 1.0) if span > 1.0 else float("nan")

    @property
    def rate_per_s(self) -> float:
        return len(self.sends) / self.wall_s

    @property
    def max_in_1s(self) -> int:
        stamps = sorted(self.sends)
        return max(sum(1 for t in stamps if s <= t < s + 1.0) for s in stamps)

    @property
    def cpu_pct(self) -> float:
        return 100.0 * self.cpu_s / self.wall_s


class CountingSender:
    """BotSender that timestamps each accepted message and counts 429s."""

    def __init__(self, inner: BotSender) -> None:
        self.inner = inner
        self.sends: list[float] = []
        self.rejected_429 = 0

    async def __call__(self, chat_id: int, text: str) -> int:
        from aiogram.exceptions import TelegramRetryAfter

        departed = time.monotonic()  # closest to when Telegram counts it
        try:
            message_id = await self.inner(chat_id, text)
        except TelegramRetryAfter:
            self.rejected_429 += 1
            raise
        self.sends.append(departed)
        return message_id


async def _run(repo: NotifierRepository, base_url: str, *, limited: bool, tag: str) -> Run:
    big = 1e9
    limits = TelegramLimits(
        global_per_s=GLOBAL_LIMIT if limited else big,
        group_per_min=GROUP_PER_MIN if limited else big,
        private_per_s=PRIVATE_PER_S if limited else big,
    )
    bot = create_bot(DEFAULT_TOKEN, base_url, timeout_s=10)
    sender = CountingSender(BotSender(bot))
    deliverer = Deliverer(repo=repo, send=sender, limits=limits)
    # real judged signals (tests/producers.py): one scorer run per symbol, then re-keyed
    events = [judged(f"C{i % 50}USDT", minutes=i, price=100.0) for i in range(N)]
    sem = asyncio.Semaphore(16)  # the consumer loop's default concurrency

    async def one(i: int) -> None:
        async with sem:
            event = events[i]
            alert = Alert(f"{tag}-{event.event_id}", "signal", event.symbol, render_signal(event))
            results = await deliverer.deliver(alert, [1 + i % CHATS])
            assert results[0].outcome is Outcome.SENT, results

    try:
        cpu0, t0 = time.process_time(), time.monotonic()
        await asyncio.gather(*(one(i) for i in range(N)))
        wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    finally:
        await bot.session.close()
    return Run(sender.sends, wall, cpu, sender.rejected_429)


async def _main(pg_url: str, strict_url: str, lax_url: str) -> list[Row]:
    engine = create_async_engine(pg_url)
    repo = NotifierRepository(engine)
    try:
        await _run(repo, lax_url, limited=False, tag="warmup")  # imports, pools, caches
        unlimited = await _run(repo, lax_url, limited=False, tag="unlimited")
        limited = await _run(repo, strict_url, limited=True, tag="limited")
    finally:
        await repo.close()
        await engine.dispose()
    limit = f"the shipped {GLOBAL_LIMIT:g}/s global limit"
    return [
        Row(
            "limited: 429 answers from the strict server",
            float(limited.rejected_429),
            "answers",
            "messages sent",
            float(len(limited.sends)),
            "0 (never over the limit)",
            higher_is_better=False,
            goal_ratio=0.0,
        ),
        Row(
            "unlimited: alerts/s (headroom above the limiter)",
            unlimited.rate_per_s,
            "alerts/s",
            "limited: sustained alerts/s",
            limited.sustained_per_s,
            ">= 1x",
            goal_ratio=1.0,
        ),
        Row.absolute(
            "limited: sustained alerts/s",
            limited.sustained_per_s,
            "alerts/s",
            f">= 0.9x {limit}",
            limit=0.9 * GLOBAL_LIMIT,
        ),
        Row.absolute(
            "limited: most departures in any 1 s",
            float(limited.max_in_1s),
            "messages",
            f"<= {limit} (no 429)",
            limit=GLOBAL_LIMIT,
            higher_is_better=False,
        ),
        Row.absolute(
            "limited: notifier CPU at the limit",
            limited.cpu_pct,
            "% of a core",
            f"< {CPU_BUDGET_PCT:g} %",
            limit=CPU_BUDGET_PCT,
            higher_is_better=False,
        ),
        Row.absolute(
            "unlimited: CPU per alert",
            1000.0 * unlimited.cpu_s / N,
            "ms/alert",
            f"<= {CPU_BUDGET_PCT:g} % of a core at {limit}",
            limit=1000.0 * CPU_BUDGET_PCT / 100.0 / GLOBAL_LIMIT,
            higher_is_better=False,
        ),
    ]


def _start_fake(*flags: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.telegram", "--port", str(port), *flags],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )
    wait_for_port("127.0.0.1", port, 60, proc)
    return proc, f"http://127.0.0.1:{port}"


def main() -> list[dict[str, object]]:
    """Run the benchmark; print the table and write bench/results/notifier_throughput.json."""
    strict, strict_url = _start_fake("--enforce-limits")  # answers 429 above Telegram's limits
    lax, lax_url = _start_fake()  # for the unlimited run
    with tempfile.TemporaryDirectory(prefix="bench-notifier-") as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "pg", database="bench").start()
        try:
            upgrade(pg.url())
            rows = asyncio.run(_main(pg.url(), strict_url, lax_url))
        finally:
            pg.stop()
            for proc in (strict, lax):
                proc.terminate()
                proc.wait(10)
    return report("notifier_throughput", rows)


if __name__ == "__main__":
    main()
