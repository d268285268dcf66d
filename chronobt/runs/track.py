"""``chronobt track``: score every archived forecast as its bars arrive, beside the backtest it came from.

Per symbol, the forecast archive's index (:mod:`chronobt.runs.archive`) is read, each entry's file is
verified against its sha256 (a mismatch is refused in one line and never scored) and its steps are
matched with the data file as it is now (:mod:`chronobt.runs.track_ledger`). The forecasts whose every
step has arrived are scored exactly as a backtest scores its windows
(:func:`chronobt.evaluation.evaluate`: metrics, per-step scores, the naive, seasonal-naive and drift
baselines from the bars up to each origin, Diebold-Mariano tests, the trading view), and compared with a
backtest of the same label, model and horizon when one exists (:mod:`chronobt.evaluation.drift`).

Outputs per symbol and label under ``<output-dir>/track/<SYMBOL>/<label>/``: ``ledger.parquet``,
``metrics.json``, ``trades.parquet`` (the trading view's, on the backtest's decision grid),
``orders.parquet`` (every forecast's own recorded orders filled, :mod:`chronobt.runs.track_orders`) and
``manifest.json``, published together (:mod:`chronobt.publish`).
A rerun re-reads only the forecasts not yet complete (the complete ones' rows are kept from the
ledger) and writes nothing when no file would change, so its files stay byte-identical.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from chronobt.atomic import write_bytes_atomic
from chronobt.config import EvaluationOptions, TrackConfig, config_record
from chronobt.data import OHLC, load_ohlc
from chronobt.data.windows import MIN_CONTEXT
from chronobt.errors import ChronobtError, DataError
from chronobt.pipeline.jobs import Progress, symbol_key
from chronobt.publish import publish, published_path
from chronobt.runs.archive import INDEX_NAME, index_path, legacy_files, legacy_message, read_index
from chronobt.runs.results import data_record, forecast_folder, now_iso
from chronobt.runs.track_ledger import Shape, archived_rows, complete_files, refusal, resolve, revisions
from chronobt.runs.track_orders import score_orders
from chronobt.runs.track_score import score_label

logger = logging.getLogger(__name__)

#: The files of a track folder, published together (``manifest.json`` last in the list, not compared).
FILES = ("ledger.parquet", "metrics.json", "trades.parquet", "orders.parquet")


@dataclass
class LabelTrack:
    """One symbol's label tracked: its folder, ``metrics.json``'s object and whether files were written."""

    symbol: str
    label: str
    folder: Path
    metrics: dict[str, Any]
    written: bool


@dataclass
class TrackReport:
    """What :func:`run_track` returns: the labels tracked and the failures by symbol."""

    results: list[LabelTrack] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)

    def drifted(self) -> list[str]:
        """One line per (symbol, label, target) whose live losses are significantly worse."""
        lines = []
        for r in self.results:
            for target, row in (r.metrics.get("drift") or {}).items():
                if row.get("worse"):
                    lines.append(
                        f"{r.symbol} {r.label} {target}: live MASE {row['live_mase']:.4g} vs backtest "
                        f"{row['backtest_mase']:.4g} (Mann-Whitney p={row['p_value']:.3g} "
                        f"< {row['alpha']:g}, "
                        f"{row['n_live']} live and {row['n_backtest']} backtest windows)"
                    )
        return lines


def track_symbols(config: TrackConfig) -> list[str]:
    """``config.symbols``, or every symbol with a forecast folder under the output dir."""
    if config.symbols:
        return list(config.symbols)
    root = config.output_dir / "forecast"
    names = (
        sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if root.is_dir()
        else []
    )
    if not names:
        raise DataError(f"{root}: no forecast archive to track; run `chronobt forecast SYMBOL` first")
    return names


def run_track(
    config: TrackConfig, *, progress: Progress | None = None, command: Sequence[str] | None = None
) -> TrackReport:
    """Track every symbol of ``config`` (progress stage ``track``, per symbol); a symbol that fails (no
    archive, an archive from before the index, a data file that cannot be read) is recorded in
    ``report.failures`` and the others are still tracked."""
    report = TrackReport()
    symbols = track_symbols(config)
    for i, symbol in enumerate(symbols):
        try:
            report.results += track_symbol(symbol, config, command)
        except (ChronobtError, OSError) as exc:
            report.failures[symbol] = str(exc)
            logger.debug("symbol %s failed", symbol, exc_info=True)
        if progress:
            progress("track", i + 1, len(symbols))
    return report


def track_symbol(symbol: str, config: TrackConfig, command: Sequence[str] | None) -> list[LabelTrack]:
    """Every label archived for ``symbol``, tracked."""
    folder = forecast_folder(config.output_dir, symbol_key(symbol))
    read = read_index(folder)
    for number, why in read.skipped:
        logger.warning(
            "%s: line %d skipped (%s); the entries before it are intact", index_path(folder), number, why
        )
    legacy = legacy_files(folder)
    if not read.entries:
        if legacy:
            raise DataError(legacy_message(folder, legacy))
        raise DataError(
            f"{folder}: no {INDEX_NAME} (no archived forecast); run `chronobt forecast {symbol}` first"
        )
    if legacy:
        logger.warning("%s", legacy_message(folder, legacy))
    ohlc = load_ohlc(symbol, config.data_dir, max_gap=config.max_gap, calendar=config.calendar)
    labels: dict[str, list[dict[str, Any]]] = {}
    for entry in read.entries:
        labels.setdefault(str(entry["label"]), []).append(entry)
    return [
        track_label(ohlc, folder, label, entries, config, command)
        for label, entries in sorted(labels.items())
    ]


def track_label(
    ohlc: OHLC,
    archive: Path,
    label: str,
    entries: list[dict[str, Any]],
    config: TrackConfig,
    command: Sequence[str] | None,
) -> LabelTrack:
    """Build one label's ledger (incrementally), score it and publish its files when they changed."""
    out = config.output_dir / "track" / ohlc.symbol / label
    shape = Shape.of(entries[-1])
    same = [e for e in entries if Shape.of(e) == shape]
    if len(same) < len(entries):
        logger.warning(
            "%s %s: %d archived forecast(s) with another horizon, target set or quantile levels than the "
            "latest are left out of its track",
            ohlc.symbol,
            label,
            len(entries) - len(same),
        )
    old, old_files = _previous(out)
    kept_files = {
        f for f in complete_files(old) if old_files.get(f) in {e["sha256"] for e in same if e["file"] == f}
    }
    parts = [old[old["file"].isin(kept_files)]] if kept_files else []
    refused: dict[str, str] = {}
    for entry in same:
        if entry["file"] in kept_files:
            continue
        why = refusal(archive, entry)
        if why is not None:
            logger.warning("%s", why)
            refused[str(entry["file"])] = why
            continue
        parts.append(resolve(archived_rows(archive, entry, shape), ohlc, shape.targets))
    scored_entries = [e for e in same if str(e["file"]) not in refused]
    ledger = _ledger(parts, shape, revisions(ohlc, scored_entries, shape.targets))
    contexts = {str(e["file"]): int(e["context"]) for e in scored_entries}
    summary, trades = score_label(
        ledger,
        ohlc,
        shape,
        contexts,
        _options(shape, contexts, config, scored_entries[-1] if scored_entries else {}),
        entries=scored_entries,
        label=label,
        config=config,
    )
    orders, summary["orders"] = score_orders(ledger, ohlc, shape, scored_entries, fee_bps=config.fee_bps)
    summary["refused"] = list(refused.values())
    files = {e["file"]: e["sha256"] for e in scored_entries}
    tables = {"trades.parquet": trades, "orders.parquet": orders}
    written = _write(out, ledger, summary, tables, ohlc, files, config, command)
    return LabelTrack(symbol=ohlc.symbol, label=label, folder=out, metrics=summary, written=written)


