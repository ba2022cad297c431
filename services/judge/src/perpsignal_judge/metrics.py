"""Judge metrics (Prometheus): LLM latency and tokens, fallbacks by reason, verdict counts.

Labels are bounded: verdicts, judges and fallback reasons are closed sets.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

LLM_LATENCY = Histogram(
    "perpsignal_judge_llm_latency_seconds",
    "Latency of LLM verdict calls (cache hits excluded), by outcome",
    ["outcome"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 12, 15, 20, 30),
)
LLM_TOKENS = Counter(
    "perpsignal_judge_llm_tokens_total", "Tokens used by LLM verdict calls", ["kind"]
)
LLM_CACHE = Counter(
    "perpsignal_judge_llm_cache_total", "LLM verdict cache lookups, by result", ["result"]
)
FALLBACKS = Counter(
    "perpsignal_judge_fallbacks_total",
    "Rule verdicts used instead of the LLM, by reason",
    ["reason"],
)
VERDICTS = Counter(
    "perpsignal_judge_verdicts_total", "Judged signals by verdict and judge", ["verdict", "judge"]
)
