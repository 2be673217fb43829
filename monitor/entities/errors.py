"""Errors of the entity linker; each message says what was wrong and how to fix it."""

from __future__ import annotations

from monitor.errors import ConfigError, FinmonError


class EntityError(FinmonError):
    """The entity linker cannot be built or used."""


class WatchlistError(EntityError, ConfigError):
    """A watchlist or company-names file (or setting) is invalid: a settings problem the user fixes."""
