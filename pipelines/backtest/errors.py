"""The backtest's user-facing error: every message says what is wrong and how to fix it."""

from __future__ import annotations

from monitor.errors import FinmonError


class BacktestError(FinmonError):
    """Bad input to `finmon backtest` (feed, prices, rules or options)."""
