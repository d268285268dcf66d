"""Trading strategies on the forecast distribution: parsing ``--strategy`` and turning forecasts into orders.

A strategy reads only a window's forecast quantiles and the close at its origin (``c_0``, the last bar
known when the decision is made), never a later bar; :func:`decide` gives the window's :class:`Orders`,
which :mod:`chronobt.evaluation.fills` then fills against the realised bars. ``c`` below is the cost per
side, ``(fee_bps + slippage_bps) / 10_000``; ``q_a(x, k)`` the ``a`` quantile of variate ``x`` at step
``k`` after the origin (``h`` = the horizon).

- ``sign``: long when ``q_0.5(close, h) / c_0 - 1 > 2c`` (the median move beats the round-trip costs);
  short when below ``-2c`` and shorting is allowed. Size 1, market entry, exit at the horizon's close.
- ``band:level=a`` (default 0.2): long when ``q_a(close, h) / c_0 - 1 > 2c``; short (with shorting) when
  ``q_{1-a}(close, h) / c_0 - 1 < -2c``. Size 1, market entry, exit at the horizon's close.
- ``kelly:fraction=f,cap=m`` (defaults 0.5, 1.0): the horizon return's mean is read from the median,
  ``mu = q_0.5(close, h) / c_0 - 1``, its sd from the outermost forecast levels ``lo < hi`` as a normal
  spread, ``sigma = (q_hi(close, h) - q_lo(close, h)) / (c_0 (z_hi - z_lo))`` with ``z`` the standard
  normal quantile (``lo, hi = 0.1, 0.9``: the q0.1-q0.9 spread over 2.563). The edge after costs is
  ``e = sign(mu) max(|mu| - 2c, 0)`` and the position ``f e / sigma^2``, clipped to ``[-m, m]`` (to
  ``[0, m]`` without shorting); its absolute value is the size, its sign the side.
- ``range:entry=a,target=b,stop=s`` (defaults 0.2, 0.8, 0.05; long only): a limit buy working at bar
  ``k`` (``k = 1 .. h`` after the origin) at ``q_a(low, k)``; once filled, a take-profit at
  ``q_b(high, k)`` and a protective stop at ``q_s(low, k)``, both re-priced each bar ``k`` to that step's
  quantiles; otherwise the position is sold at the horizon's close. The order is placed only when
  ``q_b(high, h) / q_a(low, 1) - 1 > 2c``.

A level that ``--quantiles`` lacks is interpolated linearly between the two forecast levels around it;
a level outside the forecast levels is a :class:`~chronobt.errors.ConfigError` naming the level to add.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from chronobt.config import EvaluationOptions, ForecastConfig
from chronobt.errors import ConfigError

#: Every strategy with its parameters' defaults (the order in which they are written).
STRATEGIES: dict[str, dict[str, float]] = {
    "sign": {},
    "band": {"level": 0.2},
    "kelly": {"fraction": 0.5, "cap": 1.0},
    "range": {"entry": 0.2, "target": 0.8, "stop": 0.05},
}
#: The forecast variates each strategy reads.
NEEDS: dict[str, tuple[str, ...]] = {
    "sign": ("close",),
    "band": ("close",),
    "kelly": ("close",),
    "range": ("low", "high"),
}


@dataclass(frozen=True)
class Strategy:
    """One parsed ``--strategy`` item: ``name`` and every parameter (defaults filled in)."""

    name: str
    params: Mapping[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The strategy's key in ``metrics.json`` and its files: the name, plus the parameters that
        differ from their defaults (``band``, ``band:level=0.3``)."""
        changed = [f"{k}={v:g}" for k, v in self.params.items() if v != STRATEGIES[self.name][k]]
        return f"{self.name}:{','.join(changed)}" if changed else self.name

    def levels(self, quantiles: Sequence[float]) -> list[float]:
        """The quantile levels this strategy reads (``quantiles``: the forecast's, for kelly's spread)."""
        p = self.params
        if self.name == "band":
            return [p["level"], 1.0 - p["level"]]
        if self.name == "range":
            return [p["entry"], p["target"], p["stop"]]
        if self.name == "kelly":
            return [min(quantiles), 0.5, max(quantiles)]
        return [0.5]


def parse_strategies(text: str | Sequence[str]) -> tuple[Strategy, ...]:
    """``sign,band:level=0.3,kelly:fraction=0.5,cap=2`` as strategies.

    Items are comma-separated; an item ``k=v`` without a name continues the parameters of the strategy
    before it. A name listed twice with the same parameters is kept once. Raises ConfigError naming the
    bad item and the allowed names or parameters.
    """
    items = [text] if isinstance(text, str) else list(text)
    pieces = [p.strip() for item in items for p in item.split(",") if p.strip()]
    if not pieces:
        raise ConfigError(f"--strategy: expected one or more of {', '.join(STRATEGIES)}, got nothing")
    groups: list[list[str]] = []
    for piece in pieces:
        if "=" in piece and ":" not in piece and groups:
            groups[-1].append(piece)
        else:
            groups.append([piece])
    parsed = [_parse_one(group) for group in groups]
    return tuple({s.label: s for s in parsed}.values())


