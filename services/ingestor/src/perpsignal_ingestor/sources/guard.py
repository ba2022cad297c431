"""Run many vendor requests of one poll so that one bad answer spoils only itself."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable, Sequence

from pydantic import ValidationError

from perpsignal_common.errors import DependencyUnavailable, PerpSignalError
from perpsignal_common.events.base import Event
from perpsignal_connectors.circuit import CircuitOpen
from perpsignal_connectors.errors import error_kind
from perpsignal_connectors.redact import redact
from perpsignal_ingestor.metrics import SOURCE_ERRORS
from perpsignal_ingestor.publisher import UNREPRESENTABLE, refuse, refuse_unrepresentable

log = logging.getLogger(__name__)

# (source, request) -> error of the requests failing now: a failure is logged when it starts
# (and again when it heals), not on every poll; a whole source down is the scheduler's line
_failing: dict[tuple[str, str], str] = {}


class AllRequestsFailed(Exception):
    """Every request of a poll failed: the loop backs off instead of spinning."""


async def gather_guarded(
    source: str, jobs: Iterable[tuple[str, Awaitable[Sequence[Event]]]], concurrency: int = 16
) -> list[Event]:
    """Run `(what, coroutine)` jobs with bounded concurrency; drop (and log) failed ones.

    A failed request publishes nothing; the others still do. When every request failed the
    poll raises, so the scheduler logs once and backs off. A response whose values break the
    event contract is refused (counted, one log line), not a failure.
    """
    sem = asyncio.Semaphore(concurrency)
    errors: list[BaseException] = []

    failed: list[tuple[str, BaseException]] = []

    async def one(what: str, coro: Awaitable[Sequence[Event]]) -> Sequence[Event]:
        async with sem:
            try:
                got = await coro
            except DependencyUnavailable:
                raise
            except ValidationError as exc:  # a value breaks the event contract: refused
                refuse(source, exc, what)
                return ()
            except (PerpSignalError, TimeoutError, ConnectionError) as exc:
                errors.append(exc)
                SOURCE_ERRORS.labels(source, error_kind(exc)).inc()
                if not isinstance(exc, CircuitOpen):
                    failed.append((what, exc))
                return ()
            except UNREPRESENTABLE as exc:  # a time beyond year 9999...: refused too
                # (after the clause above: TimeoutError and ConnectionError are OSErrors)
                refuse_unrepresentable(source, exc, what)
                return ()
            if _failing.pop((source, what), None) is not None:
                log.info("vendor request works again", extra={"source": source, "request": what})
            return got

    jobs = list(jobs)
    results = await asyncio.gather(*(one(w, c) for w, c in jobs))
    everything_failed = bool(jobs) and len(errors) == len(jobs)
    for what, exc in failed:
        new = (source, what) not in _failing
        _failing[(source, what)] = str(exc)
        extra = {"source": source, "request": what, "error": redact(str(exc))}
        if new and not everything_failed:
            log.warning("vendor request failed; nothing published from it", extra=extra)
        else:  # already said, or the whole source is down (the scheduler says that once)
            log.debug("vendor request failed; nothing published from it", extra=extra)
    if everything_failed:
        # name a real failure, not the open circuit it caused
        first = next((e for e in errors if not isinstance(e, CircuitOpen)), errors[0])
        raise AllRequestsFailed(f"all {len(jobs)} requests failed; first: {first}")
    return [e for batch in results for e in batch]
