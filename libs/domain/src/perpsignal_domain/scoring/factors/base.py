"""What every factor returns, and the shared scaling helpers.

A factor turns a signed *strength* in [-1, 1] into a sub-score `50 + 50 * strength`
(0 = fully bearish, 50 = neutral, 100 = fully bullish). Strengths come from `pull(x, full)`
= x / full clipped to [-1, 1]: the value `full` is where an input counts completely, so
every formula is piecewise linear, bounded and easy to check by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from perpsignal_common.events.signals import Scalar

Status = Literal["ok", "missing", "stale"]


@dataclass(slots=True)
class FactorResult:
    """A factor's sub-score with the raw inputs that produced it."""

    score: float
    status: Status = "ok"
    age_s: float | None = None
    inputs: dict[str, Scalar] = field(default_factory=dict)
    reason: str | None = None
    # the staleness limit this result was judged by, when the input's own cadence set it
    # (None: the config's limit); the composite's freshness divides the age by it
    limit_s: float | None = None


@dataclass(slots=True)
class EvalContext:
    """Inputs shared by all symbols or computed once per evaluation."""

    now: float
    fear_greed: tuple[float, float] | None = None  # (observed at, value)
    smc_bias: float | None = None  # combined structure bias in [-1, 1]
    smc_by_tf: dict[str, int] = field(default_factory=dict)
    # the structure bias with each timeframe's trend faded by the age of its last break
    # (engine.faded_smc_bias): what smart money scores
    smc_faded: float | None = None
    # the median of the last fear & greed readings before the newest (its neutral)
    fear_greed_neutral: float | None = None


def clamp(x: float, lo: float = -1.0, hi: float = 1.0) -> float:
    """Clip `x` to [lo, hi]."""
    return lo if x < lo else hi if x > hi else x


def pull(x: float, full: float) -> float:
    """Return x / full clipped to [-1, 1]: the share of a full-strength reading."""
    if not full:
        return 0.0
    v = x / full
    return -1.0 if v < -1.0 else 1.0 if v > 1.0 else v  # clamp(v), inlined: hot path


def to_score(strength: float) -> float:
    """Map a strength in [-1, 1] to a sub-score in [0, 100]."""
    s = -1.0 if strength < -1.0 else 1.0 if strength > 1.0 else strength  # clamp, inlined
    return 50.0 + 50.0 * s


def blend(parts: list[tuple[float, float]]) -> float:
    """Weighted mean of (weight, strength) pairs; weights of absent parts are left out."""
    # left to right from 0.0: the same additions as sum() (Python 3.11), without generators
    total = acc = 0.0
    for w, s in parts:
        total += w
        acc += w * s
    return acc / total if total else 0.0


# x + _MAGIC - _MAGIC is x rounded to an integer (ties to even) for |x| < 2**51: the sum
# has no bits below the units place (1.5 * 2**52 is in the binade where the ulp is 1)
_MAGIC = 6755399441055744.0
_SCALES = tuple(float(10**k) for k in range(16))  # exact: 10**k < 2**53


def fround(x: float, ndigits: int) -> float:
    """Return round(x, ndigits) bit for bit (0 <= ndigits <= 15), mostly without round()'s
    decimal conversion (dtoa and back, the most expensive step of an evaluation).

    round() is the double nearest to N / 10**ndigits, N the integer nearest to the exact
    x * 10**ndigits (ties to even). y = x * 10**ndigits in floating point is within
    |y| * 2**-53 <= 2**-13 of the exact product for |y| < 1e12, so when y is more than
    2e-4 from a tie its nearest integer n is N, and n / 10**ndigits (an exact integer over
    an exact power of ten, correctly rounded) is that same double; N = 0 keeps the sign of
    x, as round() does. Near a tie, large or not finite: round() itself. The tests compare
    the two on millions of values, ties and near-ties included.
    """
    scale = _SCALES[ndigits]
    y = x * scale
    n = y + _MAGIC - _MAGIC
    d = y - n
    if -0.4998 < d < 0.4998 and -1e12 < y < 1e12:
        return n / scale if n else x * 0.0
    return round(x, ndigits)


def round3(x: float) -> float:
    """Return round(x, 3); a whole number (most ages: event times are whole seconds) is
    returned as it is, which is what round() gives, without its decimal conversion."""
    return x if x % 1.0 == 0.0 else round(x, 3)


_MISSING: dict[str, FactorResult] = {}


def missing(reason: str) -> FactorResult:
    """A neutral result for an input we never received.

    One shared object per reason (results are never mutated): a factor that stays missing
    costs a dict lookup per evaluation.
    """
    r = _MISSING.get(reason)
    if r is None:
        r = FactorResult(50.0, "missing", None, {}, reason)
        if len(_MISSING) < 1024:
            _MISSING[reason] = r
    return r


def stale(age_s: float, limit_s: float, inputs: dict[str, Scalar] | None = None) -> FactorResult:
    """A neutral result for an input older than its staleness limit."""
    reason = f"newest input {age_s:.0f}s old > {limit_s:.0f}s"
    return FactorResult(50.0, "stale", round3(age_s), inputs or {}, reason, limit_s)
