"""`perpsignal calibrate` refuses counts and numbers that make no sense while it parses them,
in one line naming the flag, before it imports or scores anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from perpsignal_cli import calibrate


@pytest.mark.parametrize(
    "flags",
    [
        ["--min-signals", "-5"],  # ran the whole search with no floor at all
        ["--min-signals", "0"],
        ["--min-signals", "2.5"],
        ["--trials", "0"],
        ["--trials", "-1"],
        ["--folds", "-3"],
        ["--fee-bp", "nan"],
        ["--fee-bp", "-1"],
        ["--slippage-bp", "nan"],
        ["--slippage-bp", "inf"],
    ],
)
def test_a_negative_zero_or_nan_option_is_refused_by_the_parser(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str]
) -> None:
    argv = ["--symbol", "XRPUSDT", "--candles", str(tmp_path / "none.csv"), "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        calibrate.main([*argv, *flags])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    # argparse's usage line, then one line naming the flag and the value refused
    assert err[-1].startswith(f"perpsignal calibrate: error: argument {flags[0]}:")
    assert flags[1] in err[-1]


@pytest.mark.parametrize(
    ("flag", "value", "parsed"),
    [("--folds", "0", 0), ("--fee-bp", "0", 0.0), ("--min-signals", "1", 1)],
)
def test_zero_costs_and_every_fold_are_still_accepted(flag: str, value: str, parsed: float) -> None:
    args = calibrate.build_parser().parse_args(
        ["--symbol", "XRPUSDT", "--candles", "c.csv", flag, value]
    )
    assert getattr(args, flag[2:].replace("-", "_")) == parsed