def _parse_one(group: list[str]) -> Strategy:
    name, _, first = group[0].partition(":")
    name = name.strip().lower()
    if name not in STRATEGIES:
        raise ConfigError(f"--strategy {group[0]!r}: unknown strategy; choose from {', '.join(STRATEGIES)}")
    params = dict(STRATEGIES[name])
    for item in [first, *group[1:]] if first else group[1:]:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or key not in params:
            allowed = ", ".join(STRATEGIES[name]) or "none"
            raise ConfigError(f"--strategy {name}: bad parameter {item!r}; {name} takes {allowed} (k=v)")
        try:
            params[key] = float(value)
        except ValueError:
            raise ConfigError(f"--strategy {name}: {key}={value!r} is not a number") from None
    _check_params(name, params)
    return Strategy(name=name, params=params)


def _check_params(name: str, p: dict[str, float]) -> None:
    if any(not math.isfinite(v) for v in p.values()):
        raise ConfigError(f"--strategy {name}: parameters must be finite numbers, got {p}")
    bad = (
        (name == "band" and not 0.0 < p["level"] < 0.5)
        or (name == "kelly" and not (p["fraction"] > 0 and p["cap"] > 0))
        or (name == "range" and not (0.0 < p["stop"] < p["entry"] < 1.0 and 0.0 < p["target"] < 1.0))
    )
    if bad:
        rule = {
            "band": "0 < level < 0.5",
            "kelly": "fraction > 0 and cap > 0",
            "range": "0 < stop < entry < 1 and 0 < target < 1",
        }[name]
        raise ConfigError(f"--strategy {name}: {p} breaks {rule}")


def check_strategies(
    strategies: Sequence[Strategy], *, targets: Sequence[str], quantiles: Sequence[float]
) -> None:
    """ConfigError when a strategy needs a variate ``--targets`` lacks or a level outside ``--quantiles``."""
    for s in strategies:
        missing = [t for t in NEEDS[s.name] if t not in targets]
        if missing:
            raise ConfigError(
                f"--strategy {s.label} reads the forecast {' and '.join(missing)}; "
                f"add {'them' if len(missing) > 1 else 'it'} to --targets"
            )
        for level in s.levels(quantiles):
            _check_level(level, quantiles, s.label)
        if s.name == "kelly" and not min(quantiles) < 0.5 < max(quantiles):
            raise ConfigError(f"--strategy {s.label} needs --quantiles on both sides of 0.5 (its spread)")


def check_trading(options: EvaluationOptions | ForecastConfig) -> None:
    """ConfigError for ``options``' strategies, before any work: unknown names or parameters, variates
    not forecast (a backtest without a close forecast has no trading view), levels outside
    ``--quantiles``. A forecast without ``--strategy`` has nothing to check."""
    if not options.strategies:
        return
    parsed = parse_strategies(options.strategies)
    if "close" in options.targets or isinstance(options, ForecastConfig):
        check_strategies(parsed, targets=options.targets, quantiles=options.quantiles)


def _check_level(level: float, quantiles: Sequence[float], label: str) -> None:
    if not min(quantiles) <= level <= max(quantiles):
        need = ",".join(f"{q:g}" for q in sorted({*quantiles, level}))
        raise ConfigError(
            f"--strategy {label} needs the {level:g} quantile, outside the forecast levels "
            f"{min(quantiles):g}..{max(quantiles):g}; add it: --quantiles {need}"
        )


@dataclass(frozen=True, eq=False)
class Orders:
    """What a strategy does in each window.

    Attributes
    ----------
    side : ndarray [w] int8
        +1 long, -1 short, 0 no order.
    size : ndarray [w]
        Position size as a fraction of equity (0 without an order).
    limit : ndarray [w, h]
        The limit entry price working at each bar after the origin; NaN: a market entry (``--entry``).
    target, stop : ndarray [w, h]
        The take-profit and stop prices working at each bar after the origin; NaN: none.
    """

    side: np.ndarray
    size: np.ndarray
    limit: np.ndarray
    target: np.ndarray
    stop: np.ndarray


@dataclass(frozen=True)
class ForecastView:
    """A strategy's inputs: ``price_q`` ``[w, v, Q, h]`` at ``levels`` for ``targets``; ``reference``
    ``[w]`` the close at each origin."""

    price_q: np.ndarray
    targets: tuple[str, ...]
    levels: tuple[float, ...]
    reference: np.ndarray

    def quantile(self, target: str, level: float) -> np.ndarray:
        """``[w, h]``: the ``level`` quantile of ``target`` (linear between neighbouring levels)."""
        q = self.price_q[:, self.targets.index(target)]
        levels = np.asarray(self.levels)
        hit = np.flatnonzero(np.isclose(levels, level, rtol=0.0, atol=1e-12))
        if hit.size:
            return np.asarray(q[:, int(hit[0])], dtype=np.float64)
        _check_level(level, self.levels, f"level {level:g}")
        hi = int(np.searchsorted(levels, level))
        w = (level - levels[hi - 1]) / (levels[hi] - levels[hi - 1])
        return np.asarray((1.0 - w) * q[:, hi - 1] + w * q[:, hi], dtype=np.float64)


