"""The real clients against the local fake vendors with injected faults.

Each fault must get its documented reaction and never crash the caller: 429 waits for
Retry-After then retries, 418 opens the circuit until the ban ends, 5xx and timeouts are
retried with backoff, truncated JSON / HTML / wrong types are MalformedResponse (not
retried, nothing returned), other 4xx are permanent.
"""

from __future__ import annotations

import logging
import random
import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Literal

import httpx
import pytest

from perpsignal_common.errors import PermanentError, RateLimited, VenueBanned
from perpsignal_common.retry import RetryPolicy
from perpsignal_connectors.binance_usdm import constants as bc
from perpsignal_connectors.binance_usdm.http import BinanceUsdmHttp
from perpsignal_connectors.circuit import CircuitOpen, CircuitState
from perpsignal_connectors.coingecko.http import CoinGeckoHttp
from perpsignal_connectors.coinglass.http import CoinglassHttp
from perpsignal_connectors.errors import MalformedResponse
from perpsignal_connectors.okx.http import OkxHttp
from perpsignal_connectors.ratelimit import RateLimiter
from tests.fakes.vendors import FakeVendors, Fault, bomb, compress
from tests.unit.connectors.clock import FakeClock

KLINES = "/fapi/v1/klines"


def binance(
    fake: FakeVendors, clock: FakeClock, *, budget: int = 2400, timeout_s: float = 2.0
) -> BinanceUsdmHttp:
    fake.clock = clock.time
    return BinanceUsdmHttp(
        fake.url("binance"),
        limiter=RateLimiter(bc.quotas(budget), clock=clock.time, sleep=clock.sleep),
        retry=RetryPolicy(
            max_attempts=3, base_delay_s=0.5, sleep=clock.sleep, rng=random.Random(1)
        ),
        timeout=httpx.Timeout(timeout_s),
        clock=clock.time,
    )


async def test_429_waits_retry_after_then_succeeds(fake: FakeVendors) -> None:
    clock = FakeClock()
    client = binance(fake, clock)
    fake.inject("binance", KLINES, Fault("status", status=429, retry_after=7))
    rows = await client.fetch_klines("BTCUSDT", "5m", limit=2)
    assert rows  # the retry got the real body
    assert fake.requests[("binance", KLINES)] == 2
    assert sum(clock.slept) >= 7  # waited at least what the vendor asked
    await client.aclose()


@pytest.mark.parametrize("retry_after", [0, -1])
async def test_a_429_saying_retry_now_still_backs_off(fake: FakeVendors, retry_after) -> None:
    """`Retry-After: 0` or `-1` (a proxy's garbage) in a 429 storm: every retry, and every
    other request of the poll, went out again at once, which Binance answers with an IP ban
    (418: "failing to back off after receiving 429s"). A 429 pauses the vendor 1 s at least."""
    clock = FakeClock()
    client = binance(fake, clock)
    fake.inject("binance", KLINES, Fault("status", status=429, retry_after=retry_after, times=None))
    with pytest.raises(RateLimited):
        await client.fetch_klines("BTCUSDT", "5m", limit=2)
    assert fake.requests[("binance", KLINES)] == 3
    assert clock.t - FakeClock().t >= 2  # at least 1 s before each of the two retries
    await client.aclose()


async def test_a_429_with_an_http_date_waits_until_then(fake: FakeVendors) -> None:
    """`Retry-After` may be an HTTP-date (RFC 9110; what a proxy or a CDN in front of a vendor
    sends): it was read as no value, so the vendor was asked again after a 1 s pause, and
    again, as if the 429 said nothing."""
    from email.utils import format_datetime

    clock = FakeClock()
    client = binance(fake, clock)
    when = datetime.now(UTC) + timedelta(seconds=30)
    fake.inject(
        "binance",
        KLINES,
        Fault("status", status=429, retry_after=format_datetime(when, usegmt=True)),
    )
    assert await client.fetch_klines("BTCUSDT", "5m", limit=2)
    assert fake.requests[("binance", KLINES)] == 2
    assert sum(clock.slept) >= 25  # about 30 s, less the time the test took to get there
    await client.aclose()


