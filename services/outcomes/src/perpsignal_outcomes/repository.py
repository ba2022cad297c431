"""Database access of the outcomes service: idempotent inserts, claims, updates, outbox."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from pydantic import TypeAdapter
from sqlalchemy import delete, func, select, text, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from perpsignal_common.db.engine import client_timeout_s, is_connection_error
from perpsignal_common.db.models.outcomes import (
    OutcomeCandle,
    OutcomeFunding,
    OutcomeMss,
    OutcomeSignal,
    SignalOutcome,
)
from perpsignal_common.db.url import parse_database_url
from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.events.market import CandleClosedV1, FundingRateV1
from perpsignal_common.events.signals import FactorScore, MssScoredV1, SignalJudgedV1
from perpsignal_domain.outcomes.evaluate import (
    MIN_FUNDING_INTERVAL_S,
    Evaluation,
    Series,
    settlement_time,
)

_FACTORS = TypeAdapter(tuple[FactorScore, ...])


# a NUL character in a JSON string: `\u0000` after an even number of backslashes (an odd one
# escapes the backslash before `u0000` instead)
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _jsonb_text(text: str) -> str:
    """Return JSON text PostgreSQL's jsonb accepts: a NUL character in a string (free text such
    as a summary or a factor's reason) becomes U+FFFD. jsonb refuses `\\u0000`, and the whole
    signal with it (it was retried, then dead-lettered: no history, no outcomes)."""
    return _NUL_ESCAPE.sub(r"\1\\ufffd", text) if "\\u0000" in text else text


def _jsonb_value(text: str) -> Any:
    """Return the JSON value of `text` as `_jsonb_text` makes it (no NUL character)."""
    return json.loads(_jsonb_text(text))


def signal_row(event: SignalJudgedV1, *, json_text: bool = False) -> dict[str, Any]:
    """Return the `outcome_signals` row of a judged signal.

    With `json_text`, the JSONB columns are JSON text serialised by pydantic (what the INSERT
    sends) instead of Python objects.
    """
    layer = event.ai_verdict_layer
    vol = layer.volatility_metrics
    if json_text:
        factors: Any = _jsonb_text(_FACTORS.dump_json(event.factors).decode())
        verdict_layer: Any = _jsonb_text(layer.model_dump_json())
    else:
        factors = [f.model_dump(mode="json") for f in event.factors]
        verdict_layer = layer.model_dump(mode="json")
    return {
        "signal_id": event.signal_id,
        "event_id": event.event_id,
        "symbol": event.symbol,
        "timeframe": event.timeframe,
        "direction": event.direction,
        "score": event.score,
        "confidence": event.confidence,
        "price": event.price,
        "observed_at": event.observed_at,
        "verdict": layer.verdict,
        "risk_mode": layer.risk_mode,
        "judge": layer.judge,
        "position_multiplier": layer.position_multiplier,
        "stop_loss_price": vol.stop_loss_price,
        "take_profit_price": vol.take_profit_price,
        "factors": factors,
        "verdict_layer": verdict_layer,
        "venue": event.venue,
    }


def outcome_rows(
    signal: dict[str, Any], horizons: dict[str, int], settle: timedelta
) -> list[dict[str, Any]]:
    """Return one due `signal_outcomes` row per horizon for a stored signal."""
    rows = []
    for horizon, seconds in horizons.items():
        due = signal["observed_at"] + timedelta(seconds=seconds)
        rows.append(
            {
                "signal_id": signal["signal_id"],
                "horizon": horizon,
                "horizon_s": seconds,
                "symbol": signal["symbol"],
                "direction": signal["direction"],
                "verdict": signal["verdict"],
                "risk_mode": signal["risk_mode"],
                "judge": signal["judge"],
                "score": signal["score"],
                "entry_price": signal["price"],
                "stop_loss_price": signal["stop_loss_price"],
                "take_profit_price": signal["take_profit_price"],
                "entry_at": signal["observed_at"],
                "due_at": due,
                "next_attempt_at": due + settle,
                "venue": signal["venue"],
            }
        )
    return rows


_SIGNAL_COLUMNS = {
    "signal_id": "text",
    "event_id": "text",
    "symbol": "text",
    "timeframe": "text",
    "direction": "text",
    "score": "float8",
    "confidence": "float8",
    "price": "float8",
    "observed_at": "timestamptz",
    "verdict": "text",
    "risk_mode": "text",
    "judge": "text",
    "position_multiplier": "float8",
    "stop_loss_price": "float8",
    "take_profit_price": "float8",
    "factors": "jsonb",
    "verdict_layer": "jsonb",
    "venue": "text",
}
# the due rows are derived in the statement from the signal columns above and the horizons,
# exactly as `outcome_rows` does (a test holds the two equal): 3x fewer values to send
_OUTCOME_COLUMNS = [
    "signal_id",
    "horizon",
    "horizon_s",
    "symbol",
    "direction",
    "verdict",
    "risk_mode",
    "judge",
    "score",
    "entry_price",
    "stop_loss_price",
    "take_profit_price",
    "entry_at",
    "due_at",
    "next_attempt_at",
    "venue",
]
_OUTCOME_VALUES = """
    SELECT s.signal_id, h.horizon, h.horizon_s, s.symbol, s.direction, s.verdict, s.risk_mode,
           s.judge, s.score, s.price, s.stop_loss_price, s.take_profit_price, s.observed_at,
           d.due_at, d.due_at + CAST(:settle AS interval), s.venue
    FROM input AS s
    CROSS JOIN unnest(CAST(:h_names AS text[]), CAST(:h_seconds AS int4[])) AS h(horizon, horizon_s)
    CROSS JOIN LATERAL (SELECT s.observed_at + make_interval(secs => h.horizon_s) AS due_at)
         AS d
