"""`perpsignal calibrate` that cannot write its result: one line, the result still printed,
and the previous calibration.json / calibrated.env pair left as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from perpsignal_cli import calibrate


def test_an_unwritable_result_leaves_the_previous_pair_and_prints_the_result(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cal"
    out.mkdir()
    (out / "calibration.json").write_text("previous run\n")
    (out / "calibrated.env").mkdir()  # cannot be replaced by a file (as a full disk cannot)
    market = shared_data / "market"
    argv = ["--symbol", "XRPUSDT", "--candles", str(market / "XRP_USDT_USDT-5m-futures.csv")]
    rc = calibrate.main([*argv, "--trials", "2", "--out", str(out)])
    captured = capsys.readouterr()
    # the old code replaced calibration.json, then failed on calibrated.env with a traceback,
    # leaving a new report beside the previous run's settings (the file a user applies)
    assert (out / "calibration.json").read_text() == "previous run\n"
    assert rc == 1
    assert captured.err.strip() == (
        f"perpsignal calibrate: cannot write {out / 'calibrated.env'}: Is a directory; "
        f"nothing in {out} was replaced"
    )
    assert "fitted on the most recent window: SCORER_WEIGHTS=" in captured.out  # still shown
    assert sorted(p.name for p in out.iterdir()) == ["calibrated.env", "calibration.json"]
