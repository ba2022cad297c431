"""`perpsignal replay` of a large file: memory stays that of a few lines, not of the file."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from perpsignal_cli.backtesting.eventfile import line_of
from perpsignal_cli.backtesting.importers import candle_events, read_candles
from perpsignal_cli.replay import replay
from perpsignal_common.settings import KafkaSettings

pytestmark = pytest.mark.kafka


async def test_a_large_file_is_replayed_without_holding_it_in_memory(
    shared_data: Path, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """The old replay kept every checked line (with orjson's spare buffer, ~8 KB a line):
    100 MB of events took 1.8 GB, so a day's recording of many symbols was killed for memory
    before the first event was sent. Now the file is checked, then sent, one line at a time."""
    series = read_candles(shared_data / "market" / "XRP_USDT_USDT-5m-futures.csv")
    lines = b"".join(line_of(ev) for ev in candle_events(series, "XRPUSDT"))
    src = tmp_path / "big.jsonl"
    src.write_bytes(lines * 5)  # ~10 000 events, ~5 MB
    events = src.read_bytes().count(b"\n")
    assert events > 9000
    settings = kafka_settings.model_copy(update={"kafka_topic_partitions": 1})

    tracemalloc.start()
    try:
        sent = await replay(src, settings, speed=0.0, progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sent == events
    # the old code peaked near 90 MB here; now about 1 MB (the producer's batches in flight)
    assert peak < src.stat().st_size, f"peak {peak / 1e6:.1f} MB"


async def test_a_file_rewritten_after_its_check_stops_the_replay_saying_what_went_out(
    shared_data: Path, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    from perpsignal_cli.replay import check

    series = read_candles(shared_data / "market" / "XRP_USDT_USDT-5m-futures.csv").slice(0, 3)
    good = [line_of(ev) for ev in candle_events(series, "XRPUSDT")]
    src = tmp_path / "tap.jsonl"
    src.write_bytes(b"".join(good))
    checked = check(src)
    src.write_bytes(good[0] + b"not an event\n" + good[2])  # rewritten by another program
    settings = kafka_settings.model_copy(update={"kafka_topic_partitions": 1})
    with pytest.raises(ValueError) as refused:
        await replay(src, settings, speed=0.0, progress=False, checked=checked)
    message = str(refused.value)
    assert message.startswith(f"{src} changed while it was replayed: line 2: not JSON (")
    assert message.endswith("; 1 event(s) had been sent")
