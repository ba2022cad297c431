"""Per-symbol state: candles per timeframe, incremental indicators, latest inputs with times.

Pure (no Kafka, no I/O). Times are epoch seconds (floats) on the hot path; the events'
`observed_at` is the clock, never the wall clock, so replays and backtests are deterministic.
Every input keeps its observation time so a factor can tell "missing" from "stale".

Indicators are updated once per closed bar (O(1)), not recomputed over a window. They are
written here rather than taken from talipp because talipp's per-value objects cost more
than the whole evaluation budget; the tests check them against TA-Lib's RSI and EMA.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import Any, Generic, TypeVar

from mypy_extensions import mypyc_attr

from perpsignal_common.errors import PoisonMessage
from perpsignal_common.events.market import TIMEFRAME_SECONDS


@dataclass(slots=True)
class Bar:
    """A closed candle; times are epoch seconds."""

    open_s: float
    close_s: float
    open: float
    high: float
    low: float
    close: float
    volume: float
    # the signal's copy of this bar, built once and reused by the next 29 signals
    ohlc: object | None = None


class Ema:
    """Exponential moving average seeded with the SMA of the first `period` values (TA-Lib)."""

    __slots__ = ("_alpha", "_n", "_seed", "period", "value")

    def __init__(self, period: int) -> None:
        self.period = period
        self._alpha = 2.0 / (period + 1)
        self._n = 0
        self._seed = 0.0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        """Add one value; return the EMA once `period` values were seen."""
        if self.value is None:
            self._n += 1
            self._seed += x
            if self._n == self.period:
                self.value = self._seed / self.period
            return self.value
        self.value += self._alpha * (x - self.value)
        return self.value


class WilderRsi:
    """RSI with Wilder smoothing, seeded with the simple mean of the first `period` changes."""

    __slots__ = ("_avg_gain", "_avg_loss", "_n", "_prev", "period", "value")

    def __init__(self, period: int = 14) -> None:
        self.period = period
        self._prev: float | None = None
        self._n = 0
        self._avg_gain = 0.0
        self._avg_loss = 0.0
        self.value: float | None = None

    def update(self, close: float) -> float | None:
        """Add one close; return the RSI once `period` changes were seen."""
        prev, self._prev = self._prev, close
        if prev is None:
            return None
        change = close - prev
        gain = change if change > 0 else 0.0
        loss = -change if change < 0 else 0.0
        p = self.period
        if self._n < p:
            self._n += 1
            self._avg_gain += gain / p
            self._avg_loss += loss / p
            if self._n < p:
                return None
        else:
            self._avg_gain = (self._avg_gain * (p - 1) + gain) / p
            self._avg_loss = (self._avg_loss * (p - 1) + loss) / p
        total = self._avg_gain + self._avg_loss
        self.value = 50.0 if total == 0 else 100.0 * self._avg_gain / total
        return self.value


# the running state of the indicators (what `update` changes), for the engine's undo
_EMA_STATE = ("_n", "_seed", "value")
_RSI_STATE = ("_avg_gain", "_avg_loss", "_n", "_prev", "value")
_get_ema, _get_rsi = attrgetter(*_EMA_STATE), attrgetter(*_RSI_STATE)
IndicatorMark = tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]


def indicator_mark(st: SymbolState) -> IndicatorMark:
    """The RSI's and both EMAs' running state (three tuples: no object copies)."""
    return (_get_rsi(st.rsi), _get_ema(st.ema_fast), _get_ema(st.ema_slow))


def restore_indicators(st: SymbolState, mark: IndicatorMark) -> None:
    """Return the indicators to `indicator_mark(st)`."""
    for obj, names, values in (
        (st.rsi, _RSI_STATE, mark[0]),
        (st.ema_fast, _EMA_STATE, mark[1]),
        (st.ema_slow, _EMA_STATE, mark[2]),
    ):
        for name, value in zip(names, values, strict=True):
            setattr(obj, name, value)


BucketMark = tuple["Bar | None", float, float, float, float]


class Aggregator:
    """Builds higher-timeframe candles from primary candles (when the venue sends none).

    A bucket closes when its last sub-candle closes; a gap closes it with what it has, so a
    missing sub-candle gives a shorter candle, never an invented one.
    """

    __slots__ = ("_bar", "tf_s")

    def __init__(self, tf_s: int) -> None:
        self.tf_s = tf_s
        self._bar: Bar | None = None

    def mark(self, open_s: float, close_s: float) -> tuple[BucketMark, bool]:
        """Return the open bucket with its running values (`update` changes the bar in
        place), and whether `update` of a bar [open_s, close_s) would complete a bar."""
        cur = self._bar
        start = open_s - open_s % self.tf_s
        completes = close_s >= start + self.tf_s or (cur is not None and cur.open_s != start)
        if cur is None:
            return (None, 0.0, 0.0, 0.0, 0.0), completes
        return (cur, cur.high, cur.low, cur.close, cur.volume), completes

    def restore(self, mark: BucketMark) -> None:
        """Return to `mark()`'s state."""
        cur, high, low, close, volume = mark
        if cur is not None:
            cur.high, cur.low, cur.close, cur.volume = high, low, close, volume
        self._bar = cur

    def update(self, bar: Bar) -> tuple[Bar, ...]:
        """Feed one primary bar; return the higher bars it completed (0, 1 or 2)."""
        cur = self._bar
        done = None
        # inside the open bucket [open_s, close_s) (bucket bounds are exact multiples of
        # tf_s): no need to work out the bucket of the bar (a float modulo)
        if cur is None or not cur.open_s <= bar.open_s < cur.close_s:
            start = bar.open_s - bar.open_s % self.tf_s
            if cur is not None and cur.open_s != start:
                done, cur = cur, None
            if cur is None:
                cur = Bar(start, start + self.tf_s, bar.open, bar.high, bar.low, bar.close, 0.0)
        if bar.high > cur.high:  # max(cur.high, bar.high)
            cur.high = bar.high
        if bar.low < cur.low:  # min(cur.low, bar.low)
            cur.low = bar.low
        cur.close = bar.close
        cur.volume += bar.volume
        if bar.close_s >= cur.close_s:
            self._bar = None
            return (cur,) if done is None else (done, cur)
        self._bar = cur
        return () if done is None else (done,)


