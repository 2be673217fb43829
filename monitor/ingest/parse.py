"""Feed bodies to `Entry` objects: RSS and Atom through feedparser, JSON through a configured mapping.

A body that is not what the feed says it is (an HTML error page, truncated XML, random bytes) raises
`ParseError`; a valid feed with no items yields an empty list.
"""

from __future__ import annotations

import calendar
import html
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any

import feedparser

from monitor.clock import ensure_utc
from monitor.errors import RecordError
from monitor.ingest.config import FeedConfig, JsonMapping
from monitor.ingest.errors import ParseError
from monitor.records import parse_time


@dataclass(frozen=True, slots=True)
class Entry:
    """One item of a feed, before deduplication."""

    title: str
    summary: str = ""
    url: str = ""
    guid: str = ""
    published: datetime | None = None
    tickers: tuple[str, ...] = ()  # raw values of the feed's ticker fields, normalised later


class _TextOnly(HTMLParser):
    """Collects the text of an HTML fragment (feed summaries are often HTML)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(fragment: str) -> str:
    """Plain text of an HTML fragment, whitespace collapsed."""
    if "<" not in fragment:
        return " ".join(html.unescape(fragment).split())
    parser = _TextOnly()
    parser.feed(fragment)
    parser.close()
    return " ".join(" ".join(parser.parts).split())


def parse_entries(body: bytes, feed: FeedConfig, content_type: str = "") -> list[Entry]:
    """The entries of one fetched body, read as the feed's format."""
    if feed.format == "json":
        return parse_json(body, feed.json_mapping, feed.ticker_fields)
    return parse_xml(body, feed.ticker_fields, content_type)


def parse_xml(body: bytes, ticker_fields: tuple[str, ...] = (), content_type: str = "") -> list[Entry]:
    """RSS or Atom. The body goes in as a stream: given bytes or a str, feedparser may treat them as a URL
    or a local file name and open it, which a hostile feed must never be able to trigger."""
    headers = {"content-type": content_type} if content_type else {}
    parsed = feedparser.parse(io.BytesIO(body), response_headers=headers)
    if not parsed.entries and (parsed.bozo or not parsed.version):
        reason = parsed.get("bozo_exception") or "no RSS or Atom root element"
        raise ParseError(f"the body is not an RSS/Atom feed ({reason}); check the URL and the feed's format")
    return [_xml_entry(entry, ticker_fields) for entry in parsed.entries]


def _xml_entry(entry: Mapping[str, Any], ticker_fields: tuple[str, ...]) -> Entry:
    summary = entry.get("summary") or ""
    if not summary and entry.get("content"):
        summary = entry["content"][0].get("value", "")
    when = entry.get("published_parsed") or entry.get("updated_parsed")
    return Entry(
        title=html_to_text(entry.get("title") or ""),
        summary=html_to_text(summary),
        url=(entry.get("link") or "").strip(),
        guid=str(entry.get("id") or "").strip(),
        published=datetime.fromtimestamp(calendar.timegm(when), tz=UTC) if when else None,
        tickers=_ticker_values(entry, ticker_fields),
    )


def parse_json(body: bytes, mapping: JsonMapping, ticker_fields: tuple[str, ...] = ()) -> list[Entry]:
    """A JSON endpoint: the list at `mapping.items`, each object's fields at the mapped paths."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ParseError(f"the body is not JSON ({str(exc)[:120]}); check the URL and the feed's format") from exc
    items = lookup(data, mapping.items) if mapping.items else data
    if not isinstance(items, list):
        raise ParseError(
            f"json.items {mapping.items or '(the body)'!r} is a {type(items).__name__}, not a list of items; "
            "set json.items to the dotted path of the list"
        )
    return [_json_entry(item, mapping, ticker_fields) for item in items if isinstance(item, dict)]


def _json_entry(item: dict[str, Any], mapping: JsonMapping, ticker_fields: tuple[str, ...]) -> Entry:
    fields = (mapping.tickers, *ticker_fields)
    return Entry(
        title=html_to_text(_text(lookup(item, mapping.title))),
        summary=html_to_text(_text(lookup(item, mapping.body))),
        url=_text(lookup(item, mapping.url)).strip(),
        guid=_text(lookup(item, mapping.id)).strip(),
        published=_json_time(lookup(item, mapping.published_at)),
        tickers=_ticker_values(item, fields),
    )


def lookup(data: Any, path: str) -> Any:
    """`a.b.0.c` in nested dicts and lists; None where the path does not exist."""
    for part in path.split(".") if path else ():
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def _text(value: Any) -> str:
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value)


def _json_time(value: Any) -> datetime | None:
    """ISO-8601, epoch seconds/milliseconds, or an RFC 2822 date; None if absent or unreadable."""
    if value is None or value == "":
        return None
    try:
        return parse_time(value, "published_at")
    except RecordError:
        pass
    try:
        return ensure_utc(parsedate_to_datetime(str(value)))
    except (TypeError, ValueError):
        return None


def _ticker_values(entry: Mapping[str, Any], fields: tuple[str, ...]) -> tuple[str, ...]:
    """Raw strings from the ticker fields: plain strings, lists of strings, or feedparser tags ({'term': ..})."""
    out: list[str] = []
    for name in fields:
        value = lookup(entry, name)
        values = value if isinstance(value, list | tuple) else [value]
        for one in values:
            term = one.get("term") if isinstance(one, Mapping) else one
            if isinstance(term, str) and term.strip():
                out.append(term)
    return tuple(out)