"""


def _unnest(prefix: str, columns: dict[str, str]) -> str:
    args = ", ".join(f"CAST(:{prefix}{c} AS {t}[])" for c, t in columns.items())
    return f"SELECT * FROM unnest({args}) AS u({', '.join(columns)})"


# One statement (one round trip, atomic on its own): the signals, then every due row. Due rows
# are inserted for every event whose signal id is stored, new or not (a horizon added later
# gets its rows on a redelivery). A new signal id under a stored event id is not stored (event
# ids are unique): its due rows are left out too, or their foreign key failed the whole batch
# with a database error; the conflict query below reports it instead. The foreign key is
# checked at the end of the statement, when the signals are in.
STORE_SIGNALS_SQL = f"""
WITH input AS MATERIALIZED (
    {_unnest("s_", _SIGNAL_COLUMNS)}
), inserted AS (
    INSERT INTO outcome_signals ({", ".join(_SIGNAL_COLUMNS)})
    SELECT * FROM input
    ON CONFLICT DO NOTHING
    RETURNING signal_id
), o AS (
    INSERT INTO signal_outcomes ({", ".join(_OUTCOME_COLUMNS)})
    {_OUTCOME_VALUES}
    WHERE s.signal_id IN (SELECT signal_id FROM inserted)
       OR EXISTS (SELECT 1 FROM outcome_signals AS k WHERE k.signal_id = s.signal_id)
    ON CONFLICT DO NOTHING
)
SELECT count(*) AS new FROM inserted
"""


# The stored signals a batch's events share an id with (signal or event id) but whose columns
# differ: `u.n` is the event's place in the batch (1-based), `differs` the columns that do. Run
# after the insert (autocommit): a signal this batch inserted equals its own input.
_DIFFERS = ", ".join(
    f"CASE WHEN o.{c} IS DISTINCT FROM u.{c} THEN '{c}' END" for c in _SIGNAL_COLUMNS
)
_CONFLICTS_SQL = f"""
SELECT u.n, o.signal_id, o.event_id, array_remove(ARRAY[{_DIFFERS}], NULL) AS differs
FROM unnest({", ".join(f"CAST(:s_{c} AS {t}[])" for c, t in _SIGNAL_COLUMNS.items())})
     WITH ORDINALITY AS u({", ".join(_SIGNAL_COLUMNS)}, n)
JOIN outcome_signals AS o ON o.signal_id = u.signal_id OR o.event_id = u.event_id
"""


def store_signals_params(
    events: Sequence[SignalJudgedV1], horizons: dict[str, int], settle: timedelta
) -> dict[str, Any]:
    """Return the parameters of `STORE_SIGNALS_SQL` for `events` (JSON columns as text)."""
    signals = [signal_row(e, json_text=True) for e in events]
    params: dict[str, Any] = {f"s_{c}": [s[c] for s in signals] for c in _SIGNAL_COLUMNS}
    params["h_names"] = list(horizons)
    params["h_seconds"] = list(horizons.values())
    params["settle"] = settle
    return params


async def store_signals(
    session: AsyncSession,
    events: Sequence[SignalJudgedV1],
    horizons: dict[str, int],
    settle: timedelta,
) -> int:
    """Insert judged signals and their due outcome rows; return how many signals were new.

    ON CONFLICT DO NOTHING on every unique key makes a redelivered event a no-op.
    """
    if not events:
        return 0
    params = store_signals_params(events, horizons, settle)
    return int((await session.execute(text(STORE_SIGNALS_SQL), params)).scalar_one())


def _positional(sql: str) -> tuple[str, list[str]]:
    """Rewrite `:name` binds as asyncpg's `$n`; return the SQL and the names in order."""
    names: list[str] = []

    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in names:
            names.append(m.group(1))
        return f"${names.index(m.group(1)) + 1}"

    return re.sub(r"(?<!:):([a-z_]+)", sub, sql), names


