"""The sweep's choice per symbol, ``<output-dir>/sweep/best/<SYMBOL>.json``: written and read here.

A sweep writes it (:func:`build_choice`, :func:`write_choice`); ``--preaug auto`` in backtest and forecast
reads it (:func:`resolve_preaug`) under the loaded symbol's name and checks that it still applies
(:func:`choice_differences`): bars appended after the sweep's last bar are fine; replaced or truncated
data, another horizon, context, target set or model is one warning line (an error with ``strict``).

A choice can be a fine-tuned cell (``best_finetune``: ``lora``/``full``, from ``sweep --finetune``). A
run reads it only when it fine-tunes the same way (``--finetune`` of that mode: the backtest then writes
the fine-tuned results beside the zero-shot ones, the forecast uses the fine-tuned model); otherwise it is
an error naming the option to add, since training is never started implicitly. Other fine-tune settings
(steps, learning rate, context, batch, per symbol) than the sweep's are a difference like the horizon.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chronobt.atomic import write_json_atomic
from chronobt.augment import parse_augmentation
from chronobt.config import TRADING_METRICS, RunOptions, SweepConfig
from chronobt.data import OHLC
from chronobt.errors import ConfigError, DataError
from chronobt.finetune.training import FinetuneSettings
from chronobt.pipeline.covariates import RunLabel, covariates_label, equivalent_label, parse_covariates
from chronobt.publish import read_published
from chronobt.runs.cells import against
from chronobt.runs.results import data_record

logger = logging.getLogger(__name__)

SPLITS = ("validation", "test")
NONE = "none"
#: Fine-tune settings a run must share with the sweep for its fine-tuned choice to apply unchanged.
RECIPE = ("steps", "learning_rate", "context", "batch_size", "per_symbol")


class StaleChoiceError(DataError):
    """``--preaug auto --strict-auto``: the sweep's choice was made on other data or another setup."""


@dataclass(frozen=True)
class ResolvedPreaug:
    """What ``--preaug`` resolved to for one symbol.

    Attributes
    ----------
    spec : the augmentation to run (canonical spec).
    choice : the ``best/<SYMBOL>.json`` payload when ``spec`` came from a sweep, else ``None``.
    differences : what differs between the sweep and this run (empty when the choice still applies).
    covariates : the covariates to run with: the sweep's chosen set with ``auto`` (when the sweep
        recorded one), else ``--covariates``.
    finetune : ``lora``/``full`` when the sweep chose a fine-tuned cell, else ``None``.
    """

    spec: str
    choice: dict[str, Any] | None = None
    differences: tuple[str, ...] = field(default=())
    covariates: tuple[str, ...] = ()
    finetune: str | None = None

    def selection_span(self, ohlc: OHLC) -> tuple[int, int] | None:
        """Bar indices ``(first origin, last future bar)`` of the sweep's validation windows in ``ohlc``.

        ``None`` without a choice, or when the span's origins are not bars of ``ohlc`` (other data).
        """
        if self.choice is None:
            return None
        try:
            part = self.choice["splits"]["validation"]
            horizon = int(self.choice["config"]["horizon"])
            first, last = (pd.Timestamp(part[k]) for k in ("first_origin", "last_origin"))
        except (KeyError, TypeError, ValueError):
            return None
        index = ohlc.frame.index
        at = index.get_indexer(pd.DatetimeIndex([first, last]))
        if (at < 0).any():
            return None
        return int(at[0]), int(at[1]) + horizon

    def start_after_selection(self, ohlc: OHLC) -> int | None:
        """The bar index of the earliest origin whose scored bars all lie after the selection span.

        An origin at the span's last bar forecasts only later bars; ``len(ohlc)`` (no origin) when the
        span reaches past the data. ``None`` without a span.
        """
        span = self.selection_span(ohlc)
        if span is None:
            return None
        return min(span[1], len(ohlc.frame.index))


