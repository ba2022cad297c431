"""`perpsignal backtest` with many inputs: the real command on real recorded slices.

A folder of three symbols' exports (XRPUSDT perp with its funding, the ETH/BTC and ADA/BTC
spot pairs), fear & greed for all, and a file no importer can read. Each symbol gets the
report its own single-symbol command writes; the summary pools them and names the bad file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from perpsignal_cli.backtesting import multi

REPO = Path(__file__).resolve().parents[3]
BAD = "broken-export.csv"


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "perpsignal_cli.main", "backtest", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
        check=False,
    )


def _head(src: Path, dst: Path, rows: int) -> Path:
    lines = src.read_text().splitlines()[: rows + 1]
    dst.write_text("\n".join(lines) + "\n")
    return dst


@pytest.fixture(scope="module")
def folder(market: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("many")
    _head(market / "XRP_USDT_USDT-5m-futures.csv", d / "XRP_USDT_USDT-5m-futures.csv", 500)
    (d / "XRP_USDT_USDT-8h-funding_rate.csv").write_text(
        (market / "XRP_USDT_USDT-8h-funding_rate.csv").read_text()
    )
    _head(market / "ETH_BTC-5m.csv", d / "ETH_BTC-5m.csv", 500)
    _head(market / "ADA_BTC-5m.csv", d / "ADA_BTC-5m.csv", 500)
    (d / "alternative_me-fear_greed-1d.csv").write_text(
        (market / "alternative_me-fear_greed-1d.csv").read_text()
    )
    (d / BAD).write_text("this is not,an export\nat,all\n")
    return d


def _reports(out: Path) -> dict[str, Any]:
    """Each symbol's report.json without its time stamp (and signals.jsonl when written)."""
    found: dict[str, Any] = {}
    for path in sorted(out.glob("*/report.json")):
        data = json.loads(path.read_text())
        data.pop("generated", None)
        stream = path.parent / "signals.jsonl"
        if stream.is_file():
            data["_signals_jsonl"] = stream.read_text()
        found[path.parent.name] = data
    return found