_STORE_PG, _STORE_NAMES = _positional(STORE_SIGNALS_SQL)
_CONFLICTS_PG, _CONFLICT_NAMES = _positional(_CONFLICTS_SQL)


def refused_value(exc: BaseException) -> str | None:
    """Return why PostgreSQL refused a value of a statement (SQLSTATE class 22, a data
    exception: a NUL character, a value too long or out of range), else None.

    Such a statement fails the same way on every attempt; `exc` is asyncpg's error or
    SQLAlchemy's wrapping of it.
    """
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    for cause in (orig, getattr(orig, "__cause__", None)):
        if isinstance(cause, asyncpg.DataError):
            return f"{type(cause).__name__}: {cause}"[:300]
    state = getattr(orig, "sqlstate", None)
    if isinstance(state, str) and state.startswith("22"):
        return f"{type(orig).__name__}: {orig}"[:300]
    return None


def unavailable(exc: BaseException) -> DependencyUnavailable | None:
    """Return the outage `exc` means (the database unreachable, shutting down or restarting:
    the shared `is_connection_error`), or None for any other failure."""
    if is_connection_error(exc):
        return DependencyUnavailable(f"database unavailable: {type(exc).__name__}")
    return None


class SignalWriter:
    """Stores judged signals for concurrent handlers with one statement per batch.

    The consumer loop runs records of different keys concurrently; each handler awaits
    `store(event)`, which returns once the signal and its due rows are committed. Signals that
    arrive while a statement is in flight are written together by the next one (group commit),
    so N concurrent handlers share one round trip instead of a transaction each. When a batch
    fails for a reason other than the database being down, each of its signals is retried on
    its own so only the bad one fails. The statement runs on a small asyncpg pool (autocommit):
    one round trip per batch.

    First wins: a signal whose id is stored already is not written again. When its columns
    differ from the stored ones (a producer reused an id) `store` returns why, for the caller
    to make it visible; an identical redelivery returns None. Only a batch with an event that
    was not new pays the second round trip that compares them.
    """

    def __init__(
        self,
        dsn: str,
        horizons: dict[str, int],
        settle: timedelta,
        *,
        statement_timeout_ms: int = 5_000,
        pool_size: int = 2,
        max_batch: int = 500,
    ) -> None:
        self._dsn = dsn
        self._horizons = horizons
        self._settle = settle
        self._timeout_ms = statement_timeout_ms
        self._pool_size = pool_size
        self._max_batch = max_batch
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._queue: list[tuple[SignalJudgedV1, asyncio.Future[str | None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def close(self) -> None:
        """Close the pool (pending stores have finished: each handler awaited its own)."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def store(self, event: SignalJudgedV1) -> str | None:
        """Return once `event` and its due rows are committed (or raise why they are not).

        Returns None, or why a signal stored before under its signal or event id was kept
        instead (its content differs from `event`'s).
        """
        fut: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._queue.append((event, fut))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        return await fut

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                try:
                    conflicts = await self._write([e for e, _ in batch])
                except DependencyUnavailable as exc:
                    _settle_all(batch, exc)
                except Exception:
                    if len(batch) == 1:
                        raise
                    for one in batch:  # only the bad signal fails
                        try:
                            conflicts = await self._write([one[0]])
                        except Exception as exc:
                            _settle_all([one], exc)
                        else:
                            _settle_all([one], None, conflicts)
                else:
                    _settle_all(batch, None, conflicts)
        except Exception as exc:
            _settle_all(batch, exc)
        finally:
            self._flusher = None
            if self._queue:  # arrived after the loop ended
                self._flusher = asyncio.create_task(self._flush())

    async def _write(self, events: Sequence[SignalJudgedV1]) -> dict[int, str]:
        """Store `events`; return, by place in `events`, why a stored signal was kept."""
        params = store_signals_params(events, self._horizons, self._settle)
        try:
            pool = await self._get_pool()
            async with pool.acquire() as conn:
                new = await conn.fetchval(_STORE_PG, *(params[n] for n in _STORE_NAMES))
                if new == len(events):
                    return {}
                rows = await conn.fetch(_CONFLICTS_PG, *(params[n] for n in _CONFLICT_NAMES))
        except Exception as exc:
            if (down := unavailable(exc)) is not None:
                raise down from exc
            raise
        conflicts: dict[int, str] = {}
        for row in rows:
            if row["differs"]:
                i = row["n"] - 1
                conflicts[i] = _conflict_reason(events[i], row, conflicts.get(i))
        return conflicts

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    target = parse_database_url(self._dsn)
                    self._pool = await asyncpg.create_pool(
                        target.dsn,
                        min_size=1,
                        max_size=self._pool_size,
                        reset=_no_reset,
                        command_timeout=client_timeout_s(self._timeout_ms),
                        **target.asyncpg_kwargs({"statement_timeout": str(self._timeout_ms)}),
                    )
        return self._pool


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Skip the pool's reset query on release (a round trip per store otherwise).

    The writer's connections only ever run one autocommit INSERT at a time: no transaction,
    session setting, advisory lock, cursor or LISTEN is left behind to reset.
    """


def _conflict_reason(event: SignalJudgedV1, stored: Any, before: str | None) -> str:
    """Say which stored signal was kept instead of `event`, and which columns differ."""
    if stored["signal_id"] != event.signal_id:  # they share the event id alone
        reason = (
            f"event id {event.event_id[:100]!r} is stored already, under signal "
            f"{stored['signal_id'][:100]!r}; this signal {event.signal_id[:100]!r} reuses it and "
            "is not stored: a producer reused an event id"
        )
        return reason if before is None else f"{before}; {reason}"
    reason = (
        f"signal {stored['signal_id'][:100]!r} (event {stored['event_id'][:100]!r}) is stored "
        f"with other {', '.join(stored['differs'])} than this signal {event.signal_id[:100]!r} "
        f"(event {event.event_id[:100]!r}): the first one is kept; a producer reused an id"
    )
    return reason if before is None else f"{before}; {reason}"


def _settle_all(
    batch: Sequence[tuple[SignalJudgedV1, asyncio.Future[str | None]]],
    exc: BaseException | None,
    conflicts: dict[int, str] | None = None,
) -> None:
    for i, (_, fut) in enumerate(batch):
        if not fut.done():
            if exc is None:
                fut.set_result(None if conflicts is None else conflicts.get(i))
            else:
                fut.set_exception(exc)


async def store_mss(session: AsyncSession, event: MssScoredV1) -> bool:
    """Insert one MSS result; return False when it was already stored."""
    stmt = (
        insert(OutcomeMss)
        .values(
            event_id=event.event_id,
            coin=event.coin,
            mss=event.mss,
            tier=event.tier,
            observed_at=event.observed_at,
            payload=_jsonb_value(event.model_dump_json()),
        )
        .on_conflict_do_nothing()
        .returning(OutcomeMss.event_id)
    )
    return (await session.execute(stmt)).first() is not None


def candle_row(event: CandleClosedV1) -> dict[str, Any]:
    """Return the `outcome_candles` row of a closed candle from the market stream."""
    return {
        "symbol": event.symbol,
        "timeframe": event.timeframe,
        "open_time": event.open_time,
        "open": event.open,
        "high": event.high,
        "low": event.low,
        "close": event.close,
        "source": "stream",
        "venue": event.venue,
    }


async def store_candles(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert candles; a candle already stored (same symbol, timeframe, open) is kept."""
    if rows:
        await session.execute(insert(OutcomeCandle).on_conflict_do_nothing(), list(rows))


def funding_row(event: FundingRateV1) -> dict[str, Any]:
    """Return the `outcome_funding` row of a settled funding rate from the market stream."""
    return {
        "venue": event.venue,
        "symbol": event.symbol,
        "funding_time": event.observed_at,
        "rate": event.rate,
    }


async def latest_candle_close(
    session: AsyncSession, timeframes: dict[str, timedelta]
) -> datetime | None:
    """Return the close of the newest stream candle stored of `timeframes` (None: none)."""
    rows = await session.execute(
        select(OutcomeCandle.timeframe, func.max(OutcomeCandle.open_time))
        .where(OutcomeCandle.source == "stream", OutcomeCandle.timeframe.in_(list(timeframes)))
        .group_by(OutcomeCandle.timeframe)
    )
    closes = [opened + timeframes[tf] for tf, opened in rows.all() if opened is not None]
    return max(closes, default=None)


async def store_funding(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert settled funding rates; one already stored (venue, symbol, time) is kept."""
    if rows:
        await session.execute(insert(OutcomeFunding).on_conflict_do_nothing(), list(rows))


# settled rates of every (venue, symbol, [start, end]) range in one round trip, oldest first
LOAD_FUNDING_SQL = """
SELECT f.venue, f.symbol, f.funding_time, f.rate
FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[])
     AS r(venue, symbol, start_at, end_at)
JOIN outcome_funding AS f
  ON f.venue = r.venue AND f.symbol = r.symbol
 AND f.funding_time >= r.start_at AND f.funding_time <= r.end_at
ORDER BY f.venue, f.symbol, f.funding_time
"""


async def load_funding(
    conn: asyncpg.Connection, ranges: dict[tuple[str, str], tuple[datetime, datetime]]
) -> dict[tuple[str, str], tuple[list[float], list[float]]]:
    """Return each (venue, symbol)'s settlement (epoch seconds, rate) columns inside its range.

    Per venue: a position pays the funding of the venue it is priced on, never another's.
    Times as `settlement_time` reads them (the whole second: Binance stamps a settlement
    a few ms after its hour). A settlement stored twice, under stamps less than
    MIN_FUNDING_INTERVAL_S apart (the ingestor's 00:00:00.017 and an imported file's
    00:00:00), is read once (its earliest stamp).
    """
    if not ranges:
        return {}
    keys = list(ranges)
    rows = await conn.fetch(
        LOAD_FUNDING_SQL,
        [v for v, _ in keys],
        [s for _, s in keys],
        [ranges[k][0] for k in keys],
        [ranges[k][1] for k in keys],
    )
    out: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    for venue, symbol, at, rate in rows:
        times, rates = out.setdefault((venue, symbol), ([], []))
        at_s = settlement_time(at.timestamp())
        if times and at_s - times[-1] < MIN_FUNDING_INTERVAL_S:
            continue  # one settlement stored twice (sources stamp it apart by ms): paid once
        times.append(at_s)
        rates.append(rate)
    return out


async def driver_connection(session: AsyncSession) -> asyncpg.Connection:
    """Return the asyncpg connection under `session` (checked out from the engine's pool).

    The evaluator runs its statements on it directly, inside its own asyncpg transaction: no
    SQLAlchemy statement is issued on the session, so SQLAlchemy starts no transaction of its
    own and its commit/rollback at the end of the session are no-ops.
    """
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert isinstance(driver, asyncpg.Connection)
    return driver


INSERT_CANDLES_SQL = """
INSERT INTO outcome_candles (symbol, timeframe, open_time, open, high, low, close, source,
                             venue)
SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::float8[], $5::float8[],
                     $6::float8[], $7::float8[], $8::text[], $9::text[])
ON CONFLICT DO NOTHING
"""


async def insert_candles(conn: asyncpg.Connection, rows: Sequence[dict[str, Any]]) -> None:
    """`store_candles` on an asyncpg connection (one statement)."""
    if rows:
        cols = (
            "symbol",
            "timeframe",
            "open_time",
            "open",
            "high",
            "low",
            "close",
            "source",
            "venue",
        )
        await conn.execute(INSERT_CANDLES_SQL, *([r[c] for r in rows] for c in cols))


# the candles of every (symbol, [start, end)) range of a batch in one round trip, per symbol,
# venue and timeframe in open-time order (distinct per the primary key)
LOAD_SERIES_SQL = """
SELECT c.symbol, c.venue, c.timeframe, c.open_time, c.high, c.low, c.close, c.source
FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS r(symbol, start_at, end_at)
JOIN outcome_candles AS c
  ON c.symbol = r.symbol AND c.timeframe = ANY($4::text[])
 AND c.open_time >= r.start_at AND c.open_time < r.end_at
ORDER BY c.symbol, c.venue, c.timeframe, c.open_time
"""


@dataclass(frozen=True, slots=True)
class StoredSeries:
    """One (symbol, venue, timeframe)'s stored candles, and where each came from.

    `sources[i]` is candle i's `source` ('stream', or the klines fallback's name): a path
    reports the true origin of its prices.
    """

    series: Series
    sources: list[str]

    def source_of(self, lo: int, hi: int) -> str:
        """Return the source of the candles `lo .. hi - 1`: one name, or names joined by '+'."""
        window = self.sources[lo:hi]
        if window.count(window[0]) == len(window):
            return window[0]  # the usual case (a C-level count, no set per row)
        return "+".join(sorted(set(window)))


async def load_series(
    conn: asyncpg.Connection,
    ranges: dict[str, tuple[datetime, datetime]],
    timeframes: Sequence[str],
) -> dict[tuple[str, str, str], StoredSeries]:
    """Return the stored candles opening in [start, end) of each symbol, per (symbol, venue,
    timeframe): a path never mixes venues.

    `ranges` maps a symbol to its (start, end); a (symbol, venue, timeframe) without candles is
    absent. Venue '' holds the candles stored before outcomes_0006 (venue unknown).
    """
    if not ranges:
        return {}
    symbols = list(ranges)
    rows = await conn.fetch(
        LOAD_SERIES_SQL,
        symbols,
        [ranges[s][0] for s in symbols],
        [ranges[s][1] for s in symbols],
        list(timeframes),
    )
    out: dict[tuple[str, str, str], StoredSeries] = {}
    stored: StoredSeries | None = None
    key: tuple[str, str, str] | None = None
    for symbol, venue, tf, open_time, high, low, close, source in rows:
        if (symbol, venue, tf) != key:
            key = (symbol, venue, tf)
            stored = out[key] = StoredSeries(Series([], [], [], []), [])
        assert stored is not None
        series = stored.series
        series.times.append(open_time)
        series.highs.append(high)
        series.lows.append(low)
        series.closes.append(close)
        stored.sources.append(source)
    return out


@dataclass(frozen=True, slots=True)
class DueRow:
    """A claimed due evaluation (locked until the claiming transaction ends)."""

    id: int
    signal_id: str
    horizon: str
    symbol: str
    direction: str
    verdict: str
    entry_price: float
    stop_loss_price: float | None
    take_profit_price: float | None
    entry_at: datetime
    due_at: datetime
    attempts: int
    created_at: datetime
    venue: str | None  # the signal's price venue (None: unknown)


# the columns of DueRow, in order; the partial index ix_signal_outcomes_due serves the scan
CLAIM_DUE_SQL = f"""
SELECT {", ".join(DueRow.__slots__)}
FROM signal_outcomes
WHERE status = 'pending' AND next_attempt_at <= $1 AND (retry_at IS NULL OR retry_at <= $3)
ORDER BY next_attempt_at
LIMIT $2
FOR UPDATE SKIP LOCKED
"""


async def claim_due(
    conn: asyncpg.Connection, now: datetime, limit: int, wall: datetime | None = None
) -> list[DueRow]:
    """Lock up to `limit` due pending rows that no other transaction holds (SKIP LOCKED).

    Due by `now` (the evaluator's clock, market time under OUTCOMES_CLOCK=event); a deferred
    row also waits until its `retry_at` has passed `wall` (this machine's clock; default
    `now`). Run inside a transaction on `conn`: the locks last until it ends.
    """
    rows = await conn.fetch(CLAIM_DUE_SQL, now, limit, now if wall is None else wall)
    return [DueRow(*r) for r in rows]


RECLAIM_SQL = f"""
SELECT {", ".join(DueRow.__slots__)}
FROM signal_outcomes
WHERE id = ANY($1::bigint[]) AND status = 'pending'
ORDER BY id
FOR UPDATE
"""

RECLAIM_LOCK_TIMEOUT = "5s"
"""How long `reclaim` waits for a leased row another transaction holds (see there)."""


async def reclaim(conn: asyncpg.Connection, ids: Sequence[int]) -> list[DueRow]:
    """Lock again the rows `ids` leased by `lease` that are still pending, whatever their
    `retry_at`, waiting (up to RECLAIM_LOCK_TIMEOUT, then asyncpg's LockNotAvailableError)
    for one another transaction holds.

    It waits rather than skip because a peer's claim may hold a leased row for the moment of
    its transaction without taking it: PostgreSQL locks a row updated under a `FOR UPDATE`
    scan before re-checking it against the claim's `WHERE`, and keeps that lock when the
    lease fails the check. A skipped row would wait out its whole lease and cost a second
    fetch. A row another replica completed meanwhile (its lease expired during a slow fetch)
    is no longer pending once its lock is free and is left alone: a row is only ever
    evaluated under its row lock, and `complete` only writes a pending row, so it is
    measured once. Rows are locked in id order and the transaction holds no other lock
    (insert the fetched candles before, in their own transaction), so two reclaims cannot
    deadlock.
    """
    await conn.execute(f"SET LOCAL lock_timeout = '{RECLAIM_LOCK_TIMEOUT}'")
    rows = await conn.fetch(RECLAIM_SQL, list(ids))
    return [DueRow(*r) for r in rows]


COMPLETE_SQL = """
UPDATE signal_outcomes AS t SET
    status = 'completed', exit_price = v.exit_price, pnl_pct = v.pnl_pct, result = v.result,
    max_favorable_pct = v.mfe, max_adverse_pct = v.mae, first_hit = v.first_hit,
    candles_used = v.candles_used, price_source = v.price_source, reason = NULL,
    cost_pct = v.cost_pct, funding_pct = v.funding_pct, net_pnl_pct = v.net_pnl_pct,
    funding_settlements = v.settlements, venue = coalesce(t.venue, v.venue),
    evaluated_at = $1, evaluated_by = $2, attempts = t.attempts + 1,
    evaluation_count = t.evaluation_count + 1
FROM unnest($3::bigint[], $4::float8[], $5::float8[], $6::text[], $7::float8[], $8::float8[],
            $9::text[], $10::int4[], $11::text[], $12::float8[], $13::float8[], $14::float8[],
            $15::int4[], $16::text[])
     AS v(id, exit_price, pnl_pct, result, mfe, mae, first_hit, candles_used, price_source,
          cost_pct, funding_pct, net_pnl_pct, settlements, venue)
WHERE t.id = v.id AND t.status = 'pending'
"""

DEFER_SQL = """
UPDATE signal_outcomes AS t SET
    status = $1, reason = v.reason, retry_at = v.next_at, attempts = t.attempts + $5
FROM unnest($2::bigint[], $3::text[], $4::timestamptz[]) AS v(id, reason, next_at)
WHERE t.id = v.id AND t.status = 'pending'
"""


@dataclass(frozen=True, slots=True)
class Done:
    """A finished evaluation of a claimed row; `settlements` None: funding unknown.

    `venue`: whose candles priced it (None: unknown), recorded on a row of unknown venue so
    its funding is later looked up at that venue too.
    """

    id: int
    evaluation: Evaluation
    source: str
    settlements: int | None
    venue: str | None = None

    @property
    def funding_pct(self) -> float | None:
        """Funding paid (negative: received), or None when unknown."""
        return None if self.settlements is None else self.evaluation.funding_pct

    @property
    def net_pnl_pct(self) -> float | None:
        """Net P&L, or None when the funding is unknown (never charged as 0)."""
        return None if self.settlements is None else self.evaluation.net_pnl_pct


async def complete(
    conn: asyncpg.Connection,
    results: Sequence[Done],
    now: datetime,
    worker: str,
) -> None:
    """Write finished evaluations of claimed rows.

    One UPDATE for the whole batch (the rollup triggers then run once per batch too).
    """
    if not results:
        return
    results = sorted(results, key=lambda r: r.id)  # heap and index pages in order
    evs = [r.evaluation for r in results]
    await conn.execute(
        COMPLETE_SQL,
        now,
        worker,
        [r.id for r in results],
        [ev.exit_price for ev in evs],
        [ev.pnl_pct for ev in evs],
        [ev.result for ev in evs],
        [ev.max_favorable_pct for ev in evs],
        [ev.max_adverse_pct for ev in evs],
        [ev.first_hit for ev in evs],
        [ev.candles_used for ev in evs],
        [r.source for r in results],
        [ev.cost_pct for ev in evs],
        [r.funding_pct for r in results],
        [r.net_pnl_pct for r in results],
        [r.settlements for r in results],
        [r.venue for r in results],
    )


@dataclass(frozen=True, slots=True)
class FundingDue:
    """A completed row whose funding is still unknown (locked until the transaction ends)."""

    id: int
    symbol: str
    direction: str
    entry_at: datetime
    due_at: datetime
    pnl_pct: float
    cost_pct: float
    venue: str | None  # whose candles priced it, so whose funding it pays (None: unknown)


CLAIM_FUNDING_UNKNOWN_SQL = f"""
SELECT {", ".join(FundingDue.__slots__)}
FROM signal_outcomes
WHERE status = 'completed' AND cost_pct IS NOT NULL AND funding_pct IS NULL
  AND due_at >= $1 AND due_at <= $2 AND (due_at, id) > ($4, $5)
ORDER BY due_at, id
LIMIT $3
FOR UPDATE SKIP LOCKED
"""

SET_FUNDING_SQL = """
UPDATE signal_outcomes AS t SET
    funding_pct = v.funding_pct, net_pnl_pct = t.pnl_pct - t.cost_pct - v.funding_pct,
    funding_settlements = v.settlements
FROM unnest($1::bigint[], $2::float8[], $3::int4[]) AS v(id, funding_pct, settlements)
WHERE t.id = v.id AND t.funding_pct IS NULL
"""


async def claim_funding_unknown(
    conn: asyncpg.Connection,
    since: datetime,
    until: datetime,
    limit: int,
    after: tuple[datetime, int] | None = None,
) -> list[FundingDue]:
    """Lock completed rows due in [since, until] whose funding is unknown (SKIP LOCKED).

    Oldest first, after the (due_at, id) `after` of the previous page: rows that stay unknown
    must not hide the rows behind them.
    """
    after_due, after_id = after or (since, -1)
    rows = await conn.fetch(CLAIM_FUNDING_UNKNOWN_SQL, since, until, limit, after_due, after_id)
    return [FundingDue(*r) for r in rows]


async def set_funding(conn: asyncpg.Connection, rows: Sequence[tuple[int, float, int]]) -> None:
    """Record the funding (id, funding %, settlements) now known; net follows from it."""
    if rows:
        await conn.execute(
            SET_FUNDING_SQL,
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
        )


async def defer(
    conn: asyncpg.Connection,
    deferred: Sequence[tuple[int, str, datetime]],
    *,
    status: str = "pending",
    attempt: bool = True,
) -> None:
    """Leave claimed rows pending with a reason until `retry_at`, wall time (or mark them failed).

    The retry time is wall time whatever the evaluator's clock: prices arrive on this
    machine's clock, and market time stands still once a replayed stream ends. Without
    `attempt` the row is only leased (its klines are being fetched outside the transaction):
    no other replica claims it before `retry_at`, and its attempt is counted when the result
    or the deferral is written.
    """
    if not deferred:
        return
    await conn.execute(
        DEFER_SQL,
        status,
        [i for i, _, _ in deferred],
        [r for _, r, _ in deferred],
        [n for _, _, n in deferred],
        1 if attempt else 0,
    )


@dataclass(frozen=True, slots=True)
class Unpublished:
    """A completed evaluation waiting in the outbox."""

    id: int
    signal_id: str
    signal_event_id: str
    symbol: str
    horizon: str
    direction: str
    verdict: str
    entry_price: float
    exit_price: float
    pnl_pct: float
    result: str
    max_favorable_pct: float
    max_adverse_pct: float
    first_hit: str
    due_at: datetime


async def claim_unpublished(session: AsyncSession, limit: int) -> list[Unpublished]:
    """Lock completed rows whose event is not yet acknowledged by Kafka (the outbox)."""
    o, s = SignalOutcome, OutcomeSignal
    stmt = (
        select(
            o.id,
            o.signal_id,
            s.event_id.label("signal_event_id"),
            o.symbol,
            o.horizon,
            o.direction,
            o.verdict,
            o.entry_price,
            o.exit_price,
            o.pnl_pct,
            o.result,
            o.max_favorable_pct,
            o.max_adverse_pct,
            o.first_hit,
            o.due_at,
        )
        .join(s, s.signal_id == o.signal_id)
        .where(o.status == "completed", o.published_at.is_(None))
        .order_by(o.evaluated_at)
        .limit(limit)
        .with_for_update(of=o, skip_locked=True)
    )
    return [Unpublished(**r._asdict()) for r in (await session.execute(stmt)).all()]


async def mark_published(session: AsyncSession, ids: Sequence[int], now: datetime) -> None:
    """Record that the outcome events of `ids` were acknowledged."""
    if ids:
        await session.execute(
            update(SignalOutcome).where(SignalOutcome.id.in_(list(ids))).values(published_at=now)
        )


async def prune_funding(session: AsyncSession, before: datetime, lookback: timedelta) -> int:
    """Delete settlements before `before` and before every pending row's entry - `lookback`."""
    oldest_pending = await session.scalar(
        select(func.min(SignalOutcome.entry_at)).where(SignalOutcome.status == "pending")
    )
    if oldest_pending is not None:
        before = min(before, oldest_pending - lookback)
    result = await session.execute(
        delete(OutcomeFunding).where(OutcomeFunding.funding_time < before)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def prune_candles(session: AsyncSession, before: datetime) -> int:
    """Delete candles that opened before `before` and before every pending row's entry.

    A backlog (or a replay of old signals) keeps the candles its paths still need.
    """
    oldest_pending = await session.scalar(
        select(func.min(SignalOutcome.entry_at)).where(SignalOutcome.status == "pending")
    )
    if oldest_pending is not None:
        before = min(before, oldest_pending)
    result = await session.execute(delete(OutcomeCandle).where(OutcomeCandle.open_time < before))
    return int(getattr(result, "rowcount", 0) or 0)
