"""`perpsignal export`: a range that selects nothing by construction is refused, and SIGTERM
leaves the previous backup and its folder as they were (as Ctrl-C always did)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from perpsignal_cli.export import main


def test_since_not_before_until_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the old code queried and wrote an empty export, exit 0: the same as an empty history
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@127.0.0.1:9/none")  # never reached
    out = tmp_path / "history.jsonl"
    rc = main(["--out", str(out), "--since", "2024-02-01", "--until", "2024-01-01"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "--since 2024-02-01T00:00:00+00:00 is not before --until 2024-01-01" in err
    assert not out.exists()


# the export is slowed (a long history): SIGTERM arrives while lines are being written
SLOW_EXPORT = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from perpsignal_cli import export

    async def slow(args, out, progress):
        out.write(b'{"kind": "signal", "signal_id": "today"}\\n')
        out.flush()
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(30)
        return 1

    export.export = slow
    sys.exit(export.main(["--out", sys.argv[1]]))
    """
)


def test_sigterm_leaves_the_previous_backup_and_no_partial_file(tmp_path: Path) -> None:
    backup = tmp_path / "history.jsonl"
    backup.write_bytes(b'{"kind": "signal", "signal_id": "yesterday"}\n')
    before = backup.read_bytes()
    proc = subprocess.run(
        [sys.executable, "-c", SLOW_EXPORT, str(backup)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # the old code died of the signal (-15) and left .history.jsonl.partial-PID beside it
    assert proc.returncode == 130, (proc.returncode, proc.stderr)
    assert proc.returncode != -signal.SIGTERM
    assert f"stopped before the end; {backup} was left as it was" in proc.stderr
    assert backup.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.jsonl"]