async def test_418_opens_the_circuit_until_the_ban_expires(fake: FakeVendors) -> None:
    clock = FakeClock()
    client = binance(fake, clock)
    fake.inject("binance", KLINES, Fault("status", status=418, retry_after=120))
    with pytest.raises(VenueBanned):
        await client.fetch_klines("BTCUSDT", "5m", limit=2)
    assert fake.requests[("binance", KLINES)] == 1  # a ban is never retried
    assert client.http.breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpen) as refused:
        await client.fetch_klines("ETHUSDT", "5m", limit=2)
    assert fake.requests[("binance", KLINES)] == 1  # no call while banned
    # the refusal names what opened the circuit (what a status line must show), not only itself
    assert "HTTP 418" in str(refused.value)
    clock.t += 121
    assert await client.fetch_klines("ETHUSDT", "5m", limit=2)
    assert client.http.breaker.state is CircuitState.CLOSED
    await client.aclose()


async def test_a_ban_whose_retry_after_is_no_number_lasts_the_default(fake: FakeVendors) -> None:
    """A 418 with `Retry-After: inf` (a proxy's garbage) bans for the default 120 s, not
    forever."""
    clock = FakeClock()
    client = binance(fake, clock)
    fake.inject("binance", KLINES, Fault("status", status=418, retry_after=float("inf")))
    with pytest.raises(VenueBanned):
        await client.fetch_klines("BTCUSDT", "5m", limit=2)
    assert client.http.breaker.state is CircuitState.OPEN
    clock.t += 121
    assert await client.fetch_klines("ETHUSDT", "5m", limit=2)
    assert client.http.breaker.state is CircuitState.CLOSED
    await client.aclose()


async def test_an_absurd_ban_ends_after_binance_s_longest_ban_not_decades(
    fake: FakeVendors,
) -> None:
    """A 418 with `Retry-After: 1e9` (a proxy's garbage, milliseconds sent as seconds) bans
    at most Binance's longest ban (3 days): it opened the circuit and paused every Binance
    call for 31 years, so nothing came from Binance again until a restart."""
    clock = FakeClock()
    client = binance(fake, clock)
    fake.inject("binance", KLINES, Fault("status", status=418, retry_after=1e9))
    with pytest.raises(VenueBanned):
        await client.fetch_klines("BTCUSDT", "5m", limit=2)
    assert client.http.breaker.state is CircuitState.OPEN
    clock.t += 3 * 86_400 + 1
    assert await client.fetch_klines("ETHUSDT", "5m", limit=2)
    assert client.http.breaker.state is CircuitState.CLOSED
    await client.aclose()


async def test_5xx_is_retried_with_backoff(fake: FakeVendors) -> None:
    clock = FakeClock()
    client = binance(fake, clock)
    fake.inject("binance", KLINES, Fault("status", status=503), Fault("status", status=502))
    assert await client.fetch_klines("BTCUSDT", "5m", limit=2)
    assert fake.requests[("binance", KLINES)] == 3
    assert len(clock.slept) == 2 and all(0 <= s <= 1.0 for s in clock.slept)
    await client.aclose()


async def test_a_503_saying_when_to_come_back_is_not_asked_again_before(
    fake: FakeVendors,
) -> None:
    """A 503 with `Retry-After: 30` (maintenance, an overloaded gateway) was retried within
    half a second, twice, as any 5xx: the vendor's own estimate of its outage was ignored.
    The retry (and every other call to the vendor) now waits for it."""
    clock = FakeClock()
    client = binance(fake, clock)
    fake.inject("binance", KLINES, Fault("status", status=503, retry_after=30))
    assert await client.fetch_klines("BTCUSDT", "5m", limit=2)
    assert fake.requests[("binance", KLINES)] == 2
    assert sum(clock.slept) >= 30
    await client.aclose()


async def test_a_429_without_retry_after_waits_for_the_vendor_s_next_window(
    fake: FakeVendors,
) -> None:
    """CoinGecko's 429 says no Retry-After: the vendor was paused 1 s, so the retries (and the
    next polls, 1 s, 2 s... apart) went back into the same exhausted minute. Without
    Retry-After the pause lasts until the vendor's quota window ends."""
    clock = FakeClock()  # 30 s into a minute
    client = CoinGeckoHttp(
        fake.url("coingecko"),
        clock=clock.time,
        sleep=clock.sleep,
        retry=RetryPolicy(max_attempts=2, sleep=clock.sleep, rng=random.Random(1)),
    )
    fake.inject("coingecko", "/coins/markets", Fault("status", status=429))
    assert await client.fetch_coins_markets()
    assert fake.requests[("coingecko", "/coins/markets")] == 2
    assert clock.t >= FakeClock().t + 30  # the next minute, when the count starts again
    await client.aclose()


