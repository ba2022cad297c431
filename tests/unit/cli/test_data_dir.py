"""`perpsignal up` and `demo` given a data folder they cannot use say so in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from perpsignal_cli import demo
from perpsignal_cli.stack import SERVICES, run_stack


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("not a folder\n")
    return path


@pytest.mark.parametrize("below", ["", "sub"])
def test_up_on_a_file_is_one_line_not_a_traceback(
    a_file: Path, capsys: pytest.CaptureFixture[str], below: str
) -> None:
    # the old code raised FileExistsError / NotADirectoryError out of the lock's mkdir
    data_dir = a_file / below if below else a_file
    rc = run_stack(data_dir=data_dir, only=list(SERVICES), gateway_port=0)
    captured = capsys.readouterr()
    assert rc == 1
    assert captured.err.strip() == (
        f"perpsignal: cannot use the data folder {data_dir}: it, or a folder above it, is a "
        "file; pass another --data-dir (or set PERPSIGNAL_DATA_DIR)"
    )
    assert "starting" not in captured.out  # nothing was started
    assert a_file.read_text() == "not a folder\n"


def test_demo_on_a_file_is_one_line_not_a_traceback(
    a_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not demo.ARCHIVE.is_file():
        pytest.skip("no bundled data archive")
    rc = demo.main(["--data-dir", str(a_file)])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith(f"perpsignal demo: cannot use the data folder {a_file}: ")
    assert len(err.strip().splitlines()) == 1
    assert a_file.read_text() == "not a folder\n"


@pytest.mark.parametrize("keep", [0.1, 0.0])
def test_demo_with_a_damaged_archive_says_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keep: float
) -> None:
    # a truncated copy of the bundled archive (an interrupted download), or an empty file:
    # the old code printed tarfile's or lzma's traceback
    if not demo.ARCHIVE.is_file():
        pytest.skip("no bundled data archive")
    whole = demo.ARCHIVE.read_bytes()
    damaged = tmp_path / "recorded-data.tar.xz"
    damaged.write_bytes(whole[: int(len(whole) * keep)])
    rc = demo.main(["--archive", str(damaged), "--data-dir", str(tmp_path / "demo")])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith(f"perpsignal demo: the bundled data archive {damaged} is damaged (")
    assert "git checkout -- data/recorded/recorded-data.tar.xz" in err
    assert len(err.strip().splitlines()) == 1


def test_a_second_demo_leaves_the_running_ones_folder_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second `make demo` wiped the running demo's PostgreSQL folder and rewrote the events
    file it was replaying, and only then was refused as "already running"."""
    from perpsignal_cli.stack import acquire_lock

    if not demo.ARCHIVE.is_file():
        pytest.skip("no bundled data archive")
    data_dir = tmp_path / "demo"
    demo.prepare_data_dir(data_dir)  # the running demo's folder, as it made it
    (data_dir / "postgres").mkdir()
    (data_dir / "postgres" / "PG_VERSION").write_text("17\n")
    (data_dir / "demo-events.jsonl").write_text("being replayed\n")
    running = acquire_lock(data_dir)  # held by the running demo
    try:
        rc = demo.main(["--data-dir", str(data_dir)])
    finally:
        running.close()
    err = capsys.readouterr().err
    assert (data_dir / "postgres" / "PG_VERSION").exists(), "the running demo's database"
    assert (data_dir / "demo-events.jsonl").read_text() == "being replayed\n"
    assert rc == 1
    assert err.startswith(f"perpsignal demo: perpsignal up is already running on {data_dir}")


def test_the_demo_lock_does_not_make_a_new_folder_look_foreign(tmp_path: Path) -> None:
    from perpsignal_cli.stack import acquire_lock

    data_dir = tmp_path / "fresh"
    lock = acquire_lock(data_dir)  # what `demo` now does first: up.lock in an empty folder
    try:
        demo.prepare_data_dir(data_dir)  # not refused as "not a demo folder"
    finally:
        lock.close()
    assert (data_dir / demo.MARKER).is_file()
