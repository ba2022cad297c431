"""`perpsignal export` output and the service's event routing, on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select

from perpsignal_cli import export
from perpsignal_common.db.engine import session_scope
from perpsignal_common.db.models.outcomes import (
    OutcomeCandle,
    OutcomeMss,
    OutcomeSignal,
    SignalOutcome,
)
from perpsignal_common.events.market import CandleClosedV1
from perpsignal_common.events.signals import MssScoredV1, PhaseScore
from perpsignal_common.settings import DatabaseSettings
from perpsignal_domain.scoring.mss import MssScanner
from perpsignal_outcomes import repository as repo
from perpsignal_outcomes.service import OutcomesService
from perpsignal_outcomes.settings import OutcomesSettings
from perpsignal_outcomes.tracker import Tracker
from tests.integration.outcomes.conftest import judged, xrp_candle_rows
from tests.unit.scorer import test_mss

pytestmark = pytest.mark.db

HORIZONS = {"1h": 3600, "4h": 14_400, "24h": 86_400}


async def test_export_writes_every_signal_with_its_outcomes(
    sessions,
    database_url: str,
    shared_data: Path,
    tmp_path: Path,
    monkeypatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with session_scope(sessions) as s:
        await repo.store_candles(s, xrp_candle_rows(shared_data))
        await repo.store_signals(
            s,
            [
                judged(signal_id="a", verdict="SKIP", stop=1.1935, target=1.21),
                judged(signal_id="b", symbol="BTCUSDT", direction="SHORT", price=60000.0),
            ],
            HORIZONS,
            timedelta(0),
        )
    later = datetime(2021, 11, 20, tzinfo=UTC)
    cfg = OutcomesSettings(outcomes_settle_s=0, outcomes_candle_timeframes="5m")
    await Tracker(cfg, sessions, None, clock=lambda: later).evaluate_batch()

    monkeypatch.setenv("DATABASE_URL", database_url)
    out = tmp_path / "history.jsonl"
    assert await asyncio.to_thread(export.main, ["--out", str(out)]) == 0
    # progress is tqdm's bar on stderr, never mixed into the data file
    err = capsys.readouterr().err
    assert "exported: " in err and "2 lines" in err and f"exported 2 lines to {out}" in err
    lines = [orjson.loads(raw) for raw in out.read_bytes().splitlines()]
    assert [line["signal_id"] for line in lines] == ["a", "b"]
    a = lines[0]
    assert a["verdict"] == "SKIP" and a["stop_loss_price"] == 1.1935
    assert a["verdict_layer"]["verdict"] == "SKIP"
    assert [o["horizon"] for o in a["outcomes"]] == ["1h", "4h", "24h"]
    one = a["outcomes"][0]
    assert (one["status"], one["exit_price"], one["first_hit"]) == ("completed", 1.2123, "stop")
    # no BTC candles were stored: its rows are pending, with the reason, and no made-up price
    assert {o["status"] for o in lines[1]["outcomes"]} == {"pending"}
    assert all(o["exit_price"] is None and o["reason"] for o in lines[1]["outcomes"])

    only_btc = tmp_path / "btc.jsonl"
    await asyncio.to_thread(export.main, ["--out", str(only_btc), "--symbol", "BTCUSDT"])
    assert len(only_btc.read_bytes().splitlines()) == 1

    # a private backup reached through a link: the link stays a link, the file stays 0600
    private = tmp_path / "private.jsonl"
    private.write_bytes(b"old\n")
    private.chmod(0o600)
    link = tmp_path / "latest.jsonl"
    link.symlink_to(private)
    assert await asyncio.to_thread(export.main, ["--out", str(link)]) == 0
    assert link.is_symlink() and len(private.read_bytes().splitlines()) == 2
    assert stat.S_IMODE(private.stat().st_mode) == 0o600

    # not a regular file (a FIFO here; /dev/null in the wild) is written in place: a rename
    # over it once replaced the machine's /dev/null with a regular file
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # never blocks, whatever export does
    try:
        assert await asyncio.to_thread(export.main, ["--out", str(fifo)]) == 0
        assert len(os.read(reader, 1 << 16).splitlines()) == 2
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert not [name for name in os.listdir(tmp_path) if ".partial-" in name]


async def test_a_failed_export_leaves_the_previous_backup_as_it_was(
    pg_server, tmp_path: Path, monkeypatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--out FILE` used to be opened (truncated) before the database was reached: a down
    database, or one never migrated, left last night's backup empty after a traceback. Now
    each says so in one line, exits 1 and leaves FILE and its folder as they were."""
    import uuid

    backup = tmp_path / "history.jsonl"
    backup.write_bytes(b'{"kind": "signal", "signal_id": "yesterday"}\n')
    before = backup.read_bytes()

    # a server that is not there (a closed port on this machine), with a password in the URL
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://u:s3cret@127.0.0.1:9/none")
    assert await asyncio.to_thread(export.main, ["--out", str(backup)]) == 1
    err = capsys.readouterr().err
    assert "perpsignal export: database unavailable" in err and "s3cret" not in err
    assert "Traceback" not in err

    # a reachable database without the schema (migrations never ran)
    name = f"t_{uuid.uuid4().hex[:12]}"
    await pg_server.create(name)
    try:
        monkeypatch.setenv("DATABASE_URL", pg_server.url_for(name))
        assert await asyncio.to_thread(export.main, ["--out", str(backup)]) == 1
    finally:
        await pg_server.drop(name)
    err = capsys.readouterr().err
    assert "no signal history tables; run `perpsignal migrate`" in err

    assert backup.read_bytes() == before
    left = await asyncio.to_thread(lambda: sorted(p.name for p in tmp_path.iterdir()))
    assert left == ["history.jsonl"]  # and no partial file beside it


