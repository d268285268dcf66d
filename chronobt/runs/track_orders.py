"""A track's strategy orders scored live: every archived forecast's own ``orders``, filled as a backtest
fills.

``forecast --strategy`` records in each index entry the order of every strategy for the bars after its
origin (:func:`chronobt.evaluation.strategies.next_orders`: side, size and the ``limit``, ``target`` and
``stop`` prices, re-priced per bar in ``steps``). Once every bar of a forecast's horizon has arrived, each
of its orders is filled by :func:`chronobt.evaluation.fills.fill` against the data file's bars after its
origin (the origin's bar and the ``horizon`` bars after it, as a backtest cuts them), and charged by
:func:`chronobt.evaluation.fills.trade_returns` with the costs the forecast recorded (``fee_bps``,
``slippage_bps``; ``borrow_rate`` and ``entry`` when recorded, else 0 and ``next-open``, the market
order's "at the next bar's open"). Every forecast is scored, not only the backtest's non-overlapping
decision grid (that is ``trading``).

The same orders are decided again (:func:`chronobt.evaluation.strategies.decide`) from the archived
quantiles (the ledger's) and the origin's close in the data file as it is now, with the recorded costs and
``allow_short``; an order that differs from the recorded one (a revised bar, a changed strategy rule) is
counted in ``decisions``.

``orders.parquet``: one row per (complete forecast, recorded order), strategies in the order first
recorded, then by origin; columns :data:`ORDER_COLUMNS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from chronobt.data import OHLC
from chronobt.errors import ConfigError
from chronobt.evaluation.fills import REASONS, Bars, Costs, fill, trade_returns
from chronobt.evaluation.strategies import ForecastView, Orders, Strategy, decide, parse_strategies
from chronobt.evaluation.trading import TRADE_COLUMNS
from chronobt.runs.results import quantile_column
from chronobt.runs.track_ledger import Shape, complete_files

#: ``orders.parquet``'s columns: the backtest's trade columns (``side`` also ``flat``; prices and times
#: null, returns and costs 0 for an order not filled), then ``order`` (``market`` or ``limit``),
#: ``filled`` (a position was entered), ``tradable`` (the bars it needs are real), ``agrees`` (deciding
#: again gives the recorded order), ``revised``, ``issued_at`` and ``file``.
ORDER_COLUMNS = (
    *TRADE_COLUMNS,
    "order",
    "filled",
    "tradable",
    "agrees",
    "revised",
    "issued_at",
    "file",
)
_SIDES = {"long": 1, "short": -1, "flat": 0}


def score_orders(
    ledger: pd.DataFrame, ohlc: OHLC, shape: Shape, entries: Sequence[Mapping[str, Any]], *, fee_bps: float
) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    """``orders.parquet``'s rows and ``metrics.json``'s ``orders`` block (``None`` when no entry of
    ``entries`` carries orders); ``fee_bps`` stands in for a forecast that recorded none."""
    carrying = [e for e in entries if e.get("orders")]
    if not carrying:
        return _frame([]), None
    index = pd.DatetimeIndex(ohlc.frame.index)
    complete = set(complete_files(ledger))
    at = index.get_indexer(pd.DatetimeIndex([pd.Timestamp(e["origin"]) for e in carrying]))
    ready = [
        (e, int(p))
        for e, p in zip(carrying, at, strict=True)
        if str(e["file"]) in complete and p >= 0 and p + shape.horizon < len(index)
    ]
    ready.sort(key=lambda x: (x[1], str(x[0]["file"])))
    quantiles = _archived_quantiles(ledger, [str(e["file"]) for e, _ in ready], shape)
    revised = ledger.groupby("file", sort=False)["revised"].any() if len(ledger) else pd.Series(dtype=bool)
    labels = list(dict.fromkeys(str(o["strategy"]) for e in carrying for o in e["orders"]))
    parts, block = [], {}
    for label in labels:
        pairs = [(i, o) for i, (e, _) in enumerate(ready) for o in e["orders"] if o["strategy"] == label]
        frame = _strategy_rows(label, pairs, ready, quantiles, ohlc, shape, fee_bps=fee_bps)
        frame["revised"] = frame["file"].map(revised).fillna(False).astype(bool)
        pending = sum(1 for e in carrying for o in e["orders"] if o["strategy"] == label) - len(pairs)
        block[label] = _summary(frame, pending)
        parts.append(frame)
    return _frame(parts), block


def _archived_quantiles(ledger: pd.DataFrame, files: list[str], shape: Shape) -> np.ndarray:
    """``[w, v, Q, h]``: the archived quantiles of ``files`` from the ledger."""
    out = np.full((len(files), len(shape.targets), len(shape.levels), shape.horizon), np.nan)
    rows = ledger[ledger["file"].isin(files)]
    w = pd.Index(files).get_indexer(rows["file"])
    v = pd.Index(list(shape.targets)).get_indexer(rows["target"])
    s = rows["step"].to_numpy(dtype=np.int64) - 1
    for k, level in enumerate(shape.levels):
        out[w, v, k, s] = rows[quantile_column(level)].to_numpy(dtype=np.float64)
    return out


def recorded_orders(orders: Sequence[Mapping[str, Any]], horizon: int) -> Orders:
    """Recorded order dicts (one per window) as :class:`Orders`: a price without ``steps`` holds for
    every bar of the horizon, a missing one is NaN; a flat order has no prices."""
    n = len(orders)
    side = np.array([_SIDES[str(o["side"])] for o in orders], dtype=np.int8)
    size = np.array([float(o["size"]) for o in orders], dtype=np.float64)
    prices = {k: np.full((n, horizon), np.nan) for k in ("limit", "target", "stop")}
    for i, o in enumerate(orders):
        steps = o.get("steps") or {}
        for key, values in prices.items():
            if not side[i]:
                continue
            if steps.get(key) is not None:
                values[i] = [np.nan if x is None else float(x) for x in steps[key]]
            elif o.get(key) is not None:
                values[i] = float(o[key])
    return Orders(side=side, size=size, **prices)


def _settings(entry: Mapping[str, Any], fee_bps: float) -> tuple[str, Costs, bool]:
    """The recorded fill settings of a forecast: market entry, costs, whether shorts were allowed."""
    c = entry.get("config") or {}
    recorded_fee = c.get("fee_bps")
    costs = Costs(
        fee_bps=float(fee_bps if recorded_fee is None else recorded_fee),
        slippage_bps=float(c.get("slippage_bps") or 0.0),
        borrow_rate=float(c.get("borrow_rate") or 0.0),
    )
    return str(c.get("entry") or "next-open"), costs, bool(c.get("allow_short", False))


def _strategy_rows(
    label: str,
    pairs: list[tuple[int, Mapping[str, Any]]],
    ready: list[tuple[Mapping[str, Any], int]],
    quantiles: np.ndarray,
    ohlc: OHLC,
    shape: Shape,
    *,
    fee_bps: float,
) -> pd.DataFrame:
    """One strategy's rows: its recorded orders filled, charged and decided again."""
    if not pairs:
        return _frame([])
    h = shape.horizon
    w = np.array([i for i, _ in pairs], dtype=np.int64)
    orders = recorded_orders([o for _, o in pairs], h)
    rows = np.array([ready[i][1] for i in w], dtype=np.int64)[:, None] + np.arange(h + 1)  # [n, h + 1]
    frame = ohlc.frame
    prices = {c: frame[c].to_numpy(dtype=np.float64)[rows] for c in ("open", "high", "low", "close")}
    bars = Bars(**prices, real=~np.asarray(ohlc.filled, dtype=bool)[rows])
    n = len(pairs)
    entry_bar, exit_bar = np.full(n, -1), np.full(n, -1)
    out = {k: np.full(n, np.nan) for k in ("entry", "exit", "gross", "net", "costs")}
    reason = np.zeros(n, dtype=np.int8)
    traded, tradable, agrees = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
    strategy = _strategy(label)
    settings = [_settings(ready[i][0], fee_bps) for i in w]
    for key in dict.fromkeys(settings):
        g = np.flatnonzero([s == key for s in settings])
        mode, costs, allow_short = key
        sub = Orders(*(getattr(orders, f)[g] for f in ("side", "size", "limit", "target", "stop")))
        sub_bars = Bars(*(getattr(bars, f)[g] for f in ("open", "high", "low", "close", "real")))
        f = fill(sub, sub_bars, entry=mode)  # type: ignore[arg-type]
        r = trade_returns(sub, f, costs, bars_per_year=ohlc.bars_per_year)
        entry_bar[g], exit_bar[g], reason[g] = f.entry_bar, f.exit_bar, f.reason
        traded[g], tradable[g] = f.traded, f.tradable
        out["entry"][g], out["exit"][g], out["gross"][g], out["net"][g] = (
            f.entry_price,
            np.where(f.traded, f.exit_price, np.nan),
            r.gross,
            r.net,
        )
        out["costs"][g] = np.where(f.traded, r.fees + r.slippage + r.borrow, 0.0)
        view = ForecastView(
            price_q=quantiles[w[g]],
            targets=shape.targets,
            levels=shape.levels,
            reference=prices["close"][g, 0],
        )
        if strategy is not None:
            agrees[g] = _same(sub, decide(strategy, view, cost=costs.per_side, allow_short=allow_short))
    times = pd.DatetimeIndex(frame.index).tz_convert("UTC").tz_localize(None).to_numpy()[rows]
    take = np.arange(n)
    return pd.DataFrame(
        {
            "strategy": label,
            "origin": pd.to_datetime([ready[i][0]["origin"] for i in w], utc=True),
            "side": np.array(["flat", "long", "short"], dtype=object)[orders.side],
            "size": orders.size,
            "entry_time": _when(times[take, np.maximum(entry_bar, 0)], traded),
            "entry": out["entry"],
            "exit_time": _when(times[take, np.maximum(exit_bar, 0)], traded),
            "exit": out["exit"],
            "exit_reason": np.asarray(REASONS, dtype=object)[reason],
            "costs": out["costs"],
            "gross_return": out["gross"],
            "net_return": out["net"],
            "order": np.where(np.isfinite(orders.limit).any(axis=1), "limit", "market").astype(object),
            "filled": traded,
            "tradable": tradable,
            "agrees": agrees,
            "revised": False,
            "issued_at": pd.to_datetime([ready[i][0]["issued_at"] for i in w], utc=True),
            "file": np.array([str(ready[i][0]["file"]) for i in w], dtype=object),
        },
        columns=list(ORDER_COLUMNS),
    )


