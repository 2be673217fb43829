"""Errors of the window engine; each message says what was wrong and how to fix it."""

from __future__ import annotations

from monitor.errors import FinmonError


class WindowError(FinmonError):
    """A window setting, window size or company dictionary is invalid."""
