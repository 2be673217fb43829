"""Scrapers (`finmon ingest`): RSS, Atom and JSON feeds polled politely and published to news.raw.

`config` reads the feeds file, `http` fetches (robots.txt, per-host rate limit, timeouts, conditional GET),
`parse` turns bodies into entries, `items` turns entries into RawItems with stable ids and dedupe keys,
`poller` polls one feed (no scheduler: tests drive it), `service` wires it all and schedules it.
"""

from monitor.ingest.config import FeedConfig, IngestConfig, load_feeds
from monitor.ingest.poller import FeedPoller, PollResult

__all__ = ["FeedConfig", "FeedPoller", "IngestConfig", "PollResult", "load_feeds"]