@dataclass(slots=True)
class Point:
    """One observed value and when it was observed."""

    t: float
    value: float


@dataclass(slots=True)
class FundingClock:
    """A symbol's funding settlement interval, learnt from its rates when they do not say it.

    Binance's premium index gives the rate per the symbol's own interval (8 h, 4 h or 1 h)
    without naming it; its `nextFundingTime` steps by the interval at each settlement, and
    settled rates are that far apart. Gaps that are not a whole number of hours from 1 to 8
    (a missed settlement, a vendor's bar interval) teach nothing.
    """

    interval_h: float | None = None
    next_at: float | None = None  # the newest poll's `next_funding_at`
    settled_at: float | None = None  # the newest settled rate's time
    assumed: bool = False  # rates were kept per 8 h for want of an interval

    def observe(self, settled: bool, t: float, next_at: float | None) -> None:
        """Learn from one rate: settled at `t`, or predicted with its next settlement."""
        if settled:
            gap, self.settled_at = _gap(self.settled_at, t)
        elif next_at is not None:
            # the newest poll's, not the largest seen: one naming a settlement days ahead
            # (the contract takes 30) would stop the learning until that time
            gap, self.next_at = _gap(self.next_at, next_at)[0], next_at
        else:
            return
        if gap is not None:
            self.interval_h = gap


def _gap(before: float | None, t: float) -> tuple[float | None, float | None]:
    """Return the whole hours (1-8) from `before` to a later `t`, and the newer time."""
    if before is None or t <= before:
        return None, t if before is None else before
    hours = round((t - before) / 3600.0)
    exact = 1 <= hours <= 8 and abs(t - before - hours * 3600.0) < 60.0
    return (float(hours) if exact else None), t


FUNDING_HISTORY = 1024  # funding points a symbol keeps (the batch replays the same deque)
FUNDING_MIN_GAP_S = 60.0  # a newer rate this close to the one before the last replaces it

