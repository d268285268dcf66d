"""Checks of single option values that need nothing else of the configs: finite numbers, trading costs,
Ray addresses, time zones and dates. :mod:`chronobt.config` re-exports them (import them from there)."""

from __future__ import annotations

import math
from urllib.parse import urlsplit

import pandas as pd

from chronobt.errors import ConfigError


def check_finite(option: str, value: float) -> None:
    """ConfigError naming ``option`` unless ``value`` is a finite number (not NaN, inf or an overflow)."""
    if not math.isfinite(value):
        raise ConfigError(f"{option} must be a finite number, got {value}")


def check_trading_costs(slippage_bps: float, borrow_rate: float) -> None:
    """ConfigError unless ``--slippage-bps`` and ``--borrow-rate`` are finite and >= 0."""
    for option, value in (("--slippage-bps", slippage_bps), ("--borrow-rate", borrow_rate)):
        check_finite(option, value)
        if value < 0:
            raise ConfigError(f"{option} must be >= 0, got {value}")


def ray_host_port(address: str) -> tuple[str, int] | None:
    """``("host", port)`` of ``ray://host:port`` or ``host:port``; ``None`` if it is neither."""
    parts = urlsplit(address if "://" in address else f"gcs://{address}")
    if parts.scheme not in ("ray", "gcs") or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    return (parts.hostname, port) if port else None


def check_time_zone(tz: str | None) -> None:
    """ConfigError naming ``--tz`` unless ``tz`` is ``None`` or a time zone name pandas knows."""
    if tz is None:
        return
    try:
        pd.Timestamp("2000-01-01", tz=tz)
    except Exception:  # pytz and zoneinfo raise different types for unknown zones
        raise ConfigError(
            f"--tz {tz!r}: unknown time zone; use an IANA name like America/New_York or Europe/London"
        ) from None


def parse_date(value: str | None, *, option: str) -> pd.Timestamp | None:
    """``--start`` / ``--end`` as a UTC timestamp (no zone: UTC); ConfigError if not a date."""
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        ts = None
    if ts is None or pd.isna(ts):
        raise ConfigError(f"{option} {value!r} is not a date; use e.g. 2021-05-19 or 2021-05-19T12:00")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
