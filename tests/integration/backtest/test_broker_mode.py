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
