"""Through the broker: the real scorer and judge services give the in-process results; record
and replay round-trip event files with keys and observation times intact."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from perpsignal_cli.backtesting import report
from perpsignal_cli.backtesting.broker import run_through_broker_async
from perpsignal_cli.backtesting.eventfile import read_lines, write_events
from perpsignal_cli.backtesting.importers import candle_events, read_candles
from perpsignal_cli.backtesting.pipeline import load_history, run_in_process
from perpsignal_cli.record import record
from perpsignal_cli.replay import parse_speed, replay
from perpsignal_common.settings import KafkaSettings

pytestmark = pytest.mark.kafka


@pytest.fixture
def small_history(shared_data: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    market = shared_data / "market"
    lines = (market / "XRP_USDT_USDT-5m-futures.csv").read_text().splitlines()[:301]
    candles = tmp_path / "xrp.csv"
    candles.write_text("\n".join(lines) + "\n")
    return load_history(
        "XRPUSDT",
        candles,
        funding=market / "XRP_USDT_USDT-8h-funding_rate.csv",
        fear_greed=market / "alternative_me-fear_greed-1d.csv",
    )


async def test_broker_mode_gives_the_in_process_results(
    small_history, kafka_settings: KafkaSettings
) -> None:
    local = await asyncio.to_thread(run_in_process, small_history, progress=False)
    remote = await run_through_broker_async(
        small_history, kafka_settings, progress=False, timeout_s=60
    )
    assert remote.mode == "broker"
    assert len(remote.records) == len(local.records) == 100  # 300 5m bars -> 100 15m
    kw = {"horizons": ["1h", "4h", "24h"], "equity_horizon": "4h"}
    a = report.build_report(local, small_history, **kw)
    b = report.build_report(remote, small_history, **kw)
    for r in (a, b):
        r.pop("generated")
        r["run"].pop("mode")
    assert a == b
    # fear & greed reached the scorer through its own topic, in time
    assert {
        f.status for r in remote.records for f in r.judged.factors if f.name == "fear_greed"
    } == {"ok"}


async def test_replay_then_record_round_trips_keys_and_times(
    shared_data: Path, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    series = read_candles(shared_data / "market" / "XRP_USDT_USDT-1h-futures.csv").slice(0, 20)
    events = candle_events(series, "XRPUSDT")
    src = tmp_path / "in.jsonl"
    write_events(src, events)
    recorded = tmp_path / "out.jsonl"
    settings = kafka_settings.model_copy(update={"kafka_topic_partitions": 1})
    sent = await replay(src, settings, speed=0.0, progress=False)
    assert sent == 20
    n = await record(
        settings,
        ["perpsignal.market.v1"],
        recorded,
        from_beginning=True,
        max_records=20,
        duration_s=30,
    )
    assert n == 20
    got = read_lines(recorded)
    assert [ln.key for ln in got] == ["XRPUSDT"] * 20
    assert [ln.event() for ln in got] == events  # payloads, ids and observed_at unchanged


async def test_replay_paces_by_observed_time(
    shared_data: Path, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    series = read_candles(shared_data / "market" / "XRP_USDT_USDT-5m-futures.csv").slice(0, 6)
    events = candle_events(series, "XRPUSDT")[:5]  # five 5m candles: 4 gaps of 300 s
    src = tmp_path / "paced.jsonl"
    write_events(src, events)
    started = time.monotonic()
    await replay(src, kafka_settings, speed=parse_speed("x2400"), progress=False)
    took = time.monotonic() - started
    # 4 gaps x 300 s / 2400 = 0.5 s of pacing at least
    assert took >= 0.5
    assert parse_speed("max") == 0.0
    assert parse_speed("realtime") == 1.0
    assert parse_speed("10") == parse_speed("x10") == 10.0


async def test_a_service_that_cannot_start_fails_the_run_in_one_error(
    small_history, kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A judge refusing its configuration ends the run with a BrokerRunError naming the
    service and its exit (the CLI prints it as one line), not a timeout traceback."""
    from perpsignal_cli.backtesting.errors import BrokerRunError

    monkeypatch.setenv("JUDGE_MIN_CONFIDENCE", "500")  # out of range: the judge exits
    started = time.monotonic()
    with pytest.raises(BrokerRunError, match="judge service exited"):
        await run_through_broker_async(small_history, kafka_settings, progress=False, timeout_s=60)
    assert time.monotonic() - started < 55  # told at the exit, not at the timeout


