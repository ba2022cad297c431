"""Service lifecycle: signals, start-up and shutdown deadlines, the ops server.

Every service is a `Service`: `start()` opens clients, `run(stop)` works until `stop` is set
and drains, `close()` flushes and disconnects. `serve()` wires SIGTERM/SIGINT to `stop`, so
Kubernetes' SIGTERM drains in-flight work and commits within the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from perpsignal_common.errors import ConfigError, DependencyUnavailable
from perpsignal_common.events.registry import warm as warm_event_models
from perpsignal_common.events.values import configure_clock_skew
from perpsignal_common.kafka.admin import ensure_topics
from perpsignal_common.kafka.consumer import ConsumerLoop
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.logging import configure_logging
from perpsignal_common.observability.ops_server import OpsServer
from perpsignal_common.settings import ServiceSettings

log = logging.getLogger(__name__)

# Default ops ports, one per service, so a local stack can run all six side by side
DEFAULT_OPS_PORTS = {
    "ingestor": 9101,
    "scorer": 9102,
    "judge": 9103,
    "outcomes": 9104,
    "notifier": 9105,
    "gateway": 8000,
}


class Service(Protocol):
    """What `serve()` needs from a service."""

    name: str

    async def start(self) -> None: ...
    async def run(self, stop: asyncio.Event) -> None: ...
    async def close(self) -> None: ...
    def is_ready(self) -> bool: ...


class KafkaService:
    """A service made of one producer, consumer loops and background tasks.

    Subclasses add loops in `__init__` (`self.loops`) and background coroutines
    (`self.tasks`), and may override `on_start`/`on_close` for their own resources.
    """

    def __init__(self, name: str, settings: ServiceSettings) -> None:
        self.name = name
        self.settings = settings
        self.producer = EventProducer(settings.kafka, service=name)
        self.loops: list[ConsumerLoop] = []
        self.tasks: list[Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = []
        self._started = False

    async def on_start(self) -> None:
        """Open service-specific resources (database, HTTP clients)."""

    async def on_close(self) -> None:
        """Close service-specific resources."""

    async def start(self) -> None:
        """Create topics, connect the producer, start every consumer loop."""
        if self.settings.kafka.kafka_create_topics:
            await ensure_topics(self.settings.kafka)
        await self.producer.start()
        await self.on_start()
        for loop in self.loops:
            await loop.start()
        self._started = True

    async def run(self, stop: asyncio.Event) -> None:
        """Run every loop and task until `stop`; one failing cancels the others."""
        async with asyncio.TaskGroup() as tg:
            for loop in self.loops:
                tg.create_task(loop.run(stop))
            k = self.settings.kafka
            if k.kafka_create_topics and k.kafka_topic_watch_s > 0:
                tg.create_task(self._watch_topics(stop))
            for task in self.tasks:
                tg.create_task(task(stop))

    async def _watch_topics(self, stop: asyncio.Event) -> None:
        """Re-create vanished topics soon after an empty broker returns.

        The embedded broker keeps everything in memory: after a restart it has no topics, and
        it stores records sent to a missing topic where no consumer sees them (then refuses
        the created topic's first offsets). The sooner the topics exist again, the fewer
        sends are lost that way. A real cluster never needs this (KAFKA_CREATE_TOPICS=false).
        """
        k = self.settings.kafka
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(k.kafka_topic_watch_s):
                    await stop.wait()
            if stop.is_set():
                return
            try:
                created = await ensure_topics(k)
            except (DependencyUnavailable, OSError):
                continue  # broker down: the clients retry and report it
            if created:
                log.warning(
                    "topics had vanished (an empty broker after a restart); re-created",
                    extra={"topics": len(created)},
                )

    async def close(self) -> None:
        """Stop loops, flush the producer, close resources."""
        for loop in self.loops:
            await loop.stop()
        await self.on_close()
        await self.producer.stop()

    def is_ready(self) -> bool:
        """Ready once started and every group loop owns partitions (or is assign-all)."""
        return self._started and all(loop.assigned() for loop in self.loops)


def freeze_startup_heap() -> None:
    """Exempt everything alive after start-up (modules, schemas, clients) from collection.

    Records in flight outlive the collector's young generation, so a busy consumer
    triggers full collections; without this each one walks every object the process ever
    loaded, about 30 ms here, and took ~1 us per consumed record. Objects frozen here are
    never collected, which is what start-up objects are for; refcounting still frees them.
    The event models' validators are built first (they are built on first use otherwise:
    `events.registry.warm`), so they are among what is frozen and no message pays for them.
    """
    warm_event_models()
    gc.collect()
    gc.freeze()


async def serve(service: Service, settings: ServiceSettings) -> None:
    """Run `service` with signal handling, deadlines and an ops server.

    A stop signal asks `run` to drain and return; if it has not within
    SHUTDOWN_TIMEOUT_S (a loop stuck on a broker that is gone), or at a second signal,
    it is cancelled and the service closes anyway: a stop request is never ignored.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    runner: asyncio.Task[None] | None = None

    def on_signal() -> None:
        if stop.is_set() and runner is not None and not runner.done():
            log.warning("second stop signal: not waiting for the drain")
            runner.cancel()
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    port = settings.ops.ops_port or DEFAULT_OPS_PORTS.get(service.name, 9100)
    # a service may add JSON endpoints to its ops server (the ingestor's `/shards`)
    routes = getattr(service, "ops_routes", None)
    ops = OpsServer(settings.ops.ops_host, port, service.is_ready, routes() if routes else None)
    await ops.start()
    log.info("service starting", extra={"service_name": service.name, "ops_port": ops.port})
    try:
        try:
            async with asyncio.timeout(settings.ops.startup_timeout_s):
                await service.start()
        except TimeoutError as exc:
            # a dependency that accepts connections and never answers: say which deadline
            # passed (exit 3, as for any dependency down) rather than a bare TimeoutError
            raise DependencyUnavailable(
                f"start-up did not finish within STARTUP_TIMEOUT_S "
                f"({settings.ops.startup_timeout_s:g} s): a dependency does not answer"
            ) from exc
        log.info("service started", extra={"service_name": service.name})
        freeze_startup_heap()
        runner = asyncio.create_task(service.run(stop), name=f"{service.name}-run")
        await _run_until_stopped(runner, stop, settings.ops.shutdown_timeout_s)
    finally:
        try:
            async with asyncio.timeout(settings.ops.shutdown_timeout_s):
                await service.close()
        finally:
            await ops.stop()
        log.info("service stopped", extra={"service_name": service.name})