#: Trading-view options a forecast's recorded config may carry (``forecast --strategy`` and its costs):
#: the track trades the archived forecasts with the same strategies and fill rules as a backtest, where
#: :class:`EvaluationOptions` has these fields (fee and shorting are the track's own options).
TRADING_FIELDS = ("strategies", "entry", "slippage_bps", "borrow_rate")


def _options(
    shape: Shape, contexts: Mapping[str, int], config: TrackConfig, latest: Mapping[str, Any]
) -> EvaluationOptions | None:
    """How the complete forecasts are scored: as a backtest of their horizon, targets and levels, its
    trading view with the strategies the latest forecast recorded (the backtest's default when none)."""
    if not contexts:
        return None
    recorded = latest.get("config") or {}
    known = {f.name for f in fields(EvaluationOptions)}
    trading: dict[str, Any] = {
        name: tuple(value) if isinstance(value, list) else value
        for name in TRADING_FIELDS
        if name in known and (value := recorded.get(name)) not in (None, [], ())
    }
    return EvaluationOptions(
        **trading,
        horizon=shape.horizon,
        context=max(MIN_CONTEXT, *contexts.values()),
        targets=shape.targets,
        quantiles=shape.levels,
        seed=config.seed,
        data_dir=config.data_dir,
        output_dir=config.output_dir,
        fee_bps=config.fee_bps,
        allow_short=config.allow_short,
    )