def auto_record(
    resolved: ResolvedPreaug, ohlc: OHLC, origins: np.ndarray, *, horizon: int
) -> dict[str, Any] | None:
    """metrics.json's ``"auto"`` part: the choice, the selection span and how many of ``origins``
    [windows] (bar indices, each scoring ``origin + 1 .. origin + horizon``) score bars inside it.

    ``None`` when the spec did not come from a sweep choice.
    """
    if resolved.choice is None:
        return None
    span = resolved.selection_span(ohlc)
    record: dict[str, Any] = {
        "choice": resolved.spec,
        "finetune": resolved.finetune,
        "selection_span": None,
        "windows_in_selection_span": None,
        "differences": list(resolved.differences),
    }
    if span is not None:
        index = ohlc.frame.index
        first, last = span
        inside = (origins + 1 <= last) & (origins + horizon >= first + 1)
        record["selection_span"] = [
            index[first].isoformat(),
            index[min(last, len(index) - 1)].isoformat(),
        ]
        record["windows_in_selection_span"] = int(np.count_nonzero(inside))
    return record


def data_prefix_sha256(ohlc: OHLC, rows: int | None = None) -> str:
    """SHA-256 of the first ``rows`` bars' timestamps and close prices (all bars when ``None``)."""
    frame = ohlc.frame.iloc[: len(ohlc.frame) if rows is None else rows]
    digest = hashlib.sha256(
        np.ascontiguousarray(pd.DatetimeIndex(frame.index).asi8, dtype=np.int64).tobytes()
    )
    digest.update(np.ascontiguousarray(frame["close"].to_numpy(dtype=np.float64)).tobytes())
    return digest.hexdigest()


def choice_path(output_dir: Path, symbol: str) -> Path:
    return output_dir / "sweep" / choice_file(symbol)


def choice_file(symbol: str) -> str:
    """``best/<SYMBOL>.json``: the choice's path relative to the sweep folder."""
    return f"best/{symbol}.json"


def split_score(
    cell: Mapping[str, Any], split: str, config: SweepConfig, strategy: str | None = None
) -> float:
    """The selection metric of one cell on one split (NaN when undefined).

    A trading metric (:data:`chronobt.config.TRADING_METRICS`) is read from ``strategy``'s trading
    results (default: the first of ``config.strategies``); the others from the forecast metrics.
    """
    if config.metric in TRADING_METRICS:
        trading = cell["splits"][split].get("trading") or {}
        value = (trading.get(strategy or config.strategies[0]) or {}).get(config.metric)
    else:
        value = cell["splits"][split]["metrics"][config.target].get(config.metric)
    return math.nan if value is None else float(value)


def build_choice(
    *,
    ohlc: OHLC,
    best: str,
    cells: Mapping[str, Mapping[str, Any]],
    failed: Mapping[str, str],
    config: SweepConfig,
    model: Mapping[str, Any],
) -> dict[str, Any]:
    """The ``best/<SYMBOL>.json`` payload: the choice, its validation scores and its test report.

    ``cells`` maps every augmentation that ran to its stored cell (``{"splits": {split: {...}}}``). No
    wall-clock stamp: identical sweeps write identical bytes (the sweep's ``manifest.json`` has
    ``created_at``).
    """

    def test_scores(spec: str) -> dict[str, Any] | None:
        if spec not in cells:
            return None
        part = cells[spec]["splits"]["test"]
        return {**part["metrics"][config.target], "skill": part["skill"].get(config.target)}

    test_part = cells[best]["splits"]["test"]
    equivalent = {s: equivalent_label(s) for s in cells}
    chosen = RunLabel.parse(best)
    settings = FinetuneSettings.from_config(config)
    return {
        "symbol": ohlc.symbol,
        "best_preaug": chosen.spec,
        "best_covariates": covariates_label(chosen.covariates),
        "best_finetune": chosen.finetune,
        "best": best,
        "best_params": dict(parse_augmentation(chosen.spec).params),
        "selection_metric": config.metric,
        "selection_target": config.target,
        "higher_is_better": config.higher_is_better,
        "validation": {s: _json_float(split_score(c, "validation", config)) for s, c in cells.items()},
        "test": {
            "best": test_scores(best),
            "none": test_scores(NONE),
            "naive": {**test_part["baselines"]["naive"][config.target], "skill": 0.0},
            "significance": {
                "vs_naive": test_part["significance"][config.target]["naive"]["mae"],
                "vs_none": None if best == NONE or NONE not in cells else _against_none(cells, best, config),
            },
        },
        "splits": {
            name: {k: cells[best]["splits"][name][k] for k in ("windows", "first_origin", "last_origin")}
            for name in SPLITS
        },
        "equivalent_to": {s: e for s, e in equivalent.items() if e is not None},
        "failed": dict(failed),
        "config": {
            "horizon": config.horizon,
            "context": config.context,
            "stride": config.stride,
            "validation_windows": config.validation_windows,
            "test_windows": config.test_windows,
            "targets": list(config.targets),
            "quantiles": list(config.quantiles),
            "seed": config.seed,
            "finetune": None if settings is None else settings.record(),
            "candidates": list(cells),
        },
        "model": {"id": model.get("id"), "checksum": model.get("checksum")},
        "data": {**data_record(ohlc, calendar=False), "prefix_sha256": data_prefix_sha256(ohlc)},
    }


