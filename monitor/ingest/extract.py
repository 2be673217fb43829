"""Optional article text: fetch a new item's page (politely, like any request) and extract its main text
with trafilatura. Off unless a feed sets `extract_text: true` or `finmon ingest --extract` is given."""

from __future__ import annotations

import logging
from typing import Any

from monitor.ingest.errors import FeedConfigError, FetchError
from monitor.ingest.http import Fetcher
from monitor.ingest.urls import redact

log = logging.getLogger(__name__)


def require_trafilatura() -> Any:
    """The trafilatura module, or a clear error telling how to install it."""
    try:
        import trafilatura
    except ImportError as exc:
        raise FeedConfigError(
            "article text extraction needs trafilatura: install it with `pip install 'finmon[extract]'`, "
            "or drop --extract / extract_text from the feeds file"
        ) from exc
    return trafilatura


def article_text(fetcher: Fetcher, url: str, timeout_s: float, feed: str) -> str | None:
    """The main text of the page at `url`, or None (logged) when it cannot be fetched or holds no text.

    A failed extraction never fails the item: it is published with the feed's summary instead.
    """
    try:
        response = fetcher.get(url, timeout_s=timeout_s)
    except FetchError as exc:
        log.warning("feed %s: article %s not extracted (%s); publishing the summary", feed, redact(url), exc)
        return None
    page = response.body.decode(_charset(response.headers), errors="replace")
    text = require_trafilatura().extract(page, url=url, include_comments=False, include_tables=False)
    if not text:
        log.info("feed %s: no article text found at %s; publishing the summary", feed, redact(url))
        return None
    return str(text).strip()


def _charset(headers: Any) -> str:
    content_type = str(headers.get("content-type", ""))
    for part in content_type.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            try:
                "".encode(value.strip('"'))
            except LookupError:
                break
            return value.strip('"')
    return "utf-8"
