"""A sweep's candidates across trading strategies, and the Deflated Sharpe Ratio of its choice.

Every stored cell (one forecast: symbol, augmentation, covariates, fine-tuning) carries the trading
results of every ``--strategy`` on each split, so a strategy is a second dimension of the candidates
without another forecast: the candidates are the (cell label, strategy) pairs, label-major in the
sweep's tie-break order (``none`` first), strategies in the order given. They are ranked on the
selection metric (:func:`chronobt.runs.choice.split_score`): a trading metric (``sharpe``, ``sortino``,
``calmar``, ``total_return``) reads each pair's own trading results; a forecast metric scores every
strategy of a label alike, so the tie goes to the first strategy.

The chosen pair's test Sharpe is deflated (Bailey & López de Prado, 2014,
:func:`chronobt.evaluation.trading_stats.deflated_sharpe_ratio`) for the selection that produced it:
the number of trials is every pair with a validation Sharpe (a cell that only copies another's
forecast, ``equivalent_to``, is no separate trial), and the Sharpe variance is the sample variance
(``ddof=1``) of their per-period validation Sharpes (0 for one trial).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from chronobt.config import SweepConfig
from chronobt.evaluation.trading_stats import deflated_sharpe_ratio
from chronobt.runs.choice import SPLITS, split_score
from chronobt.runs.leaderboard import rank_specs, symbol_rows

Pair = tuple[str, str]
#: The trading results of each leaderboard row (its strategy's, on its split).
TRADING_COLUMNS = ("sharpe", "sortino", "calmar", "total_return", "n_trades", "psr")


def candidates(cells: Mapping[str, Any], config: SweepConfig) -> list[Pair]:
    """The (label, strategy) pairs in tie-break order: label-major, strategies as given."""
    return [(label, strategy) for label in cells for strategy in config.strategies]


def rank_candidates(
    cells: Mapping[str, Mapping[str, Any]], config: SweepConfig
) -> tuple[Pair, dict[str, dict[Pair, int]]]:
    """The selected pair (rank 1 on validation) and the ranks ``{split: {pair: rank}}``."""
    pairs = candidates(cells, config)
    ranks = {
        split: dict(
            zip(
                pairs,
                rank_specs(
                    [split_score(cells[label], split, config, strategy) for label, strategy in pairs],
                    higher_is_better=config.higher_is_better,
                ),
                strict=True,
            )
        )
        for split in SPLITS
    }
    best = next(p for p in pairs if ranks["validation"][p] == 1)
    return best, ranks


def _trading(cell: Mapping[str, Any], split: str, strategy: str) -> Mapping[str, Any]:
    return ((cell["splits"][split].get("trading") or {}).get(strategy)) or {}


def deflated_sharpe(
    cells: Mapping[str, Mapping[str, Any]], best: Pair, config: SweepConfig
) -> dict[str, Any]:
    """The chosen pair's test Sharpe, PSR and Deflated Sharpe Ratio with the trials behind it.

    ``{"strategy", "sharpe", "psr", "dsr", "n_trials", "sharpe_variance", "reason"}``; ``dsr`` is
    ``None`` with a ``reason`` when no trial has a validation Sharpe or the test Sharpe is undefined.
    """
    trials = [
        float(sr)
        for label, strategy in candidates(cells, config)
        if not cells[label].get("equivalent_to")
        for sr in [_trading(cells[label], "validation", strategy).get("sharpe_period")]
        if sr is not None and math.isfinite(sr)
    ]
    variance = float(np.var(trials, ddof=1)) if len(trials) > 1 else 0.0
    test = _trading(cells[best[0]], "test", best[1])
    moments = [test.get(k) for k in ("sharpe_period", "n_periods", "skew", "kurtosis")]
    dsr, reason = None, None
    if not trials:
        reason = "no candidate has a validation Sharpe (fewer than two trades, or no trading view)"
    elif any(m is None for m in moments):
        reason = "the chosen strategy's test Sharpe is undefined (fewer than two trades or no variation)"
    else:
        sr, n, skew, kurt = moments
        dsr = deflated_sharpe_ratio(float(sr), len(trials), variance, int(n), float(skew), float(kurt))  # type: ignore[arg-type]
        reason = None if dsr is not None else "the PSR's denominator is not positive"
    return {
        "strategy": best[1],
        "sharpe": test.get("sharpe"),
        "psr": test.get("psr"),
        "dsr": dsr,
        "n_trials": len(trials),
        "sharpe_variance": variance,
        "reason": reason,
    }


def candidate_rows(
    symbol: str,
    cells: Mapping[str, Mapping[str, Any]],
    best: Pair,
    ranks: Mapping[str, Mapping[Pair, int]],
    config: SweepConfig,
    dsr: float | None,
) -> list[dict[str, Any]]:
    """The leaderboard rows of one symbol: per split, every (label, strategy) pair, with its strategy's
    trading results; ``dsr`` on the selected pair's test row."""
    rows: list[dict[str, Any]] = []
    for strategy in config.strategies:
        own = {split: {label: ranks[split][(label, strategy)] for label in cells} for split in SPLITS}
        chosen = best[0] if strategy == best[1] else None
        for row in symbol_rows(symbol, cells, chosen or "", own, config):  # "": no label selected
            trading = _trading(cells[row["preaug"]], row["split"], strategy)
            row.update(strategy=strategy, **{k: trading.get(k) for k in TRADING_COLUMNS})
            row["dsr"] = dsr if row["selected"] and row["split"] == "test" else None
            rows.append(row)
    order = {split: i for i, split in enumerate(SPLITS)}
    return sorted(rows, key=lambda r: order[r["split"]])  # stable: strategies, then labels, per split


def choice_extra(
    cells: Mapping[str, Mapping[str, Any]], best: Pair, config: SweepConfig, deflated: Mapping[str, Any]
) -> dict[str, Any]:
    """What ``best/<SYMBOL>.json`` adds for the strategies: the chosen one, the validation scores of
    every pair (``{strategy: {label: score}}``), the chosen pair's test trading results and the DSR."""
    return {
        "best_strategy": best[1],
        "strategies": list(config.strategies),
        "validation": {
            label: _finite(split_score(cell, "validation", config, best[1])) for label, cell in cells.items()
        },
        "validation_by_strategy": {
            s: {label: _finite(split_score(c, "validation", config, s)) for label, c in cells.items()}
            for s in config.strategies
        },
        "test_trading": dict(_trading(cells[best[0]], "test", best[1])) or None,
        "deflated_sharpe": dict(deflated),
    }


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def pair_label(pair: Sequence[str]) -> str:
    """``label · strategy`` for messages and tables."""
    return f"{pair[0]} · {pair[1]}"