# vendors whose liquidation buckets sum every exchange (Coinglass aggregated history)
AGGREGATE_VENUES = frozenset({"coinglass"})
# A relayed copy of an order counts only when the venue's own stream delivered nothing for
# the symbol this close to it: the copy carries the venue's trade time, and a busy symbol's
# own-stream orders are minutes apart at most while that stream is up
RELAY_MATCH_S = 300.0


# venue/source feeds (orders and buckets) a symbol's ledger keeps: each report may name its
# own venue (Coinglass relays the exchange's name), and every feed is memory and a question
# per bucket; the real ones are a few dozen (Coinglass lists ~30 exchanges, two sources)
MAX_LIQUIDATION_FEEDS = 256
K = TypeVar("K", bound=Hashable)

# order and bucket identities a symbol's ledger remembers to count each once: redeliveries
# (a rewind after a rebalance, a relay repeating itself) come soon after the original
LIQUIDATION_IDS_KEPT = 16_384


class RecentKeys(Generic[K]):
    """The last `size` distinct keys seen, the oldest forgotten first, at O(1) per key.

    Not a dict evicted with `next(iter(d))`: CPython keeps a deleted entry's slot until the
    dict's next resize and iteration walks over those slots from the front, so once full
    each eviction rescanned the ones evicted before it (a flood of unique ids cost ~18x
    more per key than filling did).
    """

    __slots__ = ("_order", "_seen", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._seen: set[K] = set()
        self._order: deque[K] = deque()

    def first(self, key: K) -> bool:
        """Remember `key`; return False when it is remembered already."""
        if key in self._seen:
            return False
        self._seen.add(key)
        self._order.append(key)
        if len(self._order) > self.size:
            self._seen.discard(self._order.popleft())
        return True

    def __contains__(self, key: object) -> bool:
        return key in self._seen

    def __len__(self) -> int:
        return len(self._order)


class LiquidationLedger:
    """A symbol's liquidations as received, per venue and source, each order and bucket once.

    Several sources describe the same liquidations: a venue's own order stream (source =
    venue), the same orders relayed by Coinglass (source `coinglass`, venue = exchange), the
    ingestor's windows built from those orders and Coinglass's all-exchange totals (venue
    `coinglass`). Which copies count is decided when read (`totals`), so the answer does not
    depend on which copy arrived first:

    * one source of truth per venue: its own stream's orders; a relayed order counts only
      where that stream delivered nothing within `RELAY_MATCH_S`;
    * a bucket counts only where no order of its venue falls in its window, and a relayed
      bucket only where the venue's own bucket does not overlap it; an all-exchange total
      only where no single venue's order or bucket does: they stand in for missing
      orders, never add to them.
    """

    __slots__ = ("_feeds", "_ids", "buckets", "orders")

    def __init__(self) -> None:
        self._feeds = 0  # order and bucket feeds held (at most MAX_LIQUIDATION_FEEDS)
        # venue -> source -> time-ordered (time, long usd, short usd)
        self.orders: dict[str, dict[str, deque[tuple[float, float, float]]]] = {}
        # venue -> source -> end-ordered (end, start, long usd, short usd)
        self.buckets: dict[str, dict[str, BucketFeed]] = {}
        self._ids: RecentKeys[Hashable] = RecentKeys(LIQUIDATION_IDS_KEPT)

    def _room(self, venue: str, source: str) -> None:
        """Refuse a new feed beyond `MAX_LIQUIDATION_FEEDS` (before anything is recorded)."""
        if self._feeds >= MAX_LIQUIDATION_FEEDS:
            raise PoisonMessage(
                f"liquidations from venue {venue[:64]!r} via {source[:64]!r} would be the "
                f"symbol's feed {self._feeds + 1}: at most {MAX_LIQUIDATION_FEEDS} "
                "venue/source feeds are kept per symbol (not counted)"
            )

    def _first(self, key: Hashable) -> bool:
        return self._ids.first(key)

    def add_order(
        self, key: Hashable, venue: str, source: str, t: float, long_usd: float, short_usd: float
    ) -> bool:
        """Record one order; return False when an order with this identity was recorded."""
        sources = self.orders.get(venue)
        feed = None if sources is None else sources.get(source)
        if feed is None:
            self._room(venue, source)
        if not self._first(key):
            return False
        if feed is None:
            feed = self.orders.setdefault(venue, {})[source] = deque(maxlen=4096)
            self._feeds += 1
        _insert(feed, (t, long_usd, short_usd))
        return True

    def add_bucket(
        self,
        key: Hashable,
        venue: str,
        source: str,
        start: float,
        end: float,
        long_usd: float,
        short_usd: float,
    ) -> bool:
        """Record one window's sums; return False when this window was recorded."""
        sources = self.buckets.get(venue)
        feed = None if sources is None else sources.get(source)
        if feed is None:
            self._room(venue, source)
        if not self._first(key):
            return False
        if feed is None:
            feed = self.buckets.setdefault(venue, {})[source] = BucketFeed()
            self._feeds += 1
        _insert(feed, (end, start, long_usd, short_usd))
        feed.starts_min = None
        return True

    def totals(self, start: float, end: float) -> tuple[float, float]:
        """Return (long usd, short usd) liquidated in (start, end], each liquidation once."""
        long_usd = short_usd = 0.0
        for venue, sources in self.orders.items():
            own = sources.get(venue)
            for source, feed in sources.items():
                relayed = own if source != venue else None
                for t, lo, sh in _between(feed, start, end):
                    if relayed and _any_between(relayed, t - RELAY_MATCH_S, t + RELAY_MATCH_S):
                        continue
                    long_usd += lo
                    short_usd += sh
        covered = None
        for venue, bucket_sources in self.buckets.items():
            own_buckets = bucket_sources.get(venue)
            for source, buckets in bucket_sources.items():
                relayed_b = own_buckets if source != venue else None
                for b_end, b_start, lo, sh in _between(buckets, start, end):
                    if covered is None:
                        covered = _Coverage(self)
                    if covered(venue, b_start, b_end) or (
                        relayed_b and _overlaps(relayed_b, b_start, b_end)
                    ):
                        continue
                    long_usd += lo
                    short_usd += sh
        return long_usd, short_usd


class _Coverage:
    """For the buckets of one `LiquidationLedger.totals` call: was an order of the
    bucket's venue recorded in [start, end]; for an all-exchange total, an order or a
    bucket of any single venue?

    Asked feed by feed (one bisection each: the usual case is a few feeds and buckets)
    until that has cost as many feed visits as those feeds hold items; from then on, from
    the feeds merged once (order times sorted; buckets by end with the suffix minimum of
    their starts). A flood of venues or sources (each report may name its own) thus costs
    O(n log n) per call, not a visit of every feed for every bucket.
    """

    __slots__ = ("_buckets", "_feeds", "_ledger", "_merged", "_visits")

    def __init__(self, ledger: LiquidationLedger) -> None:
        self._ledger = ledger
        # scope (a venue's orders; None: every venue's orders; "": single-venue buckets)
        self._feeds: dict[str | None, list[Any]] = {}
        # scope -> [feed visits so far, items the feeds hold]
        self._visits: dict[str | None, list[int]] = {}
        self._merged: dict[str | None, list[float]] = {}
        self._buckets: tuple[list[float], list[float]] | None = None

    def __call__(self, venue: str, start: float, end: float) -> bool:
        if venue not in AGGREGATE_VENUES:
            return self._order_in(venue, start, end)
        return self._order_in(None, start, end) or self._bucket_over(start, end)

    def _scope(self, scope: str | None) -> list[Any]:
        feeds = self._feeds.get(scope)
        if feeds is None:
            orders, buckets = self._ledger.orders, self._ledger.buckets
            if scope is None:
                feeds = [f for sources in orders.values() for f in sources.values()]
            elif scope == "":
                feeds = [
                    f
                    for v, sources in buckets.items()
                    if v not in AGGREGATE_VENUES
                    for f in sources.values()
                ]
            else:
                feeds = list(orders.get(scope, {}).values())
            self._feeds[scope] = feeds
            self._visits[scope] = [0, sum(map(len, feeds))]
        return feeds

    def _cheap(self, scope: str | None, feeds: list[Any]) -> bool:
        """Return True while asking feed by feed has cost less than merging them would."""
        count = self._visits[scope]
        if count[0] > count[1]:
            return False
        count[0] += len(feeds)  # at most: `any` stops at the first feed that answers
        return True

    def _order_in(self, scope: str | None, start: float, end: float) -> bool:
        feeds = self._scope(scope)
        if self._cheap(scope, feeds):
            return any(_any_between(feed, start, end) for feed in feeds)
        times = self._merged.get(scope)
        if times is None:
            times = self._merged[scope] = sorted(o[0] for feed in feeds for o in feed)
        i = bisect_left(times, start)
        return i < len(times) and times[i] <= end

    def _bucket_over(self, start: float, end: float) -> bool:
        feeds = self._scope("")
        if self._cheap("", feeds):
            return any(_overlaps(feed, start, end) for feed in feeds)
        if self._buckets is None:
            merged: list[tuple[float, float]] = sorted((b[0], b[1]) for feed in feeds for b in feed)
            mins: list[float] = []
            low = math.inf
            for _, b_start in reversed(merged):
                if b_start < low:
                    low = b_start
                mins.append(low)
            mins.reverse()
            self._buckets = ([b[0] for b in merged], mins)
        ends, mins = self._buckets
        i = bisect_right(ends, start)
        return i < len(ends) and mins[i] < end


def _insert(feed: deque[Any], item: tuple[float, ...]) -> None:
    """Append a time-keyed item, or insert it in time order when it arrived late."""
    if not feed or item[0] >= feed[-1][0]:
        feed.append(item)
        return
    if len(feed) == feed.maxlen:
        feed.popleft()  # a full deque refuses insert(): drop the oldest as append would
    insort(feed, item)


def _between(feed: deque[Any], start: float, end: float) -> list[Any]:
    """Return the items of a time-ordered feed keyed in (start, end]."""
    lo = bisect_right(feed, start, key=_FIRST)
    hi = bisect_right(feed, end, key=_FIRST)
    return [feed[i] for i in range(lo, hi)]


def _any_between(feed: deque[Any], start: float, end: float) -> bool:
    """Return True when a time-ordered feed has an item keyed in [start, end]."""
    i = bisect_left(feed, start, key=_FIRST)
    return i < len(feed) and feed[i][0] <= end


@mypyc_attr(native_class=False)  # a compiled subclass of deque crashes (mypyc, _native.py)
class BucketFeed(deque[tuple[float, float, float, float]]):
    """One source's buckets of a venue, end-ordered (end, start, long usd, short usd), with
    the suffix minima of their starts (`_overlaps`), dropped by every change and rebuilt
    when next needed."""

    __slots__ = ("starts_min",)

    def __init__(self) -> None:
        super().__init__(maxlen=1024)
        self.starts_min: list[float] | None = None


def _overlaps(buckets: BucketFeed, start: float, end: float) -> bool:
    """Return True when a bucket (end, start, ...) of an end-ordered feed overlaps
    (start, end): one ending after `start` starts before `end`.

    O(log n): buckets are ordered by end, not start, so a later-ending (longer) bucket may
    start earlier than the first one ending after `start`; scanning them all was O(n) per
    question and O(n^2) per window under a flood of buckets. The first candidate answers
    the usual case (contiguous windows); else the minimum start from it on does.
    """
    i = bisect_right(buckets, start, key=_FIRST)
    if i == len(buckets):
        return False
    if buckets[i][1] < end:
        return True
    mins = buckets.starts_min
    if mins is None:
        mins = buckets.starts_min = _suffix_min_starts(buckets)
    return mins[i] < end


def _suffix_min_starts(buckets: BucketFeed) -> list[float]:
    """Return, per position, the smallest start of the buckets from there to the newest."""
    mins: list[float] = []
    low = math.inf
    for bucket in reversed(buckets):
        if bucket[1] < low:
            low = bucket[1]
        mins.append(low)
    mins.reverse()
    return mins


TailMark = tuple[Any, tuple[Any, ...]]


def tail_mark(dq: deque[Any] | None) -> TailMark:
    """What `undo_tail` needs to take back appends: the last item, and when the deque is
    full the first two (each append pushes one out; a candle appends at most two bars to
    a series: a higher bar closed by a gap and the current one)."""
    if not dq:
        return (None, ())
    return (dq[-1], (dq[0], dq[1]) if len(dq) == dq.maxlen and len(dq) > 1 else ())


def undo_tail(dq: deque[Any], mark: TailMark) -> None:
    """Remove what was appended to `dq` since `tail_mark(dq)` (at most 2 appends)."""
    last, heads = mark
    popped = 0
    while dq and dq[-1] is not last:
        dq.pop()
        popped += 1
    for item in reversed(heads[: min(popped, len(heads))]):
        dq.appendleft(item)


@dataclass
class SymbolState:
    """Everything the factors read for one symbol."""

    symbol: str
    primary_s: int
    history: int = 300
    candles: dict[str, deque[Bar]] = field(default_factory=dict)
    native_tfs: set[str] = field(default_factory=set)
    rsi: WilderRsi = field(default_factory=WilderRsi)
    ema_fast: Ema = field(default_factory=lambda: Ema(20))
    ema_slow: Ema = field(default_factory=lambda: Ema(50))
    funding: deque[Point] = field(default_factory=lambda: deque(maxlen=FUNDING_HISTORY))
    funding_clock: FundingClock = field(default_factory=FundingClock)
    open_interest: deque[Point] = field(default_factory=lambda: deque(maxlen=2048))
    long_short: dict[str, deque[Point]] = field(default_factory=dict)
    liquidations: LiquidationLedger = field(default_factory=LiquidationLedger)
    liquidations_seen_at: float | None = None
    social: dict[str, float | None] = field(default_factory=dict)
    social_at: float | None = None
    # the history of each level-type social metric (sentiment, galaxy_score), for its rank
    social_history: dict[str, deque[Point]] = field(default_factory=dict)
    # taker flow imbalances (buy - sell) / (buy + sell), for momentum's flow part
    taker_flow: deque[Point] = field(default_factory=lambda: deque(maxlen=512))
    # the venue each of funding, open_interest and the long/short kinds is taken from
    input_venues: dict[str, str] = field(default_factory=dict)
    last_event_s: float = 0.0
    # per-factor memo of the last sub-score and the inputs it was computed from: a factor
    # whose inputs are the same objects as last time reuses it (only its age is recomputed)
    memo: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def bars(self, tf: str) -> deque[Bar]:
        """Return the bars of `tf` (created empty on first use)."""
        dq = self.candles.get(tf)
        if dq is None:
            dq = self.candles[tf] = deque(maxlen=self.history)
        return dq

    def add_bar(self, tf: str, bar: Bar) -> bool:
        """Append a closed bar; return False for a duplicate or out-of-order bar."""
        dq = self.candles.get(tf)
        if dq is None:
            dq = self.bars(tf)
        elif dq and bar.open_s <= dq[-1].open_s:
            return False
        dq.append(bar)
        if TIMEFRAME_SECONDS.get(tf) == self.primary_s:
            self.rsi.update(bar.close)
            self.ema_fast.update(bar.close)
            self.ema_slow.update(bar.close)
        return True

    def take_inputs(self, other: SymbolState) -> None:
        """Take over `other`'s inputs except candles (a new venue now drives the symbol)."""
        self.funding, self.open_interest = other.funding, other.open_interest
        self.funding_clock = other.funding_clock
        self.long_short, self.liquidations = other.long_short, other.liquidations
        self.liquidations_seen_at = other.liquidations_seen_at
        self.social, self.social_at = other.social, other.social_at
        self.social_history = other.social_history
        self.taker_flow = other.taker_flow
        self.input_venues = other.input_venues
        self.last_event_s = other.last_event_s

    def input_from(self, kind: str, venue: str, preferred: str | None) -> bool:
        """Return True when `venue`'s values of input `kind` (`funding`, `open_interest`,
        `taker_flow` or a long/short kind) are used.

        One venue per input, never a mix: venues count differently (Binance's open interest
        is in contracts, Coinglass's all-exchange total in USD). The first venue to send
        takes the input; the `preferred` venue (the price series') takes it over, and the
        input's history restarts with its values.
        """
        owner = self.input_venues.get(kind)
        if owner == venue:
            return True
        if owner is not None and venue != preferred:
            return False
        self.input_venues[kind] = venue
        if owner is not None:
            if kind == "funding":
                self.funding = deque(maxlen=self.funding.maxlen)
                self.funding_clock = FundingClock()
            elif kind == "open_interest":
                self.open_interest = deque(maxlen=self.open_interest.maxlen)
            elif kind == "taker_flow":
                self.taker_flow = deque(maxlen=self.taker_flow.maxlen)
            else:
                self.long_short.pop(kind, None)
        return True

    def checkpoint(self) -> Callable[[], None]:
        """Return an undo of everything a candle can change here: the bar series, the
        indicators and the native timeframes. (Point series are not covered: their handlers
        append once, after every check. The factor memo needs no undo: an entry is only
        reused for the very inputs it was computed from.)"""
        marks = {tf: tail_mark(dq) for tf, dq in self.candles.items()}
        indicators = indicator_mark(self)
        native = set(self.native_tfs)

        def undo() -> None:
            for tf in [tf for tf in self.candles if tf not in marks]:
                del self.candles[tf]
            for tf, mark in marks.items():
                undo_tail(self.candles[tf], mark)
            restore_indicators(self, indicators)
            self.native_tfs = native

        return undo

    def ls(self, kind: str) -> deque[Point]:
        """Return the long-share history of one long/short kind."""
        dq = self.long_short.get(kind)
        if dq is None:
            dq = self.long_short[kind] = deque(maxlen=512)
        return dq


_T = attrgetter("t")
_FIRST = itemgetter(0)
_CLOSE = attrgetter("close_s")


def _before_last(items: deque[Any], t: float, key: Callable[[Any], float]) -> Any:
    """Return the newest item whose `key` is at or before `t`, when the last one is after
    `t`: a binary search, so a lookback of hours over a source that updates every minute
    costs log(n), not n."""
    i = bisect_right(items, t, key=key)
    return items[i - 1] if i else None


def value_at_or_before(points: deque[Point], t: float) -> Point | None:
    """Return the newest point observed at or before `t` (points are time-ordered).

    O(1) for the newest point (the usual answer: evaluations run at the newest event's
    time), else a binary search; the newest-point test is written here rather than in a
    shared helper because factors call this several times per evaluation.
    """
    if not points:
        return None
    last = points[-1]
    if last.t <= t:
        return last
    point: Point | None = _before_last(points, t, _T)
    return point


def bar_at_or_before(bars: deque[Bar], t: float) -> Bar | None:
    """Return the newest bar closed at or before `t` (bars are time-ordered; O(1) for the
    newest bar, else O(log n))."""
    if not bars:
        return None
    last = bars[-1]
    if last.close_s <= t:
        return last
    bar: Bar | None = _before_last(bars, t, _CLOSE)
    return bar


def append_point(points: deque[Point], t: float, value: float, min_gap_s: float = 0.0) -> bool:
    """Append a time-ordered point; an older observation is ignored.

    A point closer than `min_gap_s` to the one before the last replaces the last, so a
    source that updates every few seconds still leaves hours of history in a bounded deque.
    """
    if points:
        if t < points[-1].t:
            return False
        if t == points[-1].t or (len(points) >= 2 and t - points[-2].t < min_gap_s):
            points[-1] = Point(t, value)
            return True
    points.append(Point(t, value))
    return True


DAY_S = 86_400.0


def day_over_day_pct(series: deque[Point], t: float) -> float | None:
    """Return the % change of the newest of `series` (a 24 h social volume) against its
    reading a day before `t` (LunarCrush gives the volume, never its change), or None
    without a reading 1-2 days old, with a zero one, or with one so small that the change
    overflows (1e30 against 5e-324: no change can be read from it)."""
    earlier = value_at_or_before(series, t - DAY_S)
    if not series or earlier is None or t - earlier.t > 2 * DAY_S or earlier.value <= 0.0:
        return None
    change = (series[-1].value / earlier.value - 1.0) * 100.0
    return round(change, 4) if change < math.inf else None
