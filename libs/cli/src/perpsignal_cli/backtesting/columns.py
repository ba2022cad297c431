"""A backtest's signals in constant memory: one JSON line each on disk, a few numbers in RAM.

Why: a judged signal is a pydantic model of ~20 KiB with its factors, SMC summary and verdict
layer; a symbol-year of 1m bars is half a million of them. The run hands each measured
signal to a `SignalWriter` as soon as it is judged: its full row goes to `signals.jsonl`
(the report layout, BACKTEST.md) and a `SignalTable` keeps only what the summary tables and
statistics read (time, price, direction, verdict, score, sizing, factor sub-scores, and per
horizon the outcome's P&L, net P&L, adverse excursion, result and first hit), as compact
`array.array` columns turned into numpy arrays for the report (~150 bytes a signal).
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np
import orjson
from numpy.typing import NDArray

from perpsignal_cli.backtesting.pipeline import SignalRecord
from perpsignal_common.events.signals import FACTOR_NAMES

VERDICTS = ("CONFIRM", "DOWNSIZE", "SKIP", "WAIT")
DIRECTIONS = ("LONG", "SHORT", "NEUTRAL")
RESULTS = ("WIN", "LOSS", "NEUTRAL")
FIRST_HITS = ("stop", "target", "none")
SIGNALS_FILE = "signals.jsonl"

_VERDICT = {v: i for i, v in enumerate(VERDICTS)}
_DIRECTION = {d: i for i, d in enumerate(DIRECTIONS)}
_RESULT = {r: i for i, r in enumerate(RESULTS)}
_FIRST_HIT = {f: i for i, f in enumerate(FIRST_HITS)}
_NAN = math.nan
_SORTED_LINE = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE  # one write per signal


class SignalTable:
    """The per-signal numbers the report's summaries use, as columns (append in time order)."""

    def __init__(self, horizons: Sequence[str]) -> None:
        self.horizons = list(horizons)
        self.t_s = array("d")  # observed_at, epoch seconds
        self.price = array("d")
        self.score = array("d")
        self.direction = array("b")
        self.verdict = array("b")
        self.size = array("d")  # CONFIRM's size: position multiplier x volatility multiplier
        # row-major blocks, one row per signal (few appends per signal: the hot path)
        self.factor_scores = array("d")  # per factor: sub-score, NaN when absent
        self.factor_ok = array("b")  # per factor: status == "ok"
        # outcomes only where measured (most 1m signals are NEUTRAL, never tracked)
        self.outcome_rows = {h: array("q") for h in self.horizons}  # the signal's row
        self.outcome_values = {h: array("d") for h in self.horizons}  # pnl, net, mae
        self.outcome_codes = {h: array("b") for h in self.horizons}  # result, first hit
        self.by_direction_verdict: dict[str, dict[str, int]] = {
            d: dict.fromkeys(VERDICTS, 0) for d in DIRECTIONS
        }
        self.judges: Counter[str] = Counter()
        # where each LONG/SHORT signal's line starts in signals.jsonl (what the page's chart
        # reads back: ~0.2 % of a 1m run's lines), known when a SignalWriter wrote every row
        self.directional_lines = array("q")
        self.lines_known = True
        self._np: dict[str, Any] = {}

    @classmethod
    def from_records(cls, records: Iterable[SignalRecord], horizons: Sequence[str]) -> SignalTable:
        """Return the table of in-memory records (small runs, the broker mode, tests)."""
        table = cls(horizons)
        for rec in records:
            table.append(rec)
        return table

    def __len__(self) -> int:
        return len(self.t_s)

    def append(
        self, rec: SignalRecord, t_s: float | None = None, line_at: int | None = None
    ) -> None:
        """Add one signal's numbers (the record itself is not kept); `t_s`: its
        observed_at in epoch seconds when the caller has it already; `line_at`: where its
        line starts in signals.jsonl, when one was written."""
        j = rec.judged
        layer = j.ai_verdict_layer
        if self._np:
            self._np.clear()
        self.t_s.append(j.observed_at.timestamp() if t_s is None else t_s)
        self.price.append(j.price)
        self.score.append(j.score)
        self.direction.append(_DIRECTION[j.direction])
        self.verdict.append(_VERDICT[layer.verdict])
        vol = layer.volatility_metrics.recommended_position_multiplier or 1.0
        self.size.append(layer.position_multiplier * vol)
        self.by_direction_verdict[j.direction][layer.verdict] += 1
        self.judges[layer.judge] += 1
        if j.direction != "NEUTRAL":
            if line_at is None:
                self.lines_known = False
            else:
                self.directional_lines.append(line_at)
        fs = j.factors
        if tuple([f.name for f in fs]) == FACTOR_NAMES:  # the engine's order: no lookup
            self.factor_scores.extend([f.score for f in fs])
            self.factor_ok.extend([f.status == "ok" for f in fs])
        else:
            seen: dict[str, Any] = {f.name: f for f in fs}
            got = [seen.get(name) for name in FACTOR_NAMES]
            self.factor_scores.extend([_NAN if f is None else f.score for f in got])
            self.factor_ok.extend([f is not None and f.status == "ok" for f in got])
        if not rec.outcomes:
            return
        row = len(self.t_s) - 1
        for h in self.horizons:
            o = rec.outcomes.get(h)
            if o is None:
                continue
            e = o.evaluation
            self.outcome_rows[h].append(row)
            self.outcome_values[h].extend((e.pnl_pct, e.net_pnl_pct, e.max_adverse_pct))
            self.outcome_codes[h].extend((_RESULT[e.result], _FIRST_HIT[e.first_hit]))

    def extend(self, other: SignalTable, line_offset: int = 0) -> None:
        """Append `other`'s rows after this table's (the next part of a split run, whose
        signals.jsonl lines were appended `line_offset` bytes into the joined file)."""
        if other.horizons != self.horizons:
            raise ValueError("tables of different horizons")
        if self._np:
            self._np.clear()
        offset = len(self)
        for name in ("t_s", "price", "score", "direction", "verdict", "size"):
            getattr(self, name).extend(getattr(other, name))
        self.factor_scores.extend(other.factor_scores)
        self.factor_ok.extend(other.factor_ok)
        for h in self.horizons:
            self.outcome_rows[h].extend(r + offset for r in other.outcome_rows[h])
            self.outcome_values[h].extend(other.outcome_values[h])
            self.outcome_codes[h].extend(other.outcome_codes[h])
        for d, counts in other.by_direction_verdict.items():
            for v, n in counts.items():
                self.by_direction_verdict[d][v] += n
        self.judges.update(other.judges)
        self.directional_lines.extend(at + line_offset for at in other.directional_lines)
        self.lines_known = self.lines_known and other.lines_known

    # numpy views, built once per table state (the report reads them many times)
    def col(self, name: str) -> NDArray[Any]:
        """Return a top-level column (`t_s`, `price`, `score`, ...) as a numpy array."""
        key = f"_{name}"
        if key not in self._np:
            self._np[key] = np.asarray(getattr(self, name))
        arr: NDArray[Any] = self._np[key]
        return arr

    def factor(self, name: str) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        """Return (sub-score, ok) of one factor (built per call, not kept: a symbol-year
        of 1m signals makes each 5 MiB, and the report holds one at a time)."""
        k = FACTOR_NAMES.index(name)
        scores = np.asarray(self.factor_scores).reshape(-1, len(FACTOR_NAMES))
        ok = np.asarray(self.factor_ok).reshape(-1, len(FACTOR_NAMES))
        return scores[:, k].copy(), ok[:, k].astype(bool)

    def outcome(self, horizon: str) -> dict[str, NDArray[Any]]:
        """Return one horizon's columns, one value per signal (built per call, not kept):
        measured (bool), pnl, net, mae (NaN when not measured), result, first_hit (-1)."""
        n = len(self)
        rows = np.asarray(self.outcome_rows[horizon], dtype=np.intp)
        values = np.asarray(self.outcome_values[horizon]).reshape(-1, 3)
        codes = np.asarray(self.outcome_codes[horizon]).reshape(-1, 2)
        cols: dict[str, NDArray[Any]] = {"measured": np.zeros(n, dtype=bool)}
        cols["measured"][rows] = True
        for k, name in enumerate(("pnl", "net", "mae")):
            cols[name] = np.full(n, np.nan)
            cols[name][rows] = values[:, k]
        for k, name in enumerate(("result", "first_hit")):
            cols[name] = np.full(n, -1, dtype=np.int8)
            cols[name][rows] = codes[:, k]
        return cols

    def t_ms(self) -> NDArray[np.int64]:
        """Return observed_at in epoch ms, rounded as the outcomes' rows are."""
        ms: NDArray[np.int64] = np.rint(self.col("t_s") * 1000).astype(np.int64)
        return ms