async def _run_until_stopped(
    runner: asyncio.Task[None], stop: asyncio.Event, deadline_s: float
) -> None:
    """Await `runner`; once `stop` is set give it `deadline_s` to return, then cancel it.

    Its exception, if it failed, is raised; a cancellation made here is not an error.
    """
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({runner, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not runner.done():
            await asyncio.wait({runner}, timeout=deadline_s)
        if not runner.done():
            log.error(
                "the service did not stop within the shutdown deadline; cancelling it",
                extra={"deadline_s": deadline_s},
            )
            runner.cancel()
        try:
            await runner
        except asyncio.CancelledError:
            if not stop.is_set():
                raise  # cancelled from outside, not by a stop
    finally:
        stopping.cancel()
        if not runner.done():  # serve itself was cancelled: take the run down with it
            runner.cancel()


def run_service(build: Callable[[], tuple[Service, ServiceSettings]]) -> None:
    """Entry point body of `python -m perpsignal_<svc>`: build, serve, map errors to exit codes."""
    try:
        service, settings = build()
        _check_deadlines(settings)
    except (ConfigError, ValueError) as exc:
        configure_logging("perpsignal", "INFO")
        log.error("invalid configuration", extra={"error": str(exc)})
        sys.exit(2)
    configure_logging(service.name, settings.log_level, settings.log_format)
    configure_clock_skew(settings.event_max_clock_skew_s)
    try:
        _run(serve(service, settings))
    except (ConfigError, DependencyUnavailable, ExceptionGroup) as exc:
        # a setting found unusable only once start-up tries it (a token the API refuses)
        # is a configuration error too: exit 2 naming it, not a traceback and exit 1
        config = _found(exc, ConfigError)
        if config is not None:
            log.error("invalid configuration", extra={"error": str(config)})
            sys.exit(2)
        cause = _found(exc, DependencyUnavailable)
        if cause is None:
            raise
        log.error("dependency unavailable; exiting", extra={"error": str(cause)})
        sys.exit(3)


def _check_deadlines(settings: ServiceSettings) -> None:
    """Refuse lifecycle deadlines `serve` cannot work with (0 fails every start-up at once)."""
    ops = settings.ops
    if ops.startup_timeout_s <= 0:
        raise ConfigError(f"STARTUP_TIMEOUT_S must be greater than 0 (got {ops.startup_timeout_s})")
    if ops.shutdown_timeout_s < 0:
        raise ConfigError(f"SHUTDOWN_TIMEOUT_S must not be negative (got {ops.shutdown_timeout_s})")


_E = TypeVar("_E", bound=BaseException)


def _found(exc: BaseException, kind: type[_E]) -> _E | None:
    """Return `exc`, or the first exception of `kind` nested in its groups, else None."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _found(inner, kind)
            if found is not None:
                return found
    return None


def _run(coro: Coroutine[Any, Any, None]) -> None:
    # uvloop where available: a faster event loop for the same asyncio code
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
        return
    uvloop.run(coro)
