"""Train the bundled ``chronos2-mini`` Chronos-2 checkpoint from scratch.

The model is a small ``chronos.chronos2.Chronos2Model`` (see ``chronobt.engine.checkpoints``) trained with
chronos-forecasting's own ``Chronos2Pipeline.fit`` on

(a) synthetic price-like OHLC groups generated here: GARCH(1,1) volatility with Student-t shocks,
    intraday/weekly volatility seasonality, drifting trends, mean reversion, jumps and overnight gaps,
    simulated on sub-bar steps so that open/high/low/close are consistent; plus clean sine/trend groups;
(b) real OHLC series read in place from ``data/*.parquet`` and ``../shared/data/ohlc/*.parquet``,
    strictly before ``--cutoff`` (nothing is copied into the repository).

Every group is used as a 4-variate task (open, high, low, close), either as price levels or as one of
the transforms chronobt's pre-augmentations feed the model (log price, differences, returns, rolling
z-scores). Training is seeded and runs on the CPU (or CUDA when ``--device cuda``).

Example::

    python3 scripts/train_mini.py --steps 1500 --threads 1 --out chronobt/assets/chronos2-mini
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from chronobt.engine.checkpoints import ArchSpec, core_config

logger = logging.getLogger("train_mini")

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIRS = (REPO_ROOT / "data", REPO_ROOT.parent / "shared" / "data" / "ohlc")
OHLC = ("open", "high", "low", "close")
TRANSFORMS = ("level", "log", "diff", "pct", "zscore")


@dataclass(frozen=True)
class Mix:
    """Sampling weights of the training mix (fractions of training entries)."""

    synthetic_ohlc: float = 0.55
    synthetic_generic: float = 0.10
    real: float = 0.35
    #: probability of each transform in ``TRANSFORMS`` for an OHLC group
    transform_probs: tuple[float, ...] = (0.55, 0.1, 0.15, 0.1, 0.1)


# --------------------------------------------------------------------------------------------------
# synthetic data
# --------------------------------------------------------------------------------------------------


def synthetic_ohlc(
    rng: np.random.Generator,
    n_groups: int,
    length: int,
    substeps: int = 6,
    *,
    trend: float = 0.3,
    mean_revert: float = 0.3,
) -> np.ndarray:
    """Simulate price-like OHLC groups.

    ``trend`` bounds the per-bar drift of a regime in units of the bar volatility; ``mean_revert`` is
    the fraction of groups with an Ornstein-Uhlenbeck pull on the log price.

    Returns
    -------
    np.ndarray
        ``[n_groups, 4, length]`` float64 positive prices (open, high, low, close).
    """
    g = n_groups
    sigma0 = np.exp(rng.uniform(np.log(5e-4), np.log(4e-2), g))  # per-bar vol
    alpha = rng.uniform(0.02, 0.18, g)
    beta = np.minimum(rng.uniform(0.75, 0.97, g), 0.995 - alpha)
    omega = sigma0**2 * (1.0 - alpha - beta)
    garch_on = rng.random(g) < 0.85
    dof = rng.uniform(2.5, 12.0, g)
    period = rng.choice(np.array([24, 24, 24, 7, 5, 12, 168, 0]), g)
    season_amp = np.where(period > 0, rng.uniform(0.0, 0.7, g), 0.0)
    phase = rng.uniform(0, 2 * np.pi, g)
    trend_scale = rng.uniform(0.0, trend, g) * sigma0
    regime_p = rng.uniform(1 / 3000, 1 / 200, g)
    kappa = np.where(rng.random(g) < mean_revert, np.exp(rng.uniform(np.log(1e-3), np.log(5e-2), g)), 0.0)
    jump_p = np.where(rng.random(g) < 0.6, rng.uniform(0.0, 0.01, g), 0.0)
    jump_scale = rng.uniform(3.0, 10.0, g) * sigma0
    gap_scale = np.where(rng.random(g) < 0.25, rng.uniform(0.1, 1.0, g), 0.0) * sigma0
    level_noise = np.where(rng.random(g) < 0.15, rng.uniform(0.05, 0.5, g), 0.0) * sigma0

    t_idx = np.arange(length)
    season = 1.0 + season_amp[:, None] * np.sin(
        2 * np.pi * t_idx[None, :] / np.maximum(period, 1)[:, None] + phase[:, None]
    )
    season = np.where(period[:, None] > 0, np.maximum(season, 0.2), 1.0)

    # Student-t shocks with unit variance, per bar and sub-step
    shocks = rng.standard_t(dof[:, None, None], size=(g, length, substeps))
    shocks /= np.sqrt(dof / (dof - 2.0))[:, None, None]
    jumps = (rng.random((g, length)) < jump_p[:, None]) * rng.normal(0, 1, (g, length)) * jump_scale[:, None]
    regime_change = rng.random((g, length)) < regime_p[:, None]
    regime_id = np.cumsum(regime_change, axis=1)
    drift_draws = rng.normal(0, 1, (g, length + 1)) * trend_scale[:, None]
    drift = np.take_along_axis(drift_draws, regime_id, axis=1)

    logp = np.zeros((g, length * substeps + 1))
    var = sigma0**2
    prev_ret = np.zeros(g)
    x = np.zeros(g)  # mean-reverting log deviation
    anchor = np.zeros(g)
    for t in range(length):
        var = np.where(garch_on, omega + alpha * prev_ret**2 + beta * var, sigma0**2)
        sig = np.sqrt(var) * season[:, t]
        inc = shocks[:, t, :] * (sig / np.sqrt(substeps))[:, None]
        inc[:, 0] += jumps[:, t] + drift[:, t] - kappa * (x - anchor)
        path = x[:, None] + np.cumsum(inc, axis=1)
        logp[:, t * substeps + 1 : (t + 1) * substeps + 1] = path
        prev_ret = path[:, -1] - x
        x = path[:, -1]
    start = logp[:, : length * substeps].reshape(g, length, substeps)[:, :, 0]
    bars = logp[:, 1:].reshape(g, length, substeps)
    close = bars[:, :, -1]
    open_ = start + rng.normal(0, 1, (g, length)) * gap_scale[:, None]
    high = np.maximum(np.maximum(bars.max(axis=2), open_), start)
    low = np.minimum(np.minimum(bars.min(axis=2), open_), start)
    log_ohlc = np.stack([open_, high, low, close], axis=1)
    log_ohlc += rng.normal(0, 1, (g, 1, length)) * level_noise[:, None, None]
    base = np.exp(rng.uniform(np.log(0.05), np.log(60000.0), g))
    return base[:, None, None] * np.exp(log_ohlc)


def synthetic_generic(
    rng: np.random.Generator, n_groups: int, length: int, clean: float = 0.0
) -> list[np.ndarray]:
    """Seasonal/trend groups of 1-4 related variates: ``[variates, length]`` each.

    A fraction ``clean`` of the groups is noise-free apart from 1% white noise, with weak trends and
    periods of 4-64 bars (the deterministic patterns a forecaster must continue exactly); the others
    add a small random walk and up to 30% white noise.
    """
    out = []
    t = np.arange(length, dtype=np.float64)
    for _ in range(n_groups):
        is_clean = clean > 0 and rng.uniform() < clean  # no draw at 0: earlier stages stay reproducible
        n_var = int(rng.integers(1, 5))
        base = rng.normal(0, 1) * rng.uniform(0, 0.002 if is_clean else 0.01) * t
        for _ in range(int(rng.integers(1, 4))):
            p = rng.uniform(4, 64) if is_clean else rng.uniform(4, 200)
            base = base + rng.uniform(0.2, 2.0) * np.sin(2 * np.pi * t / p + rng.uniform(0, 2 * np.pi))
        rows = []
        for _ in range(n_var):
            if is_clean:
                noise = rng.normal(0, 0.01, length)
                rows.append(rng.uniform(0.5, 1.5) * base + rng.normal(0, 2) + noise)
                continue
            walk = np.cumsum(rng.normal(0, 1, length)) * rng.uniform(0, 0.02)
            noise = walk + rng.normal(0, 1, length) * rng.uniform(0, 0.3)
            rows.append(rng.uniform(0.5, 1.5) * base + rng.normal(0, 2) + noise)
        arr = np.stack(rows) * np.exp(rng.uniform(-3, 6)) + rng.normal(0, 1) * np.exp(rng.uniform(-3, 6))
        out.append(arr)
    return out


# --------------------------------------------------------------------------------------------------
# real data and transforms
# --------------------------------------------------------------------------------------------------


def read_real(data_dirs: tuple[Path, ...], cutoff: pd.Timestamp) -> list[tuple[str, np.ndarray, str, str]]:
    """OHLC arrays strictly before ``cutoff``: ``(file, [4, time], first, last)`` per file found."""
    found = []
    for d in data_dirs:
        for path in sorted(d.glob("*.parquet")) if d.is_dir() else []:
            frame = pd.read_parquet(path)
            if "timestamp" in frame.columns:
                frame = frame.set_index("timestamp")
            frame.columns = [str(c).lower() for c in frame.columns]
            if not set(OHLC) <= set(frame.columns):
                logger.warning("%s: no open/high/low/close columns, skipped", path)
                continue
            idx = pd.to_datetime(frame.index, utc=True)
            frame = frame.set_axis(idx).sort_index()
            frame = frame[frame.index < cutoff]
            values = frame[list(OHLC)].to_numpy(dtype=np.float64).T
            values = values[:, np.isfinite(values).all(axis=0)]
            if values.shape[1] < 600:
                logger.warning("%s: only %d bars before the cutoff, skipped", path, values.shape[1])
                continue
            found.append((str(path), values, str(frame.index[0]), str(frame.index[-1])))
    return found


def chunks(values: np.ndarray, length: int, stride: int) -> list[np.ndarray]:
    """Overlapping chunks ``[4, length]`` of ``values [4, time]`` (the whole series if shorter)."""
    n = values.shape[1]
    if n <= length:
        return [values]
    starts = list(range(0, n - length + 1, stride))
    if starts[-1] != n - length:
        starts.append(n - length)
    return [values[:, s : s + length] for s in starts]


def transform(values: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Apply one of ``TRANSFORMS`` jointly to a ``[variates, time]`` positive-price group."""
    if kind == "level":
        return values
    if kind == "log":
        return np.log(values)
    if kind == "diff":
        return np.diff(values, axis=1)
    if kind == "pct":
        return values[:, 1:] / values[:, :-1] - 1.0
    window = int(rng.integers(24, 256))
    frame = pd.DataFrame(values.T)
    roll = frame.rolling(window, min_periods=window)
    z = ((frame - roll.mean()) / roll.std()).to_numpy().T
    return z[:, window:]


