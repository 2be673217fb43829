"""Polling one feed, without any scheduler: fetch (conditionally), parse, drop what was seen, publish the
rest to news.raw, and only then remember it as seen. Tests and `--once` call `poll` directly.

Order matters for the guarantees: a crash after publishing and before `mark_seen` re-publishes the same
ids at the next start (the sink keeps one copy), while a crash before publishing loses nothing because
nothing was marked. `mark_seen` also writes the items' outbox entries, so what a restarted broker forgets
after that is published again from the outbox (monitor/sources/outbox.py). A failing feed is reported,
backed off and retried; it never affects the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from monitor.clock import Clock
from monitor.config import LimitSettings
from monitor.errors import FinmonError
from monitor.ingest.config import FeedConfig, IngestConfig
from monitor.ingest.errors import FetchError, Stopping
from monitor.ingest.extract import article_text
from monitor.ingest.http import Fetcher, Response
from monitor.ingest.items import Candidate, candidate, to_raw
from monitor.ingest.parse import parse_entries
from monitor.ingest.urls import redact
from monitor.records import RawItem
from monitor.store.ingest import IngestState, Validators
from monitor.store.outbox import OutboxEntry

log = logging.getLogger(__name__)


class Publisher(Protocol):
    """Sends items to news.raw and returns only once the broker has acknowledged all of them, with their
    outbox entries (where the broker put each one)."""

    def publish(self, items: Sequence[RawItem]) -> Sequence[OutboxEntry]: ...


@dataclass
class PollResult:
    """What one poll of one feed did (the `--once` summary line)."""

    feed: str
    fetched: int = 0
    new: int = 0
    duplicates: int = 0
    errors: int = 0
    not_modified: int = 0
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class FeedPoller:
    """Polls feeds on demand; keeps per-feed failure counts for backoff. Safe to call from several threads
    for different feeds at once."""

    def __init__(
        self,
        config: IngestConfig,
        fetcher: Fetcher,
        state: IngestState,
        publisher: Publisher,
        clock: Clock,
        limits: LimitSettings,
        *,
        extract: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config, self.fetcher, self.state, self.publisher = config, fetcher, state, publisher
        self.clock, self.limits, self.extract, self.monotonic = clock, limits, extract, monotonic
        self._failures: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}
        # Check-publish-mark is one critical section, so two feeds carrying one story publish it once.
        self._publish_lock = threading.Lock()

    def poll(self, feed: FeedConfig) -> PollResult:
        """Poll `feed` once; every failure is caught, logged with the feed's name and returned."""
        result, started = PollResult(feed.name), self.monotonic()
        try:
            self._poll(feed, result)
        except Stopping:
            log.info("feed %s: poll interrupted by shutdown", feed.name)
            return result
        except (FinmonError, SQLAlchemyError) as exc:
            self._failed(feed, result, started, _describe(exc))
            return result
        except Exception as exc:  # a feed must never take the scraper down, whatever it sends
            log.exception("feed %s: unexpected error", feed.name)
            self._failed(feed, result, started, f"unexpected {exc.__class__.__name__}: {exc}")
            return result
        self._failures.pop(feed.name, None)
        self._retry_at.pop(feed.name, None)
        return result

    def poll_if_due(self, feed: FeedConfig) -> PollResult | None:
        """The scheduler's job: poll unless the feed is backing off after failures."""
        # Half an interval of slack: the scheduler's next run lands a little before started + interval.
        if self.monotonic() + feed.interval_s / 2 < self._retry_at.get(feed.name, 0.0):
            log.debug("feed %s: backing off after %d failures", feed.name, self._failures.get(feed.name, 0))
            return None
        result = self.poll(feed)
        log.info("feed %s: %s", feed.name, _summary(result))
        return result

    def poll_all(self, feeds: Sequence[FeedConfig], workers: int = 8) -> list[PollResult]:
        """Poll every feed once, concurrently (a slow feed does not delay the rest); results in feed order."""
        if not feeds:
            return []
        with ThreadPoolExecutor(max_workers=min(workers, len(feeds)), thread_name_prefix="ingest") as pool:
            return list(pool.map(self.poll, feeds))

    def _poll(self, feed: FeedConfig, result: PollResult) -> None:
        saved = self.state.validators(feed.name)
        response = self.fetcher.get(feed.url, timeout_s=feed.timeout_s, headers=_request_headers(feed, saved))
        if response.status == 304:
            result.not_modified = 1
            return
        if response.status != 200:
            detail = f"{redact(feed.url)} answered HTTP {response.status}; expected 200"
            raise FetchError(f"http_{response.status}", detail)
        entries = parse_entries(response.body, feed, response.headers.get("content-type", ""))
        result.fetched = len(entries)
        candidates = [c for c in (candidate(feed.name, e) for e in entries) if c is not None]
        result.errors += len(entries) - len(candidates)  # entries without any text
        self._publish_new(feed, candidates, result)
        self.state.save_validators(feed.name, _validators(feed, response), self.clock.now())

    def _publish_new(self, feed: FeedConfig, candidates: list[Candidate], result: PollResult) -> None:
        fresh = self._unseen(candidates)
        bodies = self._bodies(feed, fresh)  # slow (HTTP); done before taking the lock
        with self._publish_lock:
            fresh = self._unseen(fresh)  # another feed may have published one of them meanwhile
            now = self.clock.now()
            items = [to_raw(feed, c, now, self.limits, bodies.get(c.item_id)) for c in fresh]
            # Feeds list their newest entries first; a source partition that receives them in that order would
            # find all but the newest hour late (monitor/core/lateness.py): publish oldest first.
            items.sort(key=lambda item: item.published_at)
            if items:
                sent = self.publisher.publish(items)
                self.state.mark_seen([key for c in fresh for key in c.keys], now, sent)
        result.new = len(items)
        result.duplicates = len(candidates) - len(items)

    def _unseen(self, candidates: list[Candidate]) -> list[Candidate]:
        """Candidates none of whose keys is stored or used by an earlier candidate of the same batch."""
        stored = self.state.seen([d for c in candidates for d in c.digests])
        out: list[Candidate] = []
        for cand in candidates:
            if stored.isdisjoint(cand.digests):
                out.append(cand)
            stored.update(cand.digests)
        return out

    def _bodies(self, feed: FeedConfig, fresh: list[Candidate]) -> dict[str, str]:
        if not (self.extract or feed.extract_text):
            return {}
        out: dict[str, str] = {}
        for cand in fresh:
            text = article_text(self.fetcher, cand.entry.url, feed.timeout_s, feed.name) if cand.entry.url else None
            if text:
                out[cand.item_id] = text
        return out

    def _failed(self, feed: FeedConfig, result: PollResult, started: float, message: str) -> None:
        failures = self._failures.get(feed.name, 0) + 1
        self._failures[feed.name] = failures
        delay = min(feed.interval_s * 2 ** (failures - 1), max(self.config.max_backoff_s, feed.interval_s))
        self._retry_at[feed.name] = started + delay
        result.errors += 1
        result.error = message
        log.warning(
            "feed %s (%s): %s; failure %d, next try in %.0fs", feed.name, redact(feed.url), message, failures, delay
        )


def _request_headers(feed: FeedConfig, saved: Validators) -> dict[str, str]:
    headers = dict(feed.headers)
    if saved.url == feed.url:  # validators of another URL (the feed was edited) mean nothing here
        if saved.etag:
            headers["If-None-Match"] = saved.etag
        if saved.last_modified:
            headers["If-Modified-Since"] = saved.last_modified
    return headers


def _validators(feed: FeedConfig, response: Response) -> Validators:
    return Validators(feed.url, response.headers.get("etag"), response.headers.get("last-modified"))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SQLAlchemyError):
        return f"store error {exc.__class__.__name__}: {str(exc).splitlines()[0][:200]}; check FINMON_STORE_URL"
    return str(exc)


def _summary(result: PollResult) -> str:
    if result.error:
        return f"error {result.error}"
    if result.not_modified:
        return "not modified"
    return f"fetched {result.fetched}, new {result.new}, duplicates {result.duplicates}"