def test_the_cli_prints_a_broker_failure_in_one_line(
    small_history,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from perpsignal_cli import backtest
    from perpsignal_cli.backtesting.errors import BrokerRunError

    def failing(*_a: object, **_k: object) -> None:
        raise BrokerRunError("the judge service exited (1): settings refused")

    monkeypatch.setattr(backtest, "run_symbol", failing)
    from perpsignal_cli.backtesting import pipeline

    monkeypatch.setattr(pipeline, "load_history", lambda *a, **k: small_history)
    candles = tmp_path / "c.csv"
    candles.write_text("x\n")
    code = backtest.main(
        ["--symbol", "XRPUSDT", "--candles", str(candles), "--through-broker", "--quiet",
         "--no-progress", "--out", str(tmp_path / "out")]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert "the run through the broker failed: the judge service exited (1)" in err
    assert "Traceback" not in err


async def test_replay_refuses_a_hostile_file_before_sending_anything(
    shared_data: Path, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """Good lines first, then a market event filed under the signals topic, a wrong key, a
    topic the platform does not have, a NaN close, a zero price and a line that is not an
    event: the
    refusal names those lines and the broker never saw the good ones (no half replay)."""
    import orjson

    from perpsignal_cli.backtesting.eventfile import line_of

    series = read_candles(shared_data / "market" / "XRP_USDT_USDT-1h-futures.csv").slice(0, 8)
    events = candle_events(series, "XRPUSDT")
    good = [line_of(ev) for ev in events[:3]]

    def edited(ev_index: int, **change: object) -> bytes:
        obj = orjson.loads(line_of(events[ev_index]))
        obj.update(change)
        return orjson.dumps(obj) + b"\n"

    nan_close = line_of(events[7]).replace(
        f'"close":{orjson.dumps(events[7].close).decode()}'.encode(), b'"close":NaN'
    )
    assert nan_close != line_of(events[7])
    zero_low = edited(6, event={**orjson.loads(line_of(events[6]))["event"], "low": 0})
    src = tmp_path / "hostile.jsonl"
    src.write_bytes(
        b"".join(good)
        + b"\n"  # a blank line is skipped, and still counted as line 4
        + edited(3, topic="perpsignal.signals.v1")
        + edited(4, key="BTCUSDT")
        + edited(5, topic="perpsignal.market.v1.dlq")
        + nan_close
        + zero_low
        + b'["not", "an", "event"]\n'
    )
    settings = kafka_settings.model_copy(update={"kafka_topic_partitions": 1})
    with pytest.raises(ValueError) as refused:
        await replay(src, settings, speed=0.0, progress=False)
    text = str(refused.value)
    assert "6 line(s) cannot be replayed, nothing was sent" in text
    assert "line 5: a market.candle event belongs on perpsignal.market.v1" in text
    assert "line 6: key 'BTCUSDT' is not the event's key 'XRPUSDT'" in text
    assert "line 7: 'perpsignal.market.v1.dlq' is not a platform topic" in text
    assert "line 8: not JSON (unexpected character" in text
    assert "line 9: not a valid event" in text
    assert "(and 1 more)" in text  # the sixth, a JSON array, is counted, not named
    for line in ("line 1", "line 2", "line 3", "line 4:"):
        assert line not in text
    # nothing reached the broker: the market topic holds no record
    try:
        n = await record(
            settings,
            ["perpsignal.market.v1"],
            tmp_path / "out.jsonl",
            from_beginning=True,
            idle_s=1.0,
            duration_s=5,
        )
    except ValueError as exc:  # the topic was never even created
        assert "none of the topics exist" in str(exc)
        n = 0
    assert n == 0
    # the good lines alone replay, and --topic names must be the platform's
    src.write_bytes(b"".join(good))
    assert await replay(src, settings, speed=0.0, progress=False) == 3
    with pytest.raises(ValueError, match="unknown topic"):
        await replay(src, settings, topics={"market"}, progress=False)