def build_entries(args: argparse.Namespace, rng: np.random.Generator) -> tuple[list[np.ndarray], dict]:
    """The training list of float32 ``[variates, time]`` arrays and a summary for the model card."""
    mix = Mix(
        synthetic_ohlc=1.0 - args.real_frac - args.generic_frac,
        synthetic_generic=args.generic_frac,
        real=args.real_frac,
    )
    n_synth = args.synthetic_groups
    lengths = rng.integers(args.min_length, args.max_length + 1, size=n_synth)
    synth: list[np.ndarray] = []
    for length in np.unique(lengths):
        count = int((lengths == length).sum())
        synth.extend(synthetic_ohlc(rng, count, int(length), trend=args.trend, mean_revert=args.mean_revert))
    n_generic = round(n_synth * mix.synthetic_generic / mix.synthetic_ohlc)
    generic = synthetic_generic(rng, n_generic, args.max_length, clean=args.generic_clean)

    real_files = read_real(tuple(Path(d) for d in args.data_dir), pd.Timestamp(args.cutoff, tz="UTC"))
    real: list[np.ndarray] = []
    for _, values, _, _ in real_files:
        real.extend(chunks(values, args.max_length, args.max_length // 2))

    kinds = rng.choice(len(TRANSFORMS), size=len(synth), p=np.asarray(mix.transform_probs))
    entries = [transform(v, TRANSFORMS[k], rng) for v, k in zip(synth, kinds, strict=True)]
    entries.extend(generic)
    n_real_target = round(len(entries) * mix.real / (1.0 - mix.real)) if real else 0
    for i in range(n_real_target):
        values = real[i % len(real)]
        kind = TRANSFORMS[int(rng.choice(len(TRANSFORMS), p=np.asarray(mix.transform_probs)))]
        entries.append(transform(values, kind, rng))
    entries = [np.ascontiguousarray(e, dtype=np.float32) for e in entries if np.isfinite(e).all()]
    summary = {
        "synthetic_ohlc_groups": len(synth),
        "synthetic_generic_groups": len(generic),
        "real_entries": n_real_target,
        "real_chunks": len(real),
        "real_files": [
            {"file": f, "bars": int(v.shape[1]), "first": a, "last": b} for f, v, a, b in real_files
        ],
        "transform_probs": dict(zip(TRANSFORMS, mix.transform_probs, strict=True)),
    }
    return entries, summary


# --------------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=1500, help="optimizer steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=REPO_ROOT / "chronobt" / "assets" / "chronos2-mini")
    p.add_argument(
        "--work-dir", type=Path, default=Path("/tmp/chronobt-train-mini"), help="Trainer output_dir"
    )
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--cutoff", default="2024-07-01", help="real data strictly before this UTC date")
    p.add_argument("--data-dir", action="append", default=None, help="folder of *.parquet OHLC (repeatable)")
    p.add_argument(
        "--init", type=Path, default=None, help="start from this checkpoint (default: random init)"
    )
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--d-ff", type=int, default=512)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=64, help="series (variates) per batch")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup-steps", type=int, default=100)
    p.add_argument("--train-context", type=int, default=2048, help="context length used while training")
    p.add_argument("--prediction-length", type=int, default=64)
    p.add_argument("--synthetic-groups", type=int, default=1200)
    p.add_argument("--real-frac", type=float, default=0.35, help="fraction of entries from real data")
    p.add_argument("--generic-frac", type=float, default=0.1, help="fraction of sine/trend entries")
    p.add_argument(
        "--generic-clean", type=float, default=0.0, help="fraction of the sine/trend groups without noise"
    )
    p.add_argument("--trend", type=float, default=0.3, help="max synthetic regime drift / bar volatility")
    p.add_argument("--mean-revert", type=float, default=0.3, help="fraction of mean-reverting groups")
    p.add_argument("--min-length", type=int, default=600)
    p.add_argument("--max-length", type=int, default=2600)
    p.add_argument(
        "--save-every", type=int, default=0, help="also keep Trainer checkpoints every N steps (0: off)"
    )
    p.add_argument("--stop-after", type=int, default=0, help="stop at this step; the schedule spans --steps")
    p.add_argument(
        "--model-context", type=int, default=0, help="context_length saved in the config (0: 2048)"
    )
    p.add_argument("--max-minutes", type=float, default=0.0, help="stop early after this wall time (0: off)")
    args = p.parse_args(argv)
    if args.data_dir is None:
        args.data_dir = [str(d) for d in DEFAULT_DATA_DIRS]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    import torch
    from chronos.chronos2 import Chronos2Model, Chronos2Pipeline
    from transformers import TrainerCallback

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)  # Chronos2Dataset samples with the global numpy RNG
    rng = np.random.default_rng(args.seed)

    t0 = time.time()
    entries, summary = build_entries(args, rng)
    logger.info("built %d training entries in %.1fs: %s", len(entries), time.time() - t0, json.dumps(summary))

    spec = ArchSpec(
        d_model=args.d_model,
        d_kv=args.d_model // args.heads,
        d_ff=args.d_ff,
        num_layers=args.layers,
        num_heads=args.heads,
    )
    if args.init is None:
        config = core_config(spec)
        config.dropout_rate = 0.0  # short from-scratch run: dropout only slows learning
        model = Chronos2Model(config).to(args.device)
    else:  # continue training an earlier stage's checkpoint (architecture options are ignored)
        model = Chronos2Model.from_pretrained(args.init).to(args.device)
        spec = ArchSpec(
            d_model=model.config.d_model,
            d_kv=model.config.d_kv,
            d_ff=model.config.d_ff,
            num_layers=model.config.num_layers,
            num_heads=model.config.num_heads,
        )
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("model: %s, %d parameters", spec, n_params)
    pipeline = Chronos2Pipeline(model=model)

    class TimeLimit(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args_, state, control, **kwargs):
            if args.stop_after and state.global_step >= args.stop_after:
                logger.info("stopping at step %d (--stop-after)", state.global_step)
                control.should_training_stop = True
            if args.max_minutes and time.time() - t_train > 60 * args.max_minutes:
                logger.warning("time limit reached at step %d", state.global_step)
                control.should_training_stop = True
            return control

        def on_log(self, args_, state, control, logs=None, **kwargs):
            # one non-finite gradient turns every weight into NaN (clipping a NaN norm does not help)
            grad_norm = float((logs or {}).get("grad_norm", 0.0))
            if not math.isfinite(grad_norm):
                diverged.append(state.global_step)
                control.should_training_stop = True
            return control

    diverged: list[int] = []

    work = args.work_dir / f"seed{args.seed}"
    if work.exists():
        shutil.rmtree(work)
    t_train = time.time()
    trained = pipeline.fit(
        entries,
        prediction_length=args.prediction_length,
        context_length=args.train_context,
        learning_rate=args.lr,
        num_steps=args.steps,
        batch_size=args.batch_size,
        output_dir=work,
        min_past=64,
        callbacks=[TimeLimit()],
        lr_scheduler_type="cosine",
        warmup_steps=args.warmup_steps,
        weight_decay=0.01,
        max_grad_norm=1.0,
        logging_steps=10,
        disable_tqdm=True,
        optim="adamw_torch",
        save_strategy="steps" if args.save_every else "no",
        save_steps=args.save_every or None,
        save_total_limit=None,
        seed=args.seed,
        data_seed=args.seed,
    )
    wall = time.time() - t_train
    if diverged:
        raise SystemExit(
            f"error: training diverged (non-finite gradient) by step {diverged[0]}; nothing saved to "
            f"{args.out}. Earlier --save-every checkpoints in {work} are finite; lower --lr or change the mix"
        )
    model_context = args.model_context or spec.context_length
    trained.model.config.chronos_config["context_length"] = model_context
    trained.model.chronos_config.context_length = model_context
    args.out.mkdir(parents=True, exist_ok=True)
    trained.model.save_pretrained(args.out)
    info = {
        "parameters": n_params,
        "arch": spec.__dict__,
        "steps": args.steps,
        "train_seconds": round(wall, 1),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "data": summary,
        "torch": torch.__version__,
    }
    (args.work_dir / f"train_info_seed{args.seed}.json").write_text(json.dumps(info, indent=2))
    logger.info("saved %s after %.1f min of training", args.out, wall / 60)


if __name__ == "__main__":
    main()