@pytest.fixture(scope="module")
def runs(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    out = tmp_path_factory.mktemp("out")
    done = {}
    for jobs in (2, 1):
        proc = cli(folder, "--out", out / f"j{jobs}", "--jobs", str(jobs), "--quiet")
        assert proc.returncode == 0, proc.stderr
        done[jobs] = out / f"j{jobs}"
    return done


def test_a_folder_runs_every_symbol_and_names_the_bad_file(runs: dict[int, Path]) -> None:
    out = runs[2]
    summary = json.loads((out / "summary.json").read_text())
    assert [s["symbol"] for s in summary["symbols"]] == ["ADABTC", "ETHBTC", "XRPUSDT"]
    assert all(s["status"] == "ok" and s["signals"] > 0 for s in summary["symbols"])
    assert summary["run"] == summary["run"] | {"ran": 3, "failed": 0, "file_errors": 1, "jobs": 2}
    bad = next(f for f in summary["files"] if f["path"].endswith(BAD))
    assert bad["status"] == "error" and BAD in bad["reason"]
    assert "not a recognised export" in bad["reason"]
    # the auxiliary inputs went where they belong: funding to XRPUSDT only, fear & greed to all
    sources = {
        sym: {s["name"]: s["path"] for s in rep["sources"]} for sym, rep in _reports(out).items()
    }
    assert sources["XRPUSDT"]["funding"] == "XRP_USDT_USDT-8h-funding_rate.csv"
    assert sources["ETHBTC"]["funding"] is None and sources["ADABTC"]["funding"] is None
    assert {s["fear_greed"] for s in sources.values()} == {"alternative_me-fear_greed-1d.csv"}
    page = (out / "index.html").read_text()
    for sym in ("ADABTC", "ETHBTC", "XRPUSDT"):
        assert (out / sym / "report.html").is_file()
        assert f'href="{sym}/report.html"' in page
    assert BAD in page and BAD in (out / "summary.md").read_text()


def test_jobs_2_gives_what_jobs_1_gives(runs: dict[int, Path]) -> None:
    one, two = _reports(runs[1]), _reports(runs[2])
    assert set(one) == {"ADABTC", "ETHBTC", "XRPUSDT"}
    assert one == two


def test_each_symbol_gets_the_report_its_own_command_writes(
    runs: dict[int, Path], folder: Path, tmp_path: Path
) -> None:
    proc = cli(
        "--symbol",
        "XRPUSDT",
        "--candles",
        folder / "XRP_USDT_USDT-5m-futures.csv",
        "--funding",
        folder / "XRP_USDT_USDT-8h-funding_rate.csv",
        "--fear-greed",
        folder / "alternative_me-fear_greed-1d.csv",
        "--out",
        tmp_path / "alone",
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    alone = json.loads((tmp_path / "alone/report.json").read_text())
    alone.pop("generated")
    assert _reports(runs[2])["XRPUSDT"] == alone | (
        {"_signals_jsonl": (tmp_path / "alone/signals.jsonl").read_text()}
        if (tmp_path / "alone/signals.jsonl").is_file()
        else {}
    )


def test_pooled_figures_add_up_the_symbols(runs: dict[int, Path]) -> None:
    summary = json.loads((runs[2] / "summary.json").read_text())
    reports = _reports(runs[2])
    for h, pooled in summary["pooled"]["performance"].items():
        rows = [
            r
            for rep in reports.values()
            for r in rep["performance"]
            if r["verdict"] == "ALL" and r["horizon"] == h and r["n"]
        ]
        assert pooled["n"] == sum(r["n"] for r in rows) and pooled["symbols"] == len(rows)
        assert pooled["win_rate"] == pytest.approx(
            sum(r["wins"] for r in rows) / pooled["n"], abs=1e-4
        )
        assert pooled["total_net_pnl_pct"] == pytest.approx(
            sum(r["total_net_pnl_pct"] for r in rows), abs=1e-3
        )
    assert "pooled" in summary["pooled"]["note"].lower()
    momentum = summary["pooled"]["factor_ic"]["momentum"]["ic"]["1h"]
    per_symbol = [rep["factor_diagnostics"]["momentum"]["ic"]["1h"] for rep in reports.values()]
    used = [p for p in per_symbol if p["ci95"]]
    assert momentum["symbols"] == len(used) >= 2
    # an inverse-variance mean lies between the symbols' ICs, its interval inside the widest
    assert min(p["ic"] for p in used) <= momentum["ic"] <= max(p["ic"] for p in used)
    widest = max(p["ci95"][1] - p["ci95"][0] for p in used)
    assert momentum["ci95"][1] - momentum["ci95"][0] < widest


def test_a_list_file_assigns_symbols_and_a_refused_file_leaves_the_symbol_running(
    folder: Path, market: Path, tmp_path: Path
) -> None:
    """Hyperliquid's liquidation list, given to XRPUSDT by the list, is refused with its
    reason; XRPUSDT still runs on its other inputs and the run succeeds."""
    listing = tmp_path / "inputs.txt"
    listing.write_text(
        "# symbol inputs\n"
        f"{folder / 'XRP_USDT_USDT-5m-futures.csv'}\n"
        f"{market / 'hyperliquid-liquidations-2023.csv'} symbol=XRPUSDT\n"
        f"{folder / 'ETH_BTC-5m.csv'} symbol=ETHBTC kind=candles\n"
    )
    proc = cli("--list", listing, "--out", tmp_path / "out", "--jobs", "2", "--quiet")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    assert {s["symbol"]: s["status"] for s in summary["symbols"]} == {
        "ETHBTC": "ok",
        "XRPUSDT": "ok",
    }
    hl = next(f for f in summary["files"] if f["path"].endswith("liquidations-2023.csv"))
    assert hl["status"] == "error" and "neither the coin nor the side" in hl["reason"]
    xrp = next(s for s in summary["symbols"] if s["symbol"] == "XRPUSDT")
    assert xrp["left_out"] and "liquidations" not in xrp["inputs"]


def test_nothing_to_run_exits_2_with_the_reason(folder: Path, tmp_path: Path) -> None:
    proc = cli(folder / BAD, "--out", tmp_path / "out", "--quiet")
    assert proc.returncode == 2
    assert "no candles among the inputs" in proc.stderr and BAD in proc.stderr
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    assert summary["run"]["ran"] == 0 and summary["files"][0]["status"] == "error"


def test_single_symbol_options_are_refused_with_several_inputs(
    folder: Path, tmp_path: Path
) -> None:
    proc = cli(folder, "--through-broker", "--out", tmp_path / "out")
    assert proc.returncode == 2 and "--through-broker runs one symbol" in proc.stderr


def test_the_hyperliquid_list_alone_is_refused_saying_what_is_missing(
    folder: Path, market: Path, tmp_path: Path
) -> None:
    proc = cli(
        "--symbol",
        "XRPUSDT",
        "--candles",
        folder / "XRP_USDT_USDT-5m-futures.csv",
        "--liquidations",
        market / "hyperliquid-liquidations-2023.csv",
        "--out",
        tmp_path / "out",
    )
    assert proc.returncode == 2
    assert "liquidations without a side" in proc.stderr
    assert "--columns liquidations.side=" in proc.stderr


@pytest.mark.parametrize(
    ("name", "symbol"),
    [
        ("XRP_USDT_USDT-5m-futures.csv", "XRPUSDT"),
        ("ETH_BTC-5m.csv", "ETHBTC"),
        ("binance-BTCUSDT-5m-oi_longshort_basis.csv", "BTCUSDT"),
        ("ftx-btc-perp-20211231-20220201_1m.csv", "BTCUSDT"),
        ("SOLUSDT-1m-2024-05.zip.csv", "SOLUSDT"),
        ("alternative_me-fear_greed-1d.csv", None),
    ],
)
def test_symbols_are_read_from_file_names(name: str, symbol: str | None) -> None:
    assert multi.symbol_from_name(Path(name)) == symbol


@pytest.mark.parametrize(
    ("name", "kinds"),
    [
        ("XRP_USDT_USDT-5m-futures.csv", ["candles"]),
        ("ftx-btc-perp-20211231-20220201_1m.csv", ["candles"]),
        ("XRP_USDT_USDT-8h-funding_rate.csv", ["funding"]),
        ("XRP_USDT_USDT-1h-mark.csv", ["mark"]),
        ("binance-BTCUSDT-5m-oi_longshort_basis.csv", ["open_interest", "long_short"]),
        ("alternative_me-fear_greed-1d.csv", ["fear_greed"]),
        ("hyperliquid-liquidations-2023.csv", ["liquidations"]),
    ],
)
def test_recorded_exports_are_recognised_by_their_columns(
    market: Path, name: str, kinds: list[str]
) -> None:
    assert multi.recognise(market / name) == kinds


def test_a_funding_export_under_a_plain_name_is_still_funding(market: Path, tmp_path: Path) -> None:
    """Recognition reads the columns: `time,rate` is funding whatever the file is called."""
    renamed = tmp_path / "XRPUSDT-8h.csv"
    renamed.write_text((market / "XRP_USDT_USDT-8h-funding_rate.csv").read_text())
    assert multi.recognise(renamed) == ["funding"]


def test_of_two_candle_files_the_finest_is_used_whatever_their_names(
    market: Path, tmp_path: Path
) -> None:
    """XRP/ETH 1m and 5m, the 1m one under a name without a timeframe: it is still chosen."""
    (tmp_path / "XRP_ETH.csv").write_text((market / "XRP_ETH-1m.csv").read_text())
    (tmp_path / "XRP_ETH-5m.csv").write_text((market / "XRP_ETH-5m.csv").read_text())
    the_plan = multi.plan([(tmp_path, None, None)], tmp_path / "out", [])
    assert [(j.symbol, Path(j.candles).name) for j in the_plan.jobs] == [("XRPETH", "XRP_ETH.csv")]
    skipped = next(f for f in the_plan.files if f.path.endswith("XRP_ETH-5m.csv"))
    assert skipped.status == "skipped" and "finer candles (XRP_ETH.csv)" in (skipped.reason or "")


def test_a_columns_pair_is_checked_against_every_input_of_the_run(
    market: Path, tmp_path: Path
) -> None:
    """`close=last` is for ADA's file only: ETH's run reads its own `close` (one symbol's
    files need not have every pair's column); a pair no input has is refused, naming them."""
    d = tmp_path / "in"
    d.mkdir()
    _head(market / "ETH_BTC-5m.csv", d / "ETH_BTC-5m.csv", 300)
    ada = (market / "ADA_BTC-5m.csv").read_text().splitlines()[:301]
    assert ada[0] == "open_time,open,high,low,close,volume"
    (d / "ADA_BTC-5m.csv").write_text("\n".join(["open_time,open,high,low,last,volume", *ada[1:]]))
    ok = cli(d, "--columns", "close=last", "--out", tmp_path / "ok", "--quiet", "--jobs", "1")
    assert ok.returncode == 0, ok.stderr
    summary = json.loads((tmp_path / "ok" / "summary.json").read_text())
    status = {s["symbol"]: s["status"] for s in summary["symbols"]}
    assert status == {"ADABTC": "ok", "ETHBTC": "ok"}
    typo = cli(d, "--columns", "close=lsat", "--out", tmp_path / "typo", "--quiet", "--jobs", "1")
    assert typo.returncode == 2
    last = typo.stderr.splitlines()[-1]
    assert last.startswith("perpsignal backtest: --columns close=lsat: no input file has")
    assert "ADA_BTC-5m.csv: open_time, open, high, low, last, volume" in last