def result_names(codes: NDArray[Any]) -> list[str]:
    """Return the outcome results ("WIN", ...) of result codes."""
    return [RESULTS[c] for c in codes.tolist()]


def signal_row(rec: SignalRecord) -> dict[str, Any]:
    """Return the compact, deterministic record of one signal (a line of signals.jsonl)."""
    j = rec.judged
    layer = j.ai_verdict_layer
    vol = layer.volatility_metrics
    return {
        "signal_id": j.signal_id,
        "observed_at": j.observed_at.isoformat(),
        "direction": j.direction,
        "score": j.score,
        "confidence": j.confidence,
        "price": j.price,
        # the whole verdict layer, as the live product publishes it
        "verdict": layer.verdict,
        "risk_mode": layer.risk_mode,
        "judge": layer.judge,
        "model": layer.model,
        "fallback_reason": layer.fallback_reason,
        "suppressed": layer.suppressed,
        "ai_summary": layer.ai_summary,
        "agreements": list(layer.layer_checks.agreements),
        "conflicts": list(layer.layer_checks.conflicts),
        "position_multiplier": layer.position_multiplier,
        "atr": vol.atr,
        "atr_pct": vol.atr_pct,
        "volatility_class": vol.volatility_class,
        "volatility_multiplier": vol.recommended_position_multiplier,
        "stop_loss_price": vol.stop_loss_price,
        "take_profit_price": vol.take_profit_price,
        "risk_reward": vol.risk_reward,
        "trade_plan_summary": vol.trade_plan_summary,
        "top_factors": list(j.top_factors),
        "factors": {f.name: {"score": f.score, "status": f.status} for f in j.factors},
        "outcomes": {
            h: None
            if o is None
            else {
                "pnl_pct": round(o.evaluation.pnl_pct, 6),
                "net_pnl_pct": round(o.evaluation.net_pnl_pct, 6),
                "cost_pct": round(o.evaluation.cost_pct, 6),
                "funding_pct": round(o.evaluation.funding_pct, 6),
                "result": o.evaluation.result,
                "exit_price": o.evaluation.exit_price,
                "max_favorable_pct": round(o.evaluation.max_favorable_pct, 6),
                "max_adverse_pct": round(o.evaluation.max_adverse_pct, 6),
                "first_hit": o.evaluation.first_hit,
                "path_timeframe": o.path_timeframe,
            }
            for h, o in rec.outcomes.items()
        },
    }