def _previous(folder: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """The last published ledger (empty when none) and the sha256 per file its manifest recorded."""
    try:
        ledger = pd.read_parquet(published_path(folder, "ledger.parquet"))
        manifest = json.loads(published_path(folder, "manifest.json").read_text())
    except (OSError, ValueError):
        return pd.DataFrame(columns=["file", "resolved", "origin"]), {}
    return ledger, dict(manifest.get("files") or {})


def _ledger(parts: list[pd.DataFrame], shape: Shape, revised: Mapping[str, bool]) -> pd.DataFrame:
    """The rows in order (origin, file, step, target as forecast), ``revised`` as of now."""
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in shape.columns})
    ledger = pd.concat(parts, ignore_index=True)
    ledger["revised"] = ledger["file"].map(revised).fillna(False).astype(bool)
    order = pd.Index(list(shape.targets)).get_indexer(ledger["target"])
    ledger = ledger.assign(_t=order).sort_values(["origin", "file", "step", "_t"], kind="stable")
    return ledger.drop(columns="_t").reset_index(drop=True)[shape.columns]


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    dictionary = [f.name for f in table.schema if not pa.types.is_floating(f.type)]
    buffer = io.BytesIO()
    pq.write_table(table, buffer, use_dictionary=dictionary)
    return buffer.getvalue()


def _write(
    out: Path,
    ledger: pd.DataFrame,
    summary: dict[str, Any],
    tables: Mapping[str, pd.DataFrame | None],
    ohlc: OHLC,
    files: dict[str, str],
    config: TrackConfig,
    command: Sequence[str] | None,
) -> bool:
    """Publish the track files when any of them would change; ``False`` (nothing written) otherwise."""
    content = {
        "ledger.parquet": _parquet_bytes(ledger),
        "metrics.json": (json.dumps(summary, default=str, allow_nan=True) + "\n").encode(),
        **{name: _parquet_bytes(t if t is not None else pd.DataFrame()) for name, t in tables.items()},
    }
    try:
        if all(published_path(out, name).read_bytes() == data for name, data in content.items()):
            return False
    except OSError:
        pass
    manifest = {
        "config": config_record(config),  # type: ignore[arg-type]
        "data": data_record(ohlc),
        "files": files,
        "rows": len(ledger),
        "command": list(command) if command is not None else ["<python api>"],
        "created_at": now_iso(),
    }
    root = config.output_dir
    with publish(out, root=root) as stage:
        for name, data in content.items():
            write_bytes_atomic(stage / name, data, root=root)
        write_bytes_atomic(
            stage / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode(), root=root
        )
    return True