def _strategy(label: str) -> Strategy | None:
    """The strategy a recorded order names; ``None`` (its orders filled, never agreeing) when this version
    does not know it."""
    try:
        return parse_strategies(label)[0]
    except ConfigError:
        return None


def _same(recorded: Orders, again: Orders) -> np.ndarray:
    """``[w]``: the same side and size and, for an order placed, the same prices at every bar."""
    same = (recorded.side == again.side) & (recorded.size == again.size)
    placed = again.side != 0
    for key in ("limit", "target", "stop"):
        a, b = getattr(recorded, key), getattr(again, key)
        equal = ((a == b) | (np.isnan(a) & np.isnan(b))).all(axis=1)
        same &= equal | ~placed
    return same


def _when(stamps: np.ndarray, traded: np.ndarray) -> pd.DatetimeIndex:
    """Bar times (UTC), null where nothing traded."""
    return pd.DatetimeIndex(np.where(traded, stamps, np.datetime64("NaT"))).tz_localize("UTC")


def _summary(frame: pd.DataFrame, pending: int) -> dict[str, Any]:
    """One strategy's ``orders`` block (see the README's ``metrics.json`` keys)."""
    placed = (frame["side"] != "flat").to_numpy()
    filled = frame[frame["filled"].to_numpy(dtype=bool)]
    net = filled["net_return"].to_numpy(dtype=np.float64)
    differ = frame.loc[~frame["agrees"].to_numpy(dtype=bool), "file"].tolist()
    return {
        "forecasts": len(frame),
        "pending": int(pending),
        "n_orders": int(placed.sum()),
        "n_filled": len(filled),
        "untradable": int((placed & ~frame["tradable"].to_numpy(dtype=bool)).sum()),
        "mean_net_return": float(net.mean()) if net.size else None,
        "hit_rate": float((net > 0).mean()) if net.size else None,
        "total_net_return": float(net.sum()),
        "total_costs": float(filled["costs"].sum()),
        "exits": {r: int((filled["exit_reason"] == r).sum()) for r in REASONS[1:]},
        "decisions": {"agree": len(frame) - len(differ), "differ": len(differ), "files": differ},
    }


def _frame(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ORDER_COLUMNS})
    return pd.concat(parts, ignore_index=True)
