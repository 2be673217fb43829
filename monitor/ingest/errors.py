"""Errors of the scrapers (`finmon ingest`); each message says what was wrong and how to fix it."""

from __future__ import annotations

from monitor.errors import FinmonError


class IngestError(FinmonError):
    """Base of the scraper errors."""


class FeedConfigError(IngestError):
    """The feeds file is missing, malformed, or names an invalid feed setting."""


class FetchError(IngestError):
    """One HTTP request failed; `kind` is a short stable code (timeout, dns, connect, http_500, robots...)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class ParseError(IngestError):
    """A feed body is not the RSS, Atom or JSON its feed entry says it is."""


class Stopping(IngestError):
    """Raised inside a poll when shutdown was requested; the poll ends without counting an error."""