def _against_none(cells: Mapping[str, Mapping[str, Any]], best: str, config: SweepConfig) -> dict[str, Any]:
    return against(cells[best], cells[NONE], "test", config)


def write_choice(folder: Path, payload: Mapping[str, Any], *, root: Path) -> Path:
    """Write ``payload`` to ``folder/best/<SYMBOL>.json`` (``folder``: the sweep folder or the staging
    folder of its publish, :mod:`chronobt.publish`; ``root``: the output folder)."""
    return write_json_atomic(folder / choice_file(str(payload["symbol"])), payload, root=root)


def read_choice(output_dir: Path, symbol: str) -> dict[str, Any] | None:
    """The stored choice for ``symbol``, or ``None`` when no sweep chose for it.

    Read as published (:func:`chronobt.publish.read_published`): the choice agrees with the
    leaderboard beside it even after a sweep killed while publishing. Raises :class:`ConfigError` for a
    file that exists but cannot be read.
    """
    path = choice_path(output_dir, symbol)
    try:
        payload = json.loads(read_published(path.parent.parent, choice_file(symbol), Path.read_text))
        str(payload["best_preaug"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path}: unreadable sweep result ({exc}); rerun `chronobt sweep {symbol}`"
        ) from None
    if not isinstance(payload, dict):
        raise ConfigError(f"{path}: unreadable sweep result (not an object); rerun `chronobt sweep {symbol}`")
    return payload


def choice_differences(
    payload: Mapping[str, Any], ohlc: OHLC, options: RunOptions, model: Mapping[str, Any]
) -> tuple[str, ...]:
    """What differs between the sweep that wrote ``payload`` and a run on ``ohlc`` with ``options``.

    Bars appended after the sweep's last bar are not a difference: the current series must start at the
    sweep's first bar, hold the sweep's last bar at the same position and (when the payload has its hash)
    the same timestamps and close prices up to it.
    """
    found: list[str] = []
    data = payload.get("data") or {}
    index = ohlc.frame.index
    try:
        rows, first, last = int(data["rows"]), pd.Timestamp(data["first"]), pd.Timestamp(data["last"])
    except (KeyError, TypeError, ValueError):
        found.append("data (the sweep result records no data fingerprint)")
    else:
        if index[0] != first:
            found.append(f"data (first bar {index[0].isoformat()}, the sweep's was {first.isoformat()})")
        elif len(index) < rows or index[rows - 1] != last:
            found.append(
                f"data ({len(index)} bars up to {index[-1].isoformat()}; the sweep's {rows} bars up to "
                f"{last.isoformat()} are not all there: truncated or replaced)"
            )
        elif data.get("prefix_sha256") and data["prefix_sha256"] != data_prefix_sha256(ohlc, rows):
            found.append(f"data (bars up to {last.isoformat()} changed since the sweep)")
    swept = payload.get("config") or {}
    for name, now in (
        ("horizon", options.horizon),
        ("context", options.context),
        ("targets", list(options.targets)),
    ):
        then = swept.get(name)
        if then is not None and then != now:
            show = (lambda v: ",".join(v)) if name == "targets" else str
            found.append(f"{name} {show(now)} (the sweep's was {show(then)})")
    mode = payload.get("best_finetune")
    settings = FinetuneSettings.from_config(options)
    then_tune = swept.get("finetune") or {}
    if mode and settings is not None and settings.mode == mode and then_tune:
        now_tune = settings.record()
        for name in RECIPE:
            if name in then_tune and then_tune[name] != now_tune[name]:
                found.append(f"finetune {name} {now_tune[name]} (the sweep's was {then_tune[name]})")
    then_model = (payload.get("model") or {}).get("checksum")
    now_model = model.get("checksum")
    if then_model and now_model and then_model != now_model:
        found.append(f"model sha256 {str(now_model)[:12]} (the sweep's was {str(then_model)[:12]})")
    return tuple(found)


