"""A stop request is never ignored: `serve` cancels a run that does not drain in time.

A notifier whose consumer loop kept retrying a broker that was gone ran on for minutes after
SIGTERM (and ignored a second one): `serve` waited on `run` without a deadline, and the
shutdown deadline only bounded `close`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

from perpsignal_common.embedded import free_port
from perpsignal_common.runtime import serve
from perpsignal_common.settings import OpsSettings, ServiceSettings


class _Stuck:
    """A service whose `run` ignores the stop event (a loop stuck on a dead dependency)."""

    name = "stuck"

    def __init__(self) -> None:
        self.closed = False
        self.cancelled = False
        self.running = asyncio.Event()

    async def start(self) -> None:
        return None

    async def run(self, stop: asyncio.Event) -> None:
        self.running.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise

    async def close(self) -> None:
        self.closed = True

    def is_ready(self) -> bool:
        return True


def _settings(shutdown_s: float) -> ServiceSettings:
    ops = OpsSettings(ops_port=free_port(), shutdown_timeout_s=shutdown_s)
    return ServiceSettings(ops=ops)


async def _serve_and_signal(service: _Stuck, shutdown_s: float, signals: int) -> float:
    task = asyncio.create_task(serve(service, _settings(shutdown_s)))
    await asyncio.wait_for(service.running.wait(), 10)
    started = time.monotonic()
    for _ in range(signals):
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.05)
    await asyncio.wait_for(task, 30)
    return time.monotonic() - started


async def test_a_run_that_ignores_the_stop_is_cancelled_at_the_deadline() -> None:
    service = _Stuck()
    took = await _serve_and_signal(service, shutdown_s=1.0, signals=1)
    assert service.cancelled and service.closed
    assert 0.9 < took < 5.0


async def test_a_second_signal_stops_at_once() -> None:
    service = _Stuck()
    took = await _serve_and_signal(service, shutdown_s=60.0, signals=2)
    assert service.cancelled and service.closed
    assert took < 5.0  # not the 60 s deadline