async def test_5xx_beyond_the_retry_budget_raises_transient(fake: FakeVendors) -> None:
    clock = FakeClock()
    client = binance(fake, clock)
    fake.inject("binance", KLINES, Fault("status", status=500, times=None))
    with pytest.raises(Exception) as info:
        await client.fetch_klines("BTCUSDT", "5m", limit=2)
    assert not isinstance(info.value, PermanentError)
    assert fake.requests[("binance", KLINES)] == 3
    await client.aclose()


async def test_timeout_is_retried(fake: FakeVendors) -> None:
    clock = FakeClock()
    client = binance(fake, clock, timeout_s=0.2)
    fake.inject("binance", KLINES, Fault("timeout", delay_s=0.6))
    assert await client.fetch_klines("BTCUSDT", "5m", limit=2)
    assert fake.requests[("binance", KLINES)] == 2
    await client.aclose()


@pytest.mark.parametrize("kind", ["truncated", "html", "wrong_types"])
async def test_malformed_bodies_are_rejected_without_retry(fake: FakeVendors, kind) -> None:
    clock = FakeClock()
    client = binance(fake, clock)
    fake.inject("binance", "/fapi/v1/premiumIndex", Fault(kind))
    with pytest.raises(MalformedResponse):
        await client.fetch_premium_index_all()
    assert fake.requests[("binance", "/fapi/v1/premiumIndex")] == 1
    # the next answer is fine again and nothing is stuck
    assert len(await client.fetch_premium_index_all()) >= 1
    await client.aclose()


async def test_malformed_answers_are_one_warning_per_incident_not_per_call(
    fake: FakeVendors, caplog: pytest.LogCaptureFixture
) -> None:
    """A WAF or proxy serving an HTML page with 200 for every call: each call was a warning
    line (500 symbols' klines: 500 lines a minute). One when it starts, one when it heals."""
    clock = FakeClock()
    client = binance(fake, clock)
    fake.inject("binance", KLINES, Fault("html", times=None))
    with caplog.at_level(logging.INFO, logger="perpsignal_connectors.http"):
        for sym in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BTCUSDT"):
            with pytest.raises(MalformedResponse):
                await client.fetch_klines(sym, "5m", limit=2)
        fake.clear_faults()
        assert await client.fetch_klines("BTCUSDT", "5m", limit=2)
        fake.inject("binance", KLINES, Fault("html"))
        with pytest.raises(MalformedResponse):
            await client.fetch_klines("BTCUSDT", "5m", limit=2)
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    malformed = "malformed vendor response; nothing published from it"
    assert lines == [malformed, "vendor answers are well-formed again", malformed]
    await client.aclose()


async def test_a_redirect_is_refused_not_read_as_the_answer(fake: FakeVendors) -> None:
    """A 302 to another host (a moved API, a captive proxy) with a body shaped like the
    answer: the body was taken as Binance's (any status below 400 was success), and without
    such a body the error said only "body is not JSON". Redirects are never followed (a key
    header must not go to another host), so a 3xx is an error naming where it points."""
    clock = FakeClock()
    client = binance(fake, clock)
    item = fake.load("binance", "fapi_v1_premiumIndex.doc_current.json")
    fake.inject(
        "binance",
        "/fapi/v1/premiumIndex",
        Fault("redirect", location="https://elsewhere.example/fapi", body=[item]),
    )
    with pytest.raises(
        PermanentError, match=r"redirect to https://elsewhere\.example/fapi not followed"
    ):
        await client.fetch_premium_index_all()
    assert fake.requests[("binance", "/fapi/v1/premiumIndex")] == 1  # not retried
    await client.aclose()


async def test_4xx_is_permanent_and_not_retried(fake: FakeVendors) -> None:
    clock = FakeClock()
    client = binance(fake, clock)
    fake.inject("binance", KLINES, Fault("status", status=400))
    with pytest.raises(PermanentError):
        await client.fetch_klines("NOPEUSDT", "5m", limit=2)
    assert fake.requests[("binance", KLINES)] == 1
    await client.aclose()


