"""A backtest's ``metrics.json``: the typed summary one symbol's run writes and its readers read.

:class:`BacktestSummary` holds every field of the file; :meth:`BacktestSummary.to_json` gives the file's
object (its key order is the file's), :meth:`BacktestSummary.from_json` reads one back. The CLI renders
and the report reads a summary through its attributes; a summary is also a read-only mapping of its JSON
object (``result.summary["metrics"]``), as :func:`chronobt.run_backtest`'s results have always been read.
:func:`chronobt.runs.backtest_write.backtest_summary` builds one from a scored job. The results of a run
(:class:`SymbolResult`, :class:`BacktestReport`) live here too: they carry the summaries.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: A JSON object as the evaluation builds it (scores per target, per baseline...).
JsonObject = Mapping[str, Any]


@dataclass(frozen=True, eq=False)
class BacktestSummary(Mapping[str, Any]):
    """One symbol's ``metrics.json``.

    Attributes
    ----------
    symbol, preaug : the series and the canonical augmentation spec; ``preaug_params`` its parameters.
    covariates : ``volume+calendar`` or ``none``; ``covariate_rows`` the model's covariate rows.
    run : the run label (:class:`~chronobt.pipeline.covariates.RunLabel`, as written).
    model, model_checksum : the model's id and weights checksum.
    horizon, context_length, windows : bars per forecast, bars of context, windows scored.
    first_origin, last_origin : ISO timestamps of the first and last origin.
    targets, quantiles : the scored columns and the quantile levels.
    metrics, per_step, baselines, skill, significance, trading : the scores
        (:class:`~chronobt.evaluation.evaluate.Evaluation`); ``baselines_per_step`` the baselines' scores
        per horizon step (as ``per_step``; empty in older files); ``calibrated`` the conformal ones with their
        ``method``, ``dependence`` the inversion's step dependence; ``interval_calibration`` what
        ``--calibrate`` did (``requested``, ``applied``, ``n_resolved``, ``min_resolved``, ``reason``).
    filled, inversion : forward-filled bars left unscored; inverted quantiles outside the price domain.
    compile : the engine's compile record.
    timings : seconds per stage of the run that wrote it; not in the file (written to ``manifest.json``, so
        identical runs write identical ``metrics.json`` bytes); read back only from older files.
    auto : the sweep choice ``--preaug auto`` used (omitted when none); ``finetune`` the fine-tuned
        models and the test against zero-shot (omitted for a zero-shot run).
    """

    symbol: str
    preaug: str
    preaug_params: JsonObject
    covariates: str
    covariate_rows: tuple[str, ...]
    run: str
    model: str | None
    model_checksum: str | None
    horizon: int
    context_length: int
    windows: int
    first_origin: str
    last_origin: str
    targets: tuple[str, ...]
    quantiles: tuple[float, ...]
    metrics: JsonObject
    per_step: JsonObject
    baselines: JsonObject
    skill: JsonObject
    significance: JsonObject
    baselines_per_step: JsonObject = field(default_factory=dict)
    dependence: JsonObject | None = None
    calibrated: JsonObject | None = None
    interval_calibration: JsonObject | None = None
    trading: JsonObject | None = None
    filled: JsonObject = field(default_factory=dict)
    inversion: JsonObject = field(default_factory=dict)
    compile: JsonObject | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    auto: JsonObject | None = None
    finetune: JsonObject | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``metrics.json`` object, keys in the file's order (``auto``/``finetune`` only when set)."""
        out: dict[str, Any] = {
            "symbol": self.symbol,
            "preaug": self.preaug,
            "preaug_params": self.preaug_params,
            "covariates": self.covariates,
            "covariate_rows": list(self.covariate_rows),
            "run": self.run,
            "model": self.model,
            "model_checksum": self.model_checksum,
            "horizon": self.horizon,
            "context_length": self.context_length,
            "windows": self.windows,
            "first_origin": self.first_origin,
            "last_origin": self.last_origin,
            "targets": list(self.targets),
            "quantiles": list(self.quantiles),
            "metrics": self.metrics,
            "per_step": self.per_step,
            "baselines": self.baselines,
            "baselines_per_step": self.baselines_per_step,
            "skill": self.skill,
            "significance": self.significance,
            "dependence": self.dependence,
            "calibrated": self.calibrated,
            "interval_calibration": self.interval_calibration,
            "trading": self.trading,
            "filled": self.filled,
            "inversion": self.inversion,
            "compile": self.compile,
        }
        if self.auto is not None:
            out["auto"] = self.auto
        if self.finetune is not None:
            out["finetune"] = self.finetune
        return out

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> BacktestSummary:
        """A summary from a ``metrics.json`` object; fields an older or partial file lacks are empty."""
        get = payload.get
        return cls(
            symbol=str(get("symbol") or ""),
            preaug=str(get("preaug") or ""),
            preaug_params=get("preaug_params") or {},
            covariates=str(get("covariates") or "none"),
            covariate_rows=tuple(get("covariate_rows") or ()),
            run=str(get("run") or get("preaug") or ""),
            model=get("model"),
            model_checksum=get("model_checksum"),
            horizon=int(get("horizon") or 0),
            context_length=int(get("context_length") or 0),
            windows=int(get("windows") or 0),
            first_origin=str(get("first_origin") or ""),
            last_origin=str(get("last_origin") or ""),
            targets=tuple(get("targets") or ()),
            quantiles=tuple(get("quantiles") or ()),
            metrics=get("metrics") or {},
            per_step=get("per_step") or {},
            baselines=get("baselines") or {},
            baselines_per_step=get("baselines_per_step") or {},  # empty in files written before it
            skill=get("skill") or {},
            significance=get("significance") or {},
            dependence=get("dependence"),
            calibrated=get("calibrated"),
            interval_calibration=get("interval_calibration"),
            trading=get("trading"),
            filled=get("filled") or {},
            inversion=get("inversion") or {},
            compile=get("compile"),
            timings=get("timings") or {},  # files written before timings moved to manifest.json
            auto=get("auto"),
            finetune=get("finetune"),
        )

    @property
    def versus_zero_shot(self) -> JsonObject | None:
        """The fine-tuned run's test against zero-shot per target (``None`` for a zero-shot run)."""
        return (self.finetune or {}).get("versus_zero_shot")

    def coverage_80(self, target: str) -> float | None:
        """The 80% coverage of the intervals the run issued: the calibrated one when calibrated, else raw."""
        block = self.calibrated["metrics"] if self.calibrated else self.metrics
        value = (block.get(target) or {}).get("coverage_80")
        return None if value is None else float(value)

    def __getitem__(self, key: str) -> Any:
        return self.to_json()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_json())

    def __len__(self) -> int:
        return len(self.to_json())


@dataclass
class SymbolResult:
    """The outcome of one symbol in a backtest: its folder and its ``metrics.json`` summary."""

    symbol: str
    preaug: str
    folder: Path
    summary: BacktestSummary
    finetune: str | None = None  # "lora"/"full": the fine-tuned results beside the zero-shot ones


@dataclass
class BacktestReport:
    """What :func:`chronobt.runs.backtest.run_backtest` returns: results per symbol, failures by symbol."""

    results: list[SymbolResult] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    engine_record: dict[str, Any] = field(default_factory=dict)
    portfolio: Any = None  # --portfolio: the chronobt.runs.portfolio.PortfolioReport written