def decide(strategy: Strategy, view: ForecastView, *, cost: float, allow_short: bool) -> Orders:
    """The orders of ``strategy`` in every window of ``view``; ``cost`` is the cost per side (a fraction).

    Reads nothing but the forecast and the origin's close; a window with a non-finite input gets no
    order.
    """
    c0 = view.reference
    n, h = view.price_q.shape[0], view.price_q.shape[-1]
    nan = np.full((n, h), np.nan)
    limit, target, stop = nan, nan, nan
    size = np.ones(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        if strategy.name == "range":
            p = strategy.params
            limit = view.quantile("low", p["entry"])
            target = view.quantile("high", p["target"])
            stop = np.minimum(view.quantile("low", p["stop"]), limit)
            side = np.where(target[:, -1] / limit[:, 0] - 1.0 > 2 * cost, 1, 0)
        elif strategy.name == "kelly":
            side, size = _kelly(strategy, view, cost, allow_short)
        else:
            up_level = strategy.params.get("level", 0.5)
            up = view.quantile("close", up_level)[:, -1] / c0 - 1.0
            down = view.quantile("close", 1.0 - up_level)[:, -1] / c0 - 1.0
            side = np.where(up > 2 * cost, 1, 0)
            if allow_short:
                side = np.where(down < -2 * cost, -1, side)
    side = np.where(np.isfinite(size) & (size > 0), side, 0).astype(np.int8)
    size = np.where(side != 0, size, 0.0)
    return Orders(side=side, size=size, limit=limit, target=target, stop=stop)


#: The standard normal's quantile function, for kelly's spread.
_Z = NormalDist().inv_cdf


def _kelly(
    strategy: Strategy, view: ForecastView, cost: float, allow_short: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Side and size of the fractional Kelly position (see the module docstring)."""
    c0 = view.reference
    lo, hi = min(view.levels), max(view.levels)
    mu = view.quantile("close", 0.5)[:, -1] / c0 - 1.0
    spread = (view.quantile("close", hi)[:, -1] - view.quantile("close", lo)[:, -1]) / c0
    sigma = spread / (_Z(hi) - _Z(lo))
    edge = np.sign(mu) * np.maximum(np.abs(mu) - 2 * cost, 0.0)
    cap = strategy.params["cap"]
    position = np.clip(strategy.params["fraction"] * edge / sigma**2, -cap if allow_short else 0.0, cap)
    position = np.where(np.isfinite(position) & (sigma > 0), position, 0.0)
    return np.sign(position).astype(np.int8), np.abs(position)


def next_orders(
    strategies: Sequence[Strategy],
    view: ForecastView,
    *,
    cost: float,
    allow_short: bool,
) -> list[dict[str, object]]:
    """Each strategy's order for the bar after the last one (``view`` holds one window).

    One dict per strategy: ``strategy``, ``side`` (long, short, flat), ``size``, ``entry`` (``market``
    at the next bar's open or ``limit``), the ``limit``, ``target`` and ``stop`` prices working at the
    next bar (``None`` when there is none) and, for orders re-priced each bar, their per-step prices
    ``steps`` (``limit``, ``target``, ``stop`` lists, one per bar of the horizon). The live track record
    scores these by :func:`chronobt.evaluation.fills.fill` like a backtest.
    """
    out: list[dict[str, object]] = []
    for s in strategies:
        o = decide(s, view, cost=cost, allow_short=allow_short)
        side = int(o.side[0])
        order: dict[str, object] = {
            "strategy": s.label,
            "side": {1: "long", -1: "short"}.get(side, "flat"),
            "size": float(o.size[0]),
            "entry": "limit" if np.isfinite(o.limit[0, 0]) else "market",
        }
        for key, prices in (("limit", o.limit), ("target", o.target), ("stop", o.stop)):
            first = float(prices[0, 0])
            order[key] = first if side and math.isfinite(first) else None
        if side and np.isfinite(o.limit[0]).any():
            order["steps"] = {
                k: [float(x) for x in v[0]]
                for k, v in (("limit", o.limit), ("target", o.target), ("stop", o.stop))
            }
        out.append(order)
    return out


def orders_for_forecast(
    price_q: np.ndarray,
    last_close: float,
    config: ForecastConfig,
    targets: Sequence[str],
) -> list[dict[str, object]]:
    """``latest.json``'s ``orders``: each ``config.strategies``' order for the bar after the last one
    (:func:`next_orders`), from ``price_q`` ``[1, v, Q, h]`` at ``config.quantiles`` and the last close."""
    strategies = parse_strategies(config.strategies)
    check_strategies(strategies, targets=targets, quantiles=config.quantiles)
    view = ForecastView(
        price_q=np.asarray(price_q, dtype=np.float64),
        targets=tuple(targets),
        levels=tuple(config.quantiles),
        reference=np.asarray([last_close], dtype=np.float64),
    )
    cost = (config.fee_bps + config.slippage_bps) / 10_000.0
    return next_orders(strategies, view, cost=cost, allow_short=config.allow_short)
