"""Errors of the alerting package; each message says what was wrong and how to fix it."""

from __future__ import annotations

from monitor.errors import FinmonError


class AlertError(FinmonError):
    """Base of alerting errors."""


class RulesError(AlertError):
    """The rules file is missing, not YAML, or breaks the schema (message names file, rule and field)."""


class NotifyError(AlertError):
    """A notification could not be delivered; `permanent` ones are not retried (e.g. a missing secret)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
