"""Upstream text is data: the judge's LLM words, symbols and names reach Telegram inert.

The hostile verdict is answered by a local OpenAI-compatible server and goes through the
judge's real LLM path (its parsing, cleaning and consistency checks), so the test sees what
the judge really publishes; oversized values go through the event contract (JSON validation,
as the notifier's consumer decodes them). The fake Bot API parses the HTML as Telegram does and
reports the links Telegram would make by itself in the text (URLs, @mentions, /commands).
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot

from perpsignal_common.events.signals import MssScoredV1, SignalJudgedV1
from perpsignal_connectors.coingecko.parsing import parse_coins_markets
from perpsignal_connectors.coingecko.schemas import COINS_MARKETS
from perpsignal_domain.scoring.mss import MssConfig, MssScanner
from perpsignal_judge.judge import Judge
from perpsignal_judge.settings import JudgeSettings
from perpsignal_notifier.delivery import Alert, Deliverer
from perpsignal_notifier.ratelimit import TelegramLimits
from perpsignal_notifier.render import (
    TELEGRAM_MAX_CHARS,
    WORD_JOINER,
    esc,
    fit,
    render_listing,
    render_mss,
    render_signal,
    utf16_len,
    visible_len,
)
from perpsignal_notifier.repository import NotifierRepository
from perpsignal_notifier.telegram import BotSender
from tests.fakes.telegram import FakeTelegram, check_html, find_auto_entities, parse_html
from tests.unit.judge.builders import load_candles, signal
from tests.unit.judge.fake_openai import FakeOpenAI, completion, serve, verdict_json
from tests.unit.notifier.builders import judged, listing, mss
from tests.unit.notifier.conftest import VirtualClock

BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200b\u200c\u200d\u200e\u200f\ufeff"
HOSTILE_SUMMARY = (
    'Take it. <a href="https://evil.example/x">claim</a> <b>now</b> & join t.me/pumpgroup '
    "or tg://resolve?domain=pumpbot, ask @admin_support, type /mute "
    "\u202eTROHS\u202c \u2067sell\u2069 z\u200bw\u200dj\ufeff mail me at a@b.co"
)
HOSTILE_ITEMS = ("<i>momentum</i> see https://evil.example", "*bold* _it_ [x](http://e.vil.io)")
WJ_OR_BIDI = dict.fromkeys(map(ord, BIDI + WORD_JOINER))


@pytest.fixture
def openai() -> Iterator[FakeOpenAI]:
    yield from serve()


async def llm_judged(openai: FakeOpenAI, shared_data: Path, **answer: Any) -> SignalJudgedV1:
    """Judge a LONG XRPUSDT signal with the LLM answering `answer` (the real judge path)."""
    openai.responder = lambda _: completion(
        verdict_json(verdict="CONFIRM", risk_mode="NORMAL", position_multiplier=1.0, **answer)
    )
    judge = Judge(
        JudgeSettings(
            enable_ai_judge=True,
            openai_api_key="sk-test",
            openai_base_url=openai.base_url,
            ai_judge_timeout=5.0,
            judge_llm_max_retries=0,
        )
    )
    try:
        scored = signal(
            factors=dict.fromkeys(("momentum", "smart_money", "oi_trend", "liquidations"), 70.0),
            confidence=65,
            candles=load_candles(shared_data),
        )
        event = await judge.judge(scored)
    finally:
        await judge.close()
    assert event.ai_verdict_layer.judge == "llm", event.ai_verdict_layer.fallback_reason
    # what the notifier's consumer decodes from Kafka
    return SignalJudgedV1.model_validate_json(event.model_dump_json())


def read(html: str) -> str:
    """Return what a Telegram user reads, after checking Telegram accepts the HTML as is."""
    assert check_html(html) is None, check_html(html)
    visible, spared = parse_html(html)
    assert find_auto_entities(visible, spared) == [], find_auto_entities(visible, spared)
    assert not set(visible) & set(BIDI)
    return visible


async def test_hostile_llm_summary_renders_as_literal_text_without_links(
    openai: FakeOpenAI, shared_data: Path
) -> None:
    event = await llm_judged(
        openai,
        shared_data,
        summary=HOSTILE_SUMMARY,
        agreements=list(HOSTILE_ITEMS),
        conflicts=["@everyone /unsubscribe"],
    )
    layer = event.ai_verdict_layer
    # the judge lets tags, links and mentions through; it strips bidi and invisible marks
    # (0f723e6), but a record of an older judge (or any producer) on the topic may hold them
    assert "<a href" in layer.ai_summary and "\u2067" not in layer.ai_summary
    layer = layer.model_copy(update={"ai_summary": HOSTILE_SUMMARY})
    event = event.model_copy(update={"ai_verdict_layer": layer})
    html = render_signal(event)
    assert "<a" not in html and "<b>now" not in html  # only the notifier's own tags
    text = read(html)  # valid HTML, no auto-link, no bidi or invisible control
    lines = text.splitlines()
    assert lines[0] == "🟢 LONG XRPUSDT · 1h"  # the summary cannot reverse or restyle it
    shown = text.translate(WJ_OR_BIDI)
    expected = layer.ai_summary.translate(WJ_OR_BIDI)
    assert expected in shown  # the words are all there, as text
    assert '<a href="https://evil.example/x">claim</a> <b>now</b> & join t.me/pumpgroup' in shown
    for item in (*HOSTILE_ITEMS, "@everyone /unsubscribe"):
        assert f"• {item}" in shown
    # the defusing characters are invisible and few: the text reads the same
    assert text.count(WORD_JOINER) <= 20


@pytest.mark.db
async def test_hostile_alert_is_accepted_by_telegram_without_link_preview(
    openai: FakeOpenAI,
    shared_data: Path,
    repo: NotifierRepository,
    bot: Bot,
    fake_telegram: FakeTelegram,
    clock: VirtualClock,
) -> None:
    event = await llm_judged(openai, shared_data, summary=HOSTILE_SUMMARY)
    limits = TelegramLimits(
        global_per_s=30, group_per_min=20, private_per_s=1, clock=clock, sleep=clock.sleep
    )
    deliverer = Deliverer(repo=repo, send=BotSender(bot), limits=limits, sleep=clock.sleep)
    alert = Alert(event.event_id, "signal", event.symbol, render_signal(event))
    results = await deliverer.deliver(alert, [-1001, 42])
    assert [r.outcome.value for r in results] == ["sent", "sent"]
    assert fake_telegram.rejected == []
    for message in fake_telegram.messages:
        assert message.parse_mode == "HTML"
        assert message.link_preview_options == {"is_disabled": True}
        assert message.auto_entities == []  # Telegram makes no link, mention or command
        assert "t.me/pumpgroup" in message.visible_text.replace(WORD_JOINER, "")


@pytest.mark.parametrize(
    "symbol", ["币安人生USDT", "1000PEPE.USDT", "BTC-USD:PERP/2", "$WIF+", "A_B"]
)
def test_symbols_the_contract_allows_render_as_they_are(symbol: str) -> None:
    event = SignalJudgedV1.model_validate_json(judged(symbol).model_dump_json())
    text = read(render_signal(event))
    assert text.splitlines()[0].replace(WORD_JOINER, "") == f"🟢 LONG {symbol} · 1h"


def test_huge_upstream_fields_still_make_one_message_telegram_accepts() -> None:
    # the contract bounds none of these but the timeframe, an id (256 characters): a
    # producer other than today's judge may send them
    base = judged(summary="&<>" * 4000, agreements=("x" * 10_000,) * 50, conflicts=("c",) * 50)
    data = base.model_dump(mode="json")
    data["timeframe"] = "1h" * 128
    data["top_factors"] = ["momentum" * 1000, "funding" + "_x" * 5000]
    data["missing_factors"] = ["social" * 100] * 200
    data["ai_verdict_layer"]["volatility_metrics"]["trade_plan_summary"] = "🎯" * 5000
    event = SignalJudgedV1.model_validate(data)
    html = render_signal(event)
    text = read(html)
    assert utf16_len(text) <= TELEGRAM_MAX_CHARS
    assert text.startswith("🟢 LONG BTCUSDT · ")
    assert "&<>&<>" in text  # escaped, cut before escaping: no broken entity
    assert text.splitlines()[-1] == "2026-11-20 12:00 UTC"


def test_huge_mss_and_listing_names_still_make_one_message() -> None:
    coin = "PEPE" * 64  # an id: at most 256 characters
    event = mss().model_copy(update={"coin": coin, "name": "🐸" * 5000, "tier": "S" * 9000})
    event = type(event).model_validate_json(event.model_dump_json())
    text = read(render_mss(event))
    assert utf16_len(text) <= TELEGRAM_MAX_CHARS
    assert text.startswith("🚀 MSS PEPEPEPE")
    new = listing().model_copy(update={"venue": "v" * 256, "base_asset": "<b>" * 85})
    new = type(new).model_validate_json(new.model_dump_json())
    text = read(render_listing(new))
    assert utf16_len(text) <= TELEGRAM_MAX_CHARS
    assert "Pair: <b><b>" in text
    odd = listing().model_copy(update={"base_asset": "$"})  # "$/USDT" must not be /USDT
    assert f"Pair: $/{WORD_JOINER}USDT" in read(render_listing(odd))


@pytest.mark.parametrize("limit", [1, 2, 3, 10, 699, 700])
def test_cut_counts_utf16_units_and_never_splits_an_entity(limit: int) -> None:
    for raw in ("😀" * 2000, "a😀" * 2000, "&" * 2000, "<😀>" * 1000):
        html = esc(raw, limit)
        assert check_html(html) is None
        shown = parse_html(html)[0]
        assert utf16_len(shown) <= limit
        assert shown.endswith("…")


def test_cut_keeps_text_of_exactly_the_limit_and_cuts_one_unit_more() -> None:
    assert esc("😀" * 350, 700) == "😀" * 350  # 700 UTF-16 units: kept whole
    cut = esc("a" + "😀" * 350, 700)  # 701 units: one emoji makes way for the "…"
    assert cut == "a" + "😀" * 349 + "…" and utf16_len(cut) == 700
    cut = esc("ab" + "😀" * 350, 700)  # an emoji is never halved: one unit stays unused
    assert cut == "ab" + "😀" * 348 + "…" and utf16_len(cut) == 699
    assert esc("&" * 700, 700) == "&amp;" * 700  # the limit is on the text, not the HTML


def test_fit_keeps_a_message_of_exactly_4096_units_and_cuts_one_more_at_a_line() -> None:
    emoji_line = "😀" * 1000  # 2,000 UTF-16 units, 1,000 code points
    head = "<b>" + "&amp;" * 40 + "</b>"  # 40 visible units, 203 characters of HTML
    last = "<i>" + "z" * 53 + "</i>"
    exact = [head, emoji_line, emoji_line]  # 40 + 1 + 2000 + 1 + 2000 + 1 + 53 = 4096
    assert visible_len("\n".join([*exact, last])) == 4096
    assert fit(exact, last) == "\n".join([*exact, last])
    over = [head, emoji_line, emoji_line + "😀"]
    html = fit(over, last)
    text = read(html)
    assert utf16_len(text) <= TELEGRAM_MAX_CHARS
    assert text.splitlines()[0] == "&" * 40
    assert text.splitlines()[-1] == "z" * 53  # the last line (the time) is always kept
    assert "cut: too long" in text


def test_only_invisible_characters_go_emoji_and_private_use_stay() -> None:
    # U+1FAE8 (Unicode 15) may be unassigned in Python's tables: it must still be shown
    assert esc("\U0001fae8 new, 1\ufe0f\u20e3 keycap, \ue000 private") == (
        "\U0001fae8 new, 1\ufe0f\u20e3 keycap, \ue000 private"
    )
    assert esc("a\u202eb\u2066c\u200bd\ufeffe\u00adf\x00g\u2028h") == "abcdefg h"


def longest_mark_run(text: str) -> int:
    """Return the longest run of combining marks (what stacks on one letter on screen)."""
    longest = run = 0
    for ch in text:
        run = run + 1 if unicodedata.category(ch) in ("Mn", "Me") else 0
        longest = max(longest, run)
    return longest


ZALGO = "".join(ch + "\u0300\u0316\u0334\u0361\u0489" * 6 for ch in "Bitcoin")


def test_a_zalgo_coin_name_from_coingecko_cannot_draw_over_the_mss_alert(
    shared_data: Path,
) -> None:
    """A CoinGecko coin name reaches the MSS alert as the vendor wrote it (the connector and
    the scanner keep it; only the judge's texts were capped): 30 accents on each letter
    drew over the lines above and below it in every Telegram client."""
    rows = json.loads((shared_data / "api/coingecko/coins_markets.json").read_text())
    (profile,) = parse_coins_markets(COINS_MARKETS.validate_python([{**rows[0], "name": ZALGO}]))
    scanner = MssScanner(MssConfig(threshold=0.0))
    scanner.observe(profile)
    (event,) = scanner.scan(profile.observed_at.timestamp())
    event = MssScoredV1.model_validate_json(event.model_dump_json())  # as the consumer reads it
    assert event.name == ZALGO  # nothing upstream cleans it
    text = read(render_mss(event))
    assert longest_mark_run(text) <= 4
    unmarked = "".join(ch for ch in text.splitlines()[0] if not longest_mark_run(ch))
    assert unmarked == f"🚀 MSS BTC (Bitcoin) · tier {event.tier}"
    # a name of thousands of marks is cut, and says so
    html = render_mss(event.model_copy(update={"name": "B" + "\u0301" * 5000 + "itcoin"}))
    first = read(html).splitlines()[0]
    assert first == f"🚀 MSS BTC (B{chr(0x301) * 4}…) · tier {event.tier}"
    # accents of real scripts stay: decomposed Vietnamese stacks two, Hindi a sign and a nasal
    vietnamese = unicodedata.normalize("NFD", "Nguyễn Việt")
    assert longest_mark_run(vietnamese) == 2
    assert esc(vietnamese) == vietnamese and esc("हिंदी") == "हिंदी"
