"""Entries to `RawItem`s: stable ids, dedupe keys, tickers, and times the classify gate accepts.

An item's id derives from its first dedupe key: the canonical URL when it has one, else the feed's guid,
else a hash of its text. The same article fetched again (or through another tracking link) gets the same id.

Title and body are cleaned with monitor/cjk.normalize_text: NFKC for text with CJK characters or full-width
forms (Chinese sites write ６００５１９ and （ ） as often as 600519 and ( )), nothing for other text, so a
full-width copy of a story hashes like its half-width twin and English items keep their ids.

Size: the gate's limit is in UTF-8 bytes (64 kB), and a CJK character takes three, so it holds about 21,000
Chinese characters, still several times a long news article (a Chinese character carries roughly what two
to three English letters do); the body is cut on a character boundary to fit it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

from monitor.cjk import normalize_text
from monitor.config import LimitSettings
from monitor.ingest.config import FeedConfig
from monitor.ingest.parse import Entry
from monitor.ingest.urls import canonical_url, clean_url
from monitor.records import RawItem, extract_cashtags, normalize_tickers, stable_id
from monitor.store.ingest import SeenKey

# What a symbol from a feed field may look like (AAPL, BRK.B, RDS-A, 7203); anything else is dropped.
_SYMBOL = re.compile(r"^[A-Z0-9]{1,6}(?:[.-][A-Z0-9]{1,2})?$")


@dataclass(frozen=True, slots=True)
class Candidate:
    """An entry with its id and dedupe keys, not yet known to be new."""

    entry: Entry
    item_id: str
    keys: tuple[SeenKey, ...]

    @property
    def digests(self) -> tuple[str, ...]:
        return tuple(key.digest for key in self.keys)


def content_hash(entry: Entry) -> str:
    """Hash of the normalised title and summary, plus the publication day when known: the same wire story
    under two URLs is one item, but a templated headline repeated on another day ("Weekly jobless claims")
    is not dropped as a duplicate of last week's."""
    day = entry.published.date().isoformat() if entry.published else ""
    text = " ".join(normalize_text(f"{entry.title}\n{entry.summary}").lower().split())
    return hashlib.sha256(f"{day}\x1f{text}".encode()).hexdigest()


def dedupe_keys(feed: str, entry: Entry) -> list[tuple[str, str]]:
    """(kind, text) keys, strongest first. Guids are only unique within their feed, so they are scoped."""
    keys: list[tuple[str, str]] = []
    if entry.url:
        keys.append(("url", canonical_url(entry.url)))
    if entry.guid and (not entry.url or canonical_url(entry.guid) != canonical_url(entry.url)):
        keys.append(("guid", f"{feed}\x1f{entry.guid}"))
    keys.append(("hash", content_hash(entry)))
    return keys


def candidate(feed: str, entry: Entry) -> Candidate | None:
    """The entry with its keys and id; None when it has no text at all (nothing to classify)."""
    if not entry.title.strip() and not entry.summary.strip():
        return None
    pairs = dedupe_keys(feed, entry)
    item_id = stable_id("finmon-ingest", *pairs[0])
    return Candidate(entry, item_id, tuple(SeenKey(kind, text, feed, item_id) for kind, text in pairs))


def tickers_for(feed: FeedConfig, entry: Entry, text: str) -> tuple[str, ...]:
    """Cashtags in the text, then plausible symbols from the feed's ticker fields, then its fixed tickers."""
    from_fields: list[str] = []
    for value in entry.tickers:
        from_fields.extend(s for s in normalize_tickers(value) if _SYMBOL.match(s))
    return normalize_tickers([*extract_cashtags(text), *from_fields, *feed.tickers])


def fit_body(title: str, body: str, max_bytes: int) -> str:
    """Cut the body so that title + body stay within the gate's byte limit (a long extracted article would
    otherwise be dead-lettered whole as text_too_large)."""
    room = max_bytes - len(title.encode("utf-8"))
    encoded = body.encode("utf-8")
    if len(encoded) <= room:
        return body
    return encoded[: max(room, 0)].decode("utf-8", errors="ignore").rstrip()


def event_time(published: datetime | None, fetched_at: datetime, limits: LimitSettings) -> datetime:
    """The entry's time, or the fetch time when it has none or one the gate would reject (a feed's broken
    date should not cost the news item)."""
    if published is None or published < limits.min_event_time or published > fetched_at + limits.max_future_skew:
        return fetched_at
    return published


def to_raw(
    feed: FeedConfig, cand: Candidate, fetched_at: datetime, limits: LimitSettings, body: str | None = None
) -> RawItem:
    """The wire record of a new item; `body` replaces the summary when the article text was extracted."""
    entry = cand.entry
    title = normalize_text(entry.title.strip() or entry.summary.strip()[:300])
    text = fit_body(title, normalize_text((body if body else entry.summary).strip()), limits.max_text_bytes)
    return RawItem(
        id=cand.item_id,
        title=title,
        body="" if text == title else text,
        published_at=event_time(entry.published, fetched_at, limits),
        source=feed.name,
        url=clean_url(entry.url) if entry.url else "",
        tickers=tickers_for(feed, entry, f"{title}\n{text}"),
        lang=feed.lang,
        fetched_at=fetched_at,
    )
