"""An alert names the factors without usable data once (the demo's preview listed them twice)."""

from __future__ import annotations

from html import unescape

from perpsignal_notifier.render import render_signal
from tests.producers import real_judged
from tests.unit.notifier.builders import judged


def _text(html: str) -> str:
    return unescape(html)


def test_the_rule_judges_missing_data_is_listed_once() -> None:
    # a real judged signal of the rule judge with factors missing: its conflicts already say
    # "missing/stale data: funding, liquidations, ..." (sorted); the alert added "Missing or
    # stale data: liquidations, funding, ..." (the scorer's order) below
    event = real_judged("WAIT", "NEUTRAL", False)
    assert event.missing_factors
    text = _text(render_signal(event))
    for factor in event.missing_factors:
        assert text.count(factor) == 1, text
    assert "missing/stale data: " in text


def test_a_judge_that_does_not_list_them_gets_the_line_once_sorted() -> None:
    # an LLM judge's conflicts are free text: the alert still names the gaps, each once
    base = judged(conflicts=("funding is crowded",))
    event = base.model_copy(
        update={
            "missing_factors": ("social", "funding"),
            "stale_factors": ("funding", "oi_trend"),
        }
    )
    text = _text(render_signal(event))
    assert "Missing or stale data: funding, oi_trend, social" in text
