"""A command that found no running `perpsignal up` and no setting says so when the default
address does not answer, instead of blaming a setting the user never made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from perpsignal_cli import export, replay
from perpsignal_cli.backtesting.eventfile import write_events
from perpsignal_cli.backtesting.importers import candle_events, read_candles
from perpsignal_common.errors import DependencyUnavailable


async def _unreachable(*_: Any, **__: Any) -> int:
    # what the client raises when the default address (no stack, no setting) does not answer
    raise DependencyUnavailable("kafka admin cannot connect: KafkaConnectionError")


@pytest.fixture
def event_file(shared_data: Path, tmp_path: Path) -> Path:
    series = read_candles(shared_data / "market" / "XRP_USDT_USDT-1h-futures.csv").slice(0, 2)
    path = tmp_path / "events.jsonl"
    write_events(path, candle_events(series, "XRPUSDT"))
    return path


@pytest.mark.parametrize("set_by_user", [False, True])
def test_replay_without_a_stack_or_a_setting_says_which(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    event_file: Path,
    capsys: pytest.CaptureFixture[str],
    set_by_user: bool,
) -> None:
    no_stack = tmp_path / "elsewhere"  # `make up` ran in another folder
    monkeypatch.setenv("PERPSIGNAL_DATA_DIR", str(no_stack))
    if set_by_user:
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    else:
        monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setattr(replay, "replay", _unreachable)
    assert replay.main([str(event_file)]) == 1
    err = capsys.readouterr().err
    hint = f"KAFKA_BOOTSTRAP_SERVERS is unset and no perpsignal up runs on {no_stack}"
    # the old line ended at the client's error: the user never set the address it tried
    assert (hint in err) is not set_by_user, err
    assert len(err.strip().splitlines()) == 1


def test_export_without_a_stack_or_a_setting_says_which(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PERPSIGNAL_DATA_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.delenv("DATABASE_URL", raising=False)

    async def unreachable(*_: Any) -> int:
        raise DependencyUnavailable("database unavailable: ConnectionRefusedError")

    monkeypatch.setattr(export, "export", unreachable)
    assert export.main(["--out", str(tmp_path / "history.jsonl")]) == 1
    err = capsys.readouterr().err
    assert (
        "(DATABASE_URL); DATABASE_URL is unset and no perpsignal up runs on "
        f"{tmp_path / 'elsewhere'}: start one there (make up), or set DATABASE_URL or "
        "PERPSIGNAL_DATA_DIR"
    ) in err


def test_a_running_stack_whose_database_url_holds_a_password_is_not_called_absent(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import os

    from perpsignal_cli.stack import STACK_FILE

    # `up` on an outside database with a password: stack.json leaves its URL out
    (tmp_path / STACK_FILE).write_text(
        json.dumps({"pid": os.getpid(), "kafka_bootstrap": "127.0.0.1:9", "database_url": None})
    )
    monkeypatch.setenv("PERPSIGNAL_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)

    async def unreachable(*_: Any) -> int:
        raise DependencyUnavailable("database unavailable: ConnectionRefusedError")

    monkeypatch.setattr(export, "export", unreachable)
    assert export.main(["--out", str(tmp_path / "history.jsonl")]) == 1
    err = capsys.readouterr().err
    assert "no perpsignal up runs" not in err
    assert (
        f"DATABASE_URL is unset and the running perpsignal up (pid {os.getpid()}) does not "
        "write its address down (it holds a password): set DATABASE_URL"
    ) in err
