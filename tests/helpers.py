"""Test helpers: polling with deadlines, topic readers, service subprocesses and a reaper.

Every server and service a test starts runs in its own process group and is registered with
`kill_on_exit`: the callbacks run when the test session ends however it ends (normal exit,
failure, Ctrl-C, SIGTERM or SIGHUP of the run or of an xdist worker), so no broker, database
or service outlives the run. A SIGKILLed run is covered by the children's parent-death signal
(`perpsignal_common.embedded.die_with_parent`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from perpsignal_common.embedded import die_with_parent
from perpsignal_common.events.base import Event
from perpsignal_common.events.registry import decode
from perpsignal_common.runtime import Service
from perpsignal_common.settings import KafkaSettings

REPO = Path(__file__).resolve().parents[1]

_cleanups: dict[int, Callable[[], None]] = {}
_cleanup_ids = iter(range(1 << 62))
_cleanup_lock = threading.Lock()
_installed = False


def _run_cleanups() -> None:
    with _cleanup_lock:
        pending = list(_cleanups.items())
        _cleanups.clear()
    for _, fn in reversed(pending):  # last started, first stopped
        with contextlib.suppress(Exception):
            fn()


def _on_signal(signum: int, _frame: object) -> None:
    _run_cleanups()
    # then die of the signal as the run would have (Ctrl-C is pytest's KeyboardInterrupt:
    # fixtures tear down, then atexit runs what is left)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def install_reaper() -> None:
    """Run the registered cleanups at exit and on SIGTERM/SIGHUP (once per process)."""
    global _installed
    if _installed:
        return
    _installed = True
    atexit.register(_run_cleanups)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _on_signal)


def kill_on_exit(fn: Callable[[], None]) -> Callable[[], None]:
    """Register `fn` to run if the session ends before it is unregistered; return the undo."""
    install_reaper()
    with _cleanup_lock:
        key = next(_cleanup_ids)
        _cleanups[key] = fn

    def forget() -> None:
        with _cleanup_lock:
            _cleanups.pop(key, None)

    return forget


def kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Signal the process group led by `proc` (it was started in its own session)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)


async def eventually(
    check: Callable[[], Awaitable[Any]] | Callable[[], Any],
    *,
    timeout: float = 20.0,
    interval: float = 0.05,
    what: str = "condition",
) -> Any:
    """Poll `check` until it returns a truthy value; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        last = result
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


S = TypeVar("S", bound=Service)


class InLoop(Generic[S]):
    """`service` started and run in this event loop (`async with`); on exit it is stopped,
    its run awaited (at most 20 s) and closed: a service under test without a process."""

    def __init__(self, service: S) -> None:
        self.service = service
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        await self.service.start()
        self.task = asyncio.create_task(self.service.run(self.stop))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 20)
        await self.service.close()


class TopicReader:
    """Read a topic from the beginning (no group), collecting raw records."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.kafka = kafka
        self.topic = kafka.topic(topic)
        self.records: list[Any] = []
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> TopicReader:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.kafka.kafka_bootstrap_servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=25,
        )
        await self._consumer.start()
        await eventually(self._assign, timeout=60, what=f"topic {self.topic}")
        return self

    async def _assign(self) -> bool:
        assert self._consumer is not None
        parts = self._consumer.partitions_for_topic(self.topic)
        if not parts:
            await self._consumer._client.force_metadata_update()
            return False
        tps = [TopicPartition(self.topic, p) for p in parts]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        return True

    async def __aexit__(self, *exc: object) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def poll(self) -> list[Any]:
        assert self._consumer is not None
        batches = await self._consumer.getmany(timeout_ms=100)
        for recs in batches.values():
            self.records.extend(recs)
        return self.records

    def events(self) -> list[Event]:
        return [decode(r.value) for r in self.records]

    async def wait_for(self, n: int, timeout: float = 30.0) -> list[Any]:
        async def enough() -> bool:
            await self.poll()
            return len(self.records) >= n

        await eventually(
            enough,
            timeout=timeout,
            interval=0.0,
            what=f"{n} records on {self.topic} (have {len(self.records)})",
        )
        return self.records


class ServiceProcess:
    """A service as its own OS process: `python -m perpsignal_<name>`."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.env = {**os.environ, "LOG_FORMAT": "json", **env}
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._forget: Callable[[], None] | None = None

    def start(self) -> ServiceProcess:
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", f"perpsignal_{self.name}"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,  # its own group: the reaper kills it and its children
                preexec_fn=die_with_parent(signal.SIGKILL),
            )
        self.proc = proc
        self._forget = kill_on_exit(lambda: kill_group(proc))
        return self

    def _reaped(self) -> None:
        if self._forget is not None and self.proc is not None and self.proc.poll() is not None:
            self._forget()
            self._forget = None

    def kill(self) -> None:
        """SIGKILL: no chance to drain or commit."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reaped()

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM and wait; return the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._reaped()
        return code

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
