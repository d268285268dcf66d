#!/usr/bin/env python3
"""Replay a data file one bar per run, as a live feed would: append SOURCE's next bar to TARGET.

    grow_one_bar.py SOURCE.parquet DATA_DIR/SYMBOL.parquet [--start N]

The first run writes SOURCE's first N bars (default 300); each later run appends the bar after TARGET's
last timestamp. The file is replaced atomically (written beside it, then renamed), so a forecast reading
it never sees half a file. Prints the new last timestamp; exits 1 when SOURCE has no further bar.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--start", type=int, default=300, help="bars written by the first run")
    args = parser.parse_args()
    source = pd.read_parquet(args.source)
    stamps = pd.to_datetime(source["timestamp"], utc=True)
    if args.target.exists():
        last = pd.to_datetime(
            pd.read_parquet(args.target, columns=["timestamp"])["timestamp"], utc=True
        ).max()
        n = int((stamps <= last).sum()) + 1
    else:
        n = args.start
    if n > len(source):
        print(f"{args.source}: no bar after {stamps.iloc[-1]}", file=sys.stderr)
        return 1
    args.target.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.target.with_name(f".{args.target.name}.grow.tmp")
    source.iloc[:n].to_parquet(tmp, index=False)
    os.replace(tmp, args.target)
    print(stamps.iloc[n - 1].isoformat())
    return 0


if __name__ == "__main__":
    sys.exit(main())