def resolve_preaug(
    ohlc: OHLC,
    preaug: str,
    options: RunOptions,
    *,
    model: Mapping[str, Any] | None = None,
    strict: bool = False,
) -> ResolvedPreaug:
    """``auto`` -> the sweep's choice for ``ohlc.symbol`` (or ``none`` with a warning); otherwise ``preaug``.

    The choice is looked up under the loaded series' name, so a path argument finds its choice too. A
    choice made on other data or with another horizon, context, target set or ``model`` (its checksum)
    is one warning line naming what differs, or :class:`StaleChoiceError` with ``strict``.
    """
    if preaug != "auto":
        return ResolvedPreaug(spec=str(parse_augmentation(preaug)), covariates=tuple(options.covariates))
    symbol = ohlc.symbol
    payload = read_choice(options.output_dir, symbol)
    if payload is None:
        logger.warning(
            "%s: no sweep result at %s; using --preaug none (run `chronobt sweep %s` first)",
            symbol,
            choice_path(options.output_dir, symbol),
            symbol,
        )
        return ResolvedPreaug(spec=NONE, covariates=tuple(options.covariates))
    spec = str(parse_augmentation(str(payload["best_preaug"])))
    mode = payload.get("best_finetune")
    if mode and options.finetune != mode:
        where = choice_path(options.output_dir, symbol)
        raise ConfigError(
            f"{where}: the sweep chose {payload.get('best', spec)}, a model fine-tuned with --finetune "
            f"{mode}; add --finetune {mode} (with the sweep's --finetune-* options) to fine-tune it the "
            "same way, or sweep without --finetune"
        )
    chosen = payload.get("best_covariates")
    covariates = parse_covariates(str(chosen)) if chosen is not None else tuple(options.covariates)
    if options.covariates and covariates != tuple(options.covariates):
        logger.warning(
            "%s: --preaug auto runs the sweep's covariates %s, not --covariates %s",
            symbol, covariates_label(covariates), covariates_label(options.covariates),
        )  # fmt: skip
    differences = choice_differences(payload, ohlc, options, model or {})
    if differences:
        what = "; ".join(differences)
        where = choice_path(options.output_dir, symbol)
        chosen_run = str(payload.get("best") or spec) if mode else spec  # name the fine-tuned cell
        if strict:
            raise StaleChoiceError(
                f"{where}: the sweep chose {chosen_run} under other conditions: {what}; "
                f"rerun `chronobt sweep {symbol}` with this run's options, or drop --strict-auto"
            )
        logger.warning(
            "%s: --preaug auto uses %s from %s, chosen under other conditions: %s; "
            "rerun `chronobt sweep %s` with this run's options (--strict-auto makes this an error)",
            symbol, chosen_run, where, what, symbol,
        )  # fmt: skip
    return ResolvedPreaug(
        spec=spec, choice=payload, differences=differences, covariates=covariates, finetune=mode or None
    )


def _json_float(x: float) -> float | None:
    return x if math.isfinite(x) else None
