"""Exceptions shared by every finmon package.

Every message says what was wrong and how to fix it: these errors reach users through the CLI.
"""

from __future__ import annotations


class FinmonError(Exception):
    """Base of all finmon errors; the CLI prints these without a traceback."""


class ConfigError(FinmonError):
    """A setting or a settings file is invalid."""


class BrokerError(FinmonError):
    """The Kafka broker cannot be started, reached or used."""


class StoreError(FinmonError):
    """The store (SQLite/PostgreSQL) cannot be reached or used."""


class SourceError(FinmonError):
    """An input file (feed, prices) cannot be read or mapped."""


class RecordError(FinmonError):
    """A record on the wire is invalid; `reason` is a short stable code for the dead-letter table."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
