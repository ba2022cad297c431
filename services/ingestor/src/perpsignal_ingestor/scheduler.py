"""One loop per source: poll on its cadence, publish, and survive any vendor failure.

A failing vendor never stops the others: every poll runs under a deadline, an exception is
counted and followed by a jittered backoff (capped by the cadence). Only our own
infrastructure failing (`DependencyUnavailable`: Kafka, PostgreSQL) ends the loop, so the
process exits and the orchestrator restarts it.

Honest status, without noise: each source is `up`, `degraded` (a poll failed after it was
up) or `down` (never came up, or `DOWN_AFTER_FAILURES` polls in a row failed). A change of
state is logged once (a warning with the reason, an info line when it is back) and published
as a `source.status` event; a failing poll that changes nothing is a debug line only. A vendor
outage therefore costs one line, not a traceback per poll.

Shards: a loop with an `active` predicate polls only while it holds (its replica owns a
shard, or partition 0 for a market-wide source). While inactive it checks every
`IDLE_CHECK_S` and keeps its schedule, so a replica that takes a source over polls within
one cadence (at once when the last poll is older), and one that keeps it through a rebalance
polls no extra time. `interrupt()` cancels a poll in flight when the shards it covers go.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence

from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.events.base import Event, deterministic_id, utcnow
from perpsignal_common.events.status import SourceState, SourceStatusV1, source_key
from perpsignal_connectors.errors import error_kind
from perpsignal_connectors.redact import redact
from perpsignal_ingestor.metrics import SOURCE_ERRORS, SOURCE_LAST_SUCCESS
from perpsignal_ingestor.publisher import Publisher

log = logging.getLogger(__name__)

Poll = Callable[[], Awaitable[Sequence[Event]]]
DOWN_AFTER_FAILURES = 3
IDLE_CHECK_S = 0.5


def failure_reason(exc: BaseException) -> str:
    """Return a one-line, bounded reason for a failed poll: the error kind and message.

    Published as `source.status` and logged: every vendor key is masked in it.
    """
    message = redact(str(exc)) or type(exc).__name__
    kind = error_kind(exc)
    return (message if kind == "other" else f"{kind}: {message}")[:300]


class SourceLoop:
    """Run `poll` every `cadence_s` seconds and publish what it returns."""

    def __init__(
        self,
        name: str,
        cadence_s: float,
        poll: Poll,
        publisher: Publisher,
        *,
        timeout_s: float | None = None,
        min_backoff_s: float = 1.0,
        rng: random.Random | None = None,
        on_published: Callable[[], None] | None = None,
        dependency_grace_s: float = 120.0,
        active: Callable[[], bool] | None = None,
    ) -> None:
        self.name = name
        self._active = active
        self._due = 0.0  # monotonic time of the next poll
        self._inflight: asyncio.Task[int] | None = None
        self._grace_s = dependency_grace_s
        self._down_since: float | None = None
        self.cadence_s = cadence_s
        self._poll = poll
        self._publisher = publisher
        self._timeout_s = timeout_s or max(30.0, 2 * cadence_s)
        self._min_backoff_s = min_backoff_s
        self._rng = rng or random.Random()
        self._on_published = on_published
        self.failures = 0
        self.polls = 0
        self.state: SourceState | None = None
        self.state_since = utcnow()
        self.reason: str | None = None

    async def run_once(self) -> int:
        """Poll and publish once; return the number of events published."""
        async with asyncio.timeout(self._timeout_s):
            events = await self._poll()
        n = await self._publisher.publish(self.name, events)
        if self._on_published is not None:
            self._on_published()
        self.polls += 1
        SOURCE_LAST_SUCCESS.labels(self.name).set(time.time())
        return n

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop`, backing off after failures; a poll in flight is cancelled on stop.

        A poll can wait a long time on a vendor budget (the next Binance weight minute), so
        shutdown must not wait for it: events it had not published are re-polled next start.
        """
        while not stop.is_set():
            if self._active is not None and not self._active():
                await self._wait(stop, IDLE_CHECK_S)
                continue
            if (wait := self._due - time.monotonic()) > 0:
                await self._wait(stop, min(wait, IDLE_CHECK_S) if self._active else wait)
                continue
            started = time.monotonic()
            try:
                outcome = await self._run_until_stopped(stop)
                if outcome == "stopped":
                    return
                if outcome == "interrupted":
                    continue  # its shards went; the next owner polls them
                self.failures = 0
                self._down_since = None
                await self._set_state("up", None)
                delay = max(0.0, self.cadence_s - (time.monotonic() - started))
            except asyncio.CancelledError:
                raise
            except DependencyUnavailable as exc:
                # Kafka did not acknowledge: nothing was marked published, so the next poll
                # publishes it again. Only an outage longer than the grace ends the process.
                now = time.monotonic()
                if self._down_since is None:
                    self._down_since = now
                if now - self._down_since > self._grace_s:
                    raise
                self.failures += 1
                log.warning(
                    "events not acknowledged; publishing them on the next poll",
                    extra={"source": self.name, "error": str(exc)[:200]},
                )
                delay = min(self.cadence_s, self._min_backoff_s * 2 ** min(self.failures, 6))
            except Exception as exc:
                self.failures += 1
                SOURCE_ERRORS.labels(self.name, error_kind(exc)).inc()
                reason = failure_reason(exc)
                log.debug(
                    "source poll failed; backing off",
                    extra={"source": self.name, "failures": self.failures, "error": reason},
                )
                down = self.polls == 0 or self.failures >= DOWN_AFTER_FAILURES
                await self._set_state("down" if down else "degraded", reason)
                cap = min(self.cadence_s, self._min_backoff_s * 2**self.failures)
                delay = self._rng.uniform(cap / 2, cap)
            self._due = time.monotonic() + delay

    @staticmethod
    async def _wait(stop: asyncio.Event, delay_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay_s)

    async def interrupt(self) -> None:
        """Cancel the poll in flight, if any, and wait until it is gone."""
        poll = self._inflight
        if poll is not None and not poll.done():
            poll.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poll

    async def _set_state(self, state: SourceState, reason: str | None) -> None:
        """Log and publish a change of state; the same state again is not news."""
        if state == self.state:
            return
        previous, self.state, self.reason = self.state, state, reason
        self.state_since = utcnow()
        extra = {"source": self.name, "state": state, "failures": self.failures}
        if state == "up":
            if previous is not None:
                log.info(f"source {self.name} is up again", extra=extra)
        else:
            log.warning(
                f"source {self.name} is {state}: {reason}", extra=extra | {"reason": reason}
            )
        event = SourceStatusV1(
            event_id=deterministic_id("source.status", self.name, state, self.state_since),
            source="ingestor",
            symbol=source_key(self.name),
            observed_at=self.state_since,
            name=self.name,
            state=state,
            since=self.state_since,
            reason=reason,
            failures=self.failures,
        )
        try:
            await self._publisher.publish("ingestor", [event])
        except Exception as exc:  # status is best effort: the next change says it again
            log.debug("source status not published", extra={"error": repr(exc)[:200]})

    async def _run_until_stopped(self, stop: asyncio.Event) -> str:
        """Run one poll: "done", "stopped" (`stop` came first) or "interrupted" (cancelled)."""
        poll = self._inflight = asyncio.create_task(self.run_once())
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({poll, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            self._inflight = None
        if not poll.done():
            poll.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poll
            return "stopped"
        if poll.cancelled():
            return "interrupted"
        poll.result()
        return "done"
