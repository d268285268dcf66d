"""chronobt: backtest Amazon's Chronos-2 on OHLC price data."""

from chronobt._version import __version__

__all__ = ["__version__"]