async def test_service_routes_and_dedupes_events(database_url: str) -> None:
    settings = OutcomesSettings(
        database=DatabaseSettings(database_url=database_url),
        outcomes_klines_fallback=False,
        outcomes_mss_threshold=60,
    )
    service = OutcomesService(settings)
    try:
        long = judged(signal_id="x", verdict="WAIT")
        await service.handle(long, None)  # type: ignore[arg-type]
        await service.handle(long, None)  # type: ignore[arg-type]  # redelivered
        await service.handle(judged(signal_id="n", direction="NEUTRAL"), None)  # type: ignore[arg-type]
        t0 = datetime(2021, 11, 15, tzinfo=UTC)
        for tf in ("5m", "4h"):  # 4h is not a stored timeframe by default
            candle = CandleClosedV1(
                event_id=f"c{tf}",
                source="binance",
                symbol="XRPUSDT",
                observed_at=t0,
                timeframe=tf,
                open_time=t0,
                open=1,
                high=2,
                low=0.5,
                close=1.5,
                volume=1,
            )
            await service.handle(candle, None)  # type: ignore[arg-type]
        for i, score in enumerate((59.9, 75.0, 75.0)):
            phase = PhaseScore(score=50)
            mss = MssScoredV1(
                event_id=f"m{min(i, 1)}",
                source="scorer",
                symbol="NEW",
                observed_at=t0,
                coin="NEW",
                mss=score,
                tier="T",
                discovery=phase,
                social_momentum=phase,
                institutional_validation=phase,
            )
            await service.handle(mss, None)  # type: ignore[arg-type]
        async with session_scope(service.sessions) as s:
            signals = (await s.execute(select(OutcomeSignal.signal_id))).scalars().all()
            n_out = await s.scalar(select(func.count()).select_from(SignalOutcome))
            tfs = (await s.execute(select(OutcomeCandle.timeframe))).scalars().all()
            mss_ids = (await s.execute(select(OutcomeMss.event_id))).scalars().all()
        assert signals == ["x"]  # WAIT is tracked, NEUTRAL has nothing to measure
        assert n_out == 3
        assert tfs == ["5m"]
        assert mss_ids == ["m1"]  # below-threshold result skipped, redelivery deduped
    finally:
        await service.engine.dispose()


async def test_an_mss_result_with_a_nul_in_the_vendor_name_is_stored(database_url: str) -> None:
    """The MSS scanner copies the coin's name from its vendor profile; a NUL in it (set by hand
    here: vendor text, not ours) made jsonb refuse the payload, and the result was lost."""
    events = test_mss._events()
    events[0] = events[0].model_copy(update={"name": "Pe\x00pe"})
    scanner = MssScanner()
    for ev in sorted(events, key=lambda e: e.observed_at):
        scanner.observe(ev)
    (result,) = scanner.scan(test_mss.NOW_S)
    assert result.name == "Pe\x00pe"
    service = OutcomesService(
        OutcomesSettings(
            database=DatabaseSettings(database_url=database_url),
            outcomes_mss_threshold=0.0,
        )
    )
    try:
        await service.handle(result, None)  # type: ignore[arg-type]
        async with session_scope(service.sessions) as s:
            stored = await s.get(OutcomeMss, result.event_id)
    finally:
        await service.signals.close()
        await service.engine.dispose()
    assert stored is not None and stored.payload["name"] == "Pe\ufffdpe"
    assert stored.mss == result.mss
