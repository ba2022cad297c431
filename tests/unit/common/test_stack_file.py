"""`perpsignal up`'s data-folder lock and address file, as other commands read them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from perpsignal_cli.stack import AlreadyRunning, acquire_lock, use_running_stack


def test_a_held_folder_is_refused_naming_the_holder_and_a_released_one_is_free(
    tmp_path: Path,
) -> None:
    (tmp_path / "stack.json").write_text(
        json.dumps({"pid": os.getpid(), "gateway_url": "http://127.0.0.1:8123"})
    )
    first = acquire_lock(tmp_path)
    with pytest.raises(AlreadyRunning) as refused:
        acquire_lock(tmp_path)
    assert f"pid {os.getpid()}" in str(refused.value)
    assert "http://127.0.0.1:8123" in str(refused.value)
    assert "\n" not in str(refused.value)
    first.close()  # what the kernel does when the holder dies, however it dies
    acquire_lock(tmp_path).close()


def test_commands_use_a_live_stack_unless_a_setting_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = {
        "pid": os.getpid(),
        "kafka_bootstrap": "127.0.0.1:40001",
        "database_url": "postgresql+asyncpg://postgres@127.0.0.1:40002/perpsignal",
    }
    (tmp_path / "stack.json").write_text(json.dumps(info))
    # set, then unset: monkeypatch then removes what use_running_stack writes (a leaked
    # address would point later tests of this process at a broker that does not exist)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "")
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://mine@db/x")
    assert use_running_stack(tmp_path) is not None
    assert os.environ["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:40001"
    assert os.environ["DATABASE_URL"] == "postgresql://mine@db/x"


def test_a_stack_file_of_a_dead_up_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (tmp_path / "stack.json").write_text(
        json.dumps({"pid": gone.pid, "kafka_bootstrap": "127.0.0.1:40001"})
    )
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    assert use_running_stack(tmp_path) is None
    assert "KAFKA_BOOTSTRAP_SERVERS" not in os.environ