async def test_used_weight_header_corrects_the_local_budget(fake: FakeVendors) -> None:
    clock = FakeClock()
    client = binance(fake, clock)
    # another process on the same IP already spent 1,500 this minute
    fake.binance.weight_by_minute[int(clock.t // 60)] = 1500
    await client.fetch_klines("BTCUSDT", "5m", limit=2)
    assert client.limiter.budgets[bc.WEIGHT].used == 1501


async def test_budget_exhaustion_waits_for_the_next_minute(fake: FakeVendors) -> None:
    clock = FakeClock(t=1_700_000_080.0)  # 20 s before a minute boundary
    client = binance(fake, clock, budget=10)  # usable: 8 per minute
    for _ in range(8):
        await client.fetch_klines("BTCUSDT", "5m", limit=2)
    assert clock.slept == []
    await client.fetch_klines("BTCUSDT", "5m", limit=2)
    assert clock.slept and clock.slept[0] == pytest.approx(20, abs=0.01)
    per_minute = fake.weight_per_minute()
    assert max(per_minute.values()) <= 8
    await client.aclose()


async def test_okx_rate_limit_code_is_rate_limited(fake: FakeVendors) -> None:
    clock = FakeClock()
    okx = OkxHttp(
        fake.url("okx"),
        retry=RetryPolicy(max_attempts=2, sleep=clock.sleep),
        clock=clock.time,
        sleep=clock.sleep,
    )
    fake.set_body(
        "okx", "/api/v5/market/candles", {"code": "50011", "msg": "Too Many Requests", "data": []}
    )
    with pytest.raises(RateLimited):
        await okx.fetch_candles("BTCUSDT", "1m")
    assert fake.requests[("okx", "/api/v5/market/candles")] == 2
    await okx.aclose()


async def test_coinglass_bad_key_is_permanent(fake: FakeVendors) -> None:
    clock = FakeClock()
    cg = CoinglassHttp(
        "",
        fake.url("coinglass"),
        retry=RetryPolicy(max_attempts=3, sleep=clock.sleep),
        clock=clock.time,
        sleep=clock.sleep,
    )
    with pytest.raises(PermanentError):
        await cg.fetch_liquidation_history("BTC", "4h")
    await cg.aclose()


async def test_coinglass_error_envelope(fake: FakeVendors) -> None:
    clock = FakeClock()
    cg = CoinglassHttp(
        "k",
        fake.url("coinglass"),
        retry=RetryPolicy(max_attempts=3, sleep=clock.sleep),
        clock=clock.time,
        sleep=clock.sleep,
    )
    fake.set_body(
        "coinglass",
        "/api/futures/liquidation/aggregated-history",
        {"code": "400", "msg": "interval not allowed on this plan"},
    )
    with pytest.raises(PermanentError, match="interval not allowed"):
        await cg.fetch_liquidation_history("BTC", "1m")
    await cg.aclose()


async def test_a_body_beyond_the_size_cap_is_refused_not_read_into_memory(
    fake: FakeVendors,
) -> None:
    """A hostile or broken upstream answering an endless or enormous body (a proxy serving a
    file, a runaway stream) must not be read whole into memory: past the cap the request is
    MalformedResponse (not retried), and the next normal answer is read as usual."""
    clock = FakeClock()
    client = binance(fake, clock)
    client.http.max_body_bytes = 200_000
    rows = fake.load("binance_usdm", "fapi_v1_klines.thirdparty_doc.json")
    fake.set_body("binance", KLINES, rows * 5_000)  # ~1.5 MB of real rows
    with pytest.raises(MalformedResponse, match="larger than"):
        await client.fetch_klines("BTCUSDT", "5m", limit=2)
    assert fake.requests[("binance", KLINES)] == 1
    fake.overrides.clear()
    assert await client.fetch_klines("BTCUSDT", "5m", limit=2)
    await client.aclose()


@pytest.mark.parametrize("retry_after", [30_000, 10**12])
async def test_an_absurd_retry_after_pauses_the_vendor_minutes_not_hours(
    fake: FakeVendors, retry_after: float
) -> None:
    """A 429 whose Retry-After is absurd (milliseconds sent as seconds by a proxy, garbage)
    must not silence the vendor for hours or years: the pause is capped, the call retried."""
    clock = FakeClock()
    client = binance(fake, clock)
    fake.inject("binance", KLINES, Fault("status", status=429, retry_after=retry_after))
    assert await client.fetch_klines("BTCUSDT", "5m", limit=2)
    assert fake.requests[("binance", KLINES)] == 2
    assert sum(clock.slept) <= 300 + 10  # the cap, plus the retry's own backoff
    await client.aclose()


async def test_a_body_dripped_out_slowly_times_out_as_a_whole(fake: FakeVendors) -> None:
    """Every read arrives within the read timeout, but the answer never ends in time (a slow
    proxy, a stalled upstream): the request gives up after 3 read timeouts and is retried,
    instead of holding the whole poll of every symbol until the poll's own deadline."""
    import time

    clock = FakeClock()
    client = binance(fake, clock, timeout_s=1.0)
    fake.inject("binance", KLINES, Fault("drip", delay_s=0.4))  # 20 pieces: 8 s in all
    started = time.monotonic()
    assert await client.fetch_klines("BTCUSDT", "5m", limit=2)
    assert fake.requests[("binance", KLINES)] == 2  # the retry got the normal body
    assert time.monotonic() - started < 6
    await client.aclose()


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_decompression_bomb_is_refused_at_the_cap_not_inflated_whole(
    fake: FakeVendors, encoding: Literal["gzip", "deflate"]
) -> None:
    """A hostile or broken vendor answering 64 KB of gzip that inflates to 64 MB: httpx
    inflated each network read whole before the size cap saw it (about 1,000 times the
    read), so the cap bounded the compressed size, not the memory. Inflating stops at the cap
    now: the answer is refused as too large, having cost about the cap in memory."""
    clock = FakeClock()
    client = binance(fake, clock)
    cap = 1024 * 1024
    client.http.max_body_bytes = cap
    fake.inject("binance", KLINES, Fault("bomb", encoding=encoding, inflated_bytes=64 * cap))
    assert len(bomb(64 * cap, encoding)) < 128 * 1024  # small on the wire
    tracemalloc.start()
    try:
        with pytest.raises(MalformedResponse, match="larger than"):
            await client.fetch_klines("BTCUSDT", "5m", limit=2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * cap, f"{peak / cap:.0f} MiB allocated for a 1 MiB cap"
    assert fake.requests[("binance", KLINES)] == 1  # malformed: not retried
    await client.aclose()


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
async def test_compressed_answers_are_read_as_the_vendor_sent_them(
    fake: FakeVendors, encoding: Literal["gzip", "deflate", "raw-deflate"]
) -> None:
    """The real body, compressed as servers do (deflate with and without its zlib header):
    read exactly as the uncompressed one."""
    clock = FakeClock()
    client = binance(fake, clock)
    plain = await client.fetch_klines("BTCUSDT", "5m", limit=2)
    fake.inject("binance", KLINES, Fault("compressed", encoding=encoding))
    assert await client.fetch_klines("BTCUSDT", "5m", limit=2) == plain
    await client.aclose()


async def test_a_compressed_answer_cut_short_is_malformed(fake: FakeVendors) -> None:
    """A gzip body that stops before its end (a proxy cutting the stream): refused as
    malformed, never read as whatever prefix inflated."""
    clock = FakeClock()
    client = binance(fake, clock)
    whole = compress(b"[]" + b" " * 100_000, "gzip")  # "[]": what the cut prefix reads as
    fake.inject("binance", KLINES, Fault("bad_gzip", body=whole[: len(whole) // 2]))
    with pytest.raises(MalformedResponse, match="could not be decoded"):
        await client.fetch_klines("BTCUSDT", "5m", limit=2)
    await client.aclose()


def banned_until_message(until_ms: int) -> str:
    """Binance's -1003 message of a 418 (its error-code page), with the ban's end in ms."""
    return (
        f"Way too many requests; IP(203.0.113.7) banned until {until_ms}. "
        "Please use the websocket for live updates to avoid bans."
    )


async def test_a_ban_without_retry_after_lasts_until_the_time_its_message_names(
    fake: FakeVendors,
) -> None:
    """A 418 without Retry-After whose message says "banned until <epoch ms>" (ten minutes
    away) opened the circuit for the default 120 s: Binance was asked again eight minutes
    inside the ban, which bans repeat offenders longer. The ban now lasts as long as it says."""
    clock = FakeClock()
    client = binance(fake, clock)
    until_ms = int((clock.t + 600) * 1000)
    fake.inject(
        "binance", KLINES, Fault("status", status=418, message=banned_until_message(until_ms))
    )
    with pytest.raises(VenueBanned):
        await client.fetch_klines("BTCUSDT", "5m", limit=2)
    clock.t += 121
    with pytest.raises(CircuitOpen):
        await client.fetch_klines("ETHUSDT", "5m", limit=2)
    assert fake.requests[("binance", KLINES)] == 1  # still banned: Binance not asked
    clock.t += 480
    assert await client.fetch_klines("ETHUSDT", "5m", limit=2)
    await client.aclose()


@pytest.mark.parametrize(
    ("until_offset_s", "free_after_s"),
    [(-30, 121), (10 * 86_400, 3 * 86_400 + 1)],
    ids=["already-past", "beyond-three-days"],
)
async def test_a_ban_time_in_a_message_is_bounded(
    fake: FakeVendors, until_offset_s: float, free_after_s: float
) -> None:
    """A ban end already past (clock skew) takes the default 120 s rather than none; one
    beyond Binance's longest ban (3 days) is cut to it."""
    clock = FakeClock()
    client = binance(fake, clock)
    until_ms = int((clock.t + until_offset_s) * 1000)
    fake.inject(
        "binance", KLINES, Fault("status", status=418, message=banned_until_message(until_ms))
    )
    with pytest.raises(VenueBanned):
        await client.fetch_klines("BTCUSDT", "5m", limit=2)
    clock.t += 60
    with pytest.raises(CircuitOpen):
        await client.fetch_klines("ETHUSDT", "5m", limit=2)
    clock.t += free_after_s - 60
    assert await client.fetch_klines("ETHUSDT", "5m", limit=2)
    await client.aclose()


OI_HIST = "/futures/data/openInterestHist"


async def test_a_statistics_429_pauses_only_that_statistics_endpoint(fake: FakeVendors) -> None:
    """A 429 from a /futures/data endpoint's own cap (1,000 requests per 5 min, weight 0)
    paused every Binance call, klines included, for its Retry-After (up to 5 min of candles
    lost for a cap klines do not count against). Now only that endpoint waits."""
    clock = FakeClock()
    client = binance(fake, clock)
    fake.inject("binance", OI_HIST, Fault("status", status=429, retry_after=200, times=3))
    with pytest.raises(RateLimited):
        await client.fetch_open_interest_hist("BTCUSDT", "5m", limit=2)
    began = clock.t
    assert await client.fetch_klines("BTCUSDT", "5m", limit=2)
    assert await client.fetch_long_short("top_account", "BTCUSDT", "5m", limit=2)
    assert clock.t == began  # klines and the other statistics endpoints went at once
    assert await client.fetch_open_interest_hist("BTCUSDT", "5m", limit=2)
    assert clock.t >= began + 199  # the capped endpoint itself waited out its Retry-After
    await client.aclose()


async def test_a_ban_on_a_statistics_endpoint_still_stops_every_call(fake: FakeVendors) -> None:
    """A 418 is the IP's ban, whichever endpoint earned it: klines stop too."""
    clock = FakeClock()
    client = binance(fake, clock)
    fake.inject("binance", OI_HIST, Fault("status", status=418, retry_after=120))
    with pytest.raises(VenueBanned):
        await client.fetch_open_interest_hist("BTCUSDT", "5m", limit=2)
    with pytest.raises(CircuitOpen):
        await client.fetch_klines("BTCUSDT", "5m", limit=2)
    assert fake.requests[("binance", KLINES)] == 0
    await client.aclose()


async def test_a_weight_429_still_pauses_every_binance_call(fake: FakeVendors) -> None:
    """A 429 on klines (the IP's weight) still holds every call, statistics included."""
    clock = FakeClock()
    client = binance(fake, clock)
    fake.inject("binance", KLINES, Fault("status", status=429, retry_after=30, times=3))
    with pytest.raises(RateLimited):
        await client.fetch_klines("BTCUSDT", "5m", limit=2)
    began = clock.t
    assert await client.fetch_open_interest_hist("BTCUSDT", "5m", limit=2)
    assert clock.t >= began + 29
    await client.aclose()