class SignalWriter:
    """The run's record sink: each signal in [lo_ms, hi_ms) becomes a line of signals.jsonl
    and a row of `table`; nothing else is kept. Use as a context manager (closes the file)."""

    def __init__(
        self,
        out: Path,
        table: SignalTable,
        lo_ms: float = -math.inf,
        hi_ms: float = math.inf,
    ) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.path = out / SIGNALS_FILE
        self.table = table
        self.lo_ms = lo_ms
        self.hi_ms = hi_ms
        self._fh: IO[bytes] = self.path.open("wb", buffering=1 << 20)
        self._at = 0  # bytes written so far: where the next line starts

    def __call__(self, rec: SignalRecord) -> None:
        t_s = rec.judged.observed_at.timestamp()
        if not self.lo_ms <= t_s * 1000 < self.hi_ms:
            return
        line = orjson.dumps(signal_row(rec), option=_SORTED_LINE)
        self._fh.write(line)
        self.table.append(rec, t_s, self._at)
        self._at += len(line)

    def close(self) -> None:
        """Flush and close signals.jsonl."""
        self._fh.close()

    def __enter__(self) -> SignalWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def write_signals(records: Iterable[SignalRecord], out: Path, table: SignalTable) -> Path:
    """Write in-memory records as signals.jsonl (and into `table`); return the path."""
    with SignalWriter(out, table) as sink:
        for rec in records:
            sink(rec)
    return sink.path


def read_signals(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the rows of a signals.jsonl (or of the folder holding it), one at a time."""
    if path.is_dir():
        path = path / SIGNALS_FILE
    with path.open("rb") as fh:
        for line in fh:
            if line.strip():
                yield orjson.loads(line)
