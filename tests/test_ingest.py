"""Scrapers (`finmon ingest`) against a local HTTP server on 127.0.0.1 and the real test broker.

The server serves the project-written fixtures in tests/fixtures/feeds/ (invented headlines) plus broken
routes (HTTP 500, garbage, a slow response), counts conditional requests, and records when each request
arrived, so politeness (robots.txt, per-host spacing) is measured where it matters: at the server.
Nothing here touches the internet (the DNS test uses the reserved .invalid domain).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy.exc import OperationalError

from monitor.clock import ManualClock
from monitor.config import Settings
from monitor.ingest.config import IngestConfig, load_feeds
from monitor.ingest.errors import FeedConfigError
from monitor.ingest.http import user_agent
from monitor.ingest.service import Ingestor
from monitor.ingest.urls import canonical_url, clean_url, redact
from monitor.records import RawItem, decode_raw
from monitor.store.ingest import IngestState
from pipelines.ingest import command
from tests.conftest import REPO, make_settings, settings_env
from tests.pipeline_helpers import topic_count, topic_messages, wait_for

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
NOW = datetime(2025, 1, 6, 17, 0, tzinfo=UTC)
ROBOTS = "User-agent: finmon\nDisallow: /private/\n\nUser-agent: *\nAllow: /\n"


@dataclass
class Route:
    body: bytes
    content_type: str = "application/rss+xml"
    status: int = 200
    etag: str | None = None
    last_modified: str | None = None
    delay_s: float = 0.0


@dataclass
class FeedServer:
    """Routes by path (queries ignored); records (path, arrival, headers) of every request."""

    base: str = ""
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, float, dict[str, str]]] = field(default_factory=list)
    conditional_hits: dict[str, int] = field(default_factory=dict)

    def paths(self) -> list[str]:
        return [path for path, _, _ in self.requests]

    def serve_fixture(self, path: str, name: str, **kwargs: Any) -> None:
        body = (FIXTURES / name).read_text(encoding="utf-8").replace("{{BASE}}", self.base).encode()
        self.routes[path] = Route(body, **kwargs)


def _handler(server: FeedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            server.requests.append((path, time.monotonic(), dict(self.headers.items())))
            route = server.routes.get(path)
            if route is None:
                return self._send(404, b"not found", "text/plain", {})
            time.sleep(route.delay_s)
            if (route.etag and self.headers.get("If-None-Match") == route.etag) or (
                route.last_modified and self.headers.get("If-Modified-Since") == route.last_modified
            ):
                server.conditional_hits[path] = server.conditional_hits.get(path, 0) + 1
                return self._send(304, b"", route.content_type, {})
            validators = {"ETag": route.etag, "Last-Modified": route.last_modified}
            self._send(route.status, route.body, route.content_type, {k: v for k, v in validators.items() if v})

        def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the client gave up (the timeout test): expected

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    state = FeedServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads, httpd.block_on_close = True, False
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    state.routes["/robots.txt"] = Route(ROBOTS.encode(), "text/plain")
    state.serve_fixture("/rss.xml", "market_wire.rss.xml", etag='"mw-v1"')
    state.serve_fixture(
        "/atom.xml",
        "exchange_notices.atom.xml",
        content_type="application/atom+xml",
        last_modified="Mon, 06 Jan 2025 15:00:00 GMT",
    )
    state.serve_fixture("/api/news.json", "desk_api.json", content_type="application/json")
    state.serve_fixture("/nocache.xml", "market_wire.rss.xml")
    state.serve_fixture("/tracking.xml", "tracking_variants.rss.xml")
    state.serve_fixture("/private/feed.xml", "market_wire.rss.xml")
    state.serve_fixture("/long.xml", "extract_feed.rss.xml")
    state.serve_fixture("/articles/initech-expansion.html", "article.html", content_type="text/html")
    state.routes["/broken"] = Route(b"internal error", "text/plain", status=500)
    state.routes["/garbage"] = Route(b"<html><body>\x00\xff not a feed {", "text/html")
    state.routes["/slow"] = Route(b"<rss/>", delay_s=3.0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


JSON_FEED = {
    "name": "desk-api", "path": "/api/news.json", "format": "json",
    "json": {"items": "data.articles", "id": "uuid", "title": "headline", "body": "teaser", "url": "link",
             "published_at": "ts", "tickers": "meta.symbols"},
}  # fmt: skip


def feeds_file(tmp_path: Path, server: FeedServer, feeds: list[dict[str, Any]], **top: Any) -> Path:
    """Write a feeds file; a feed's `path` is turned into a URL on the test server."""
    entries = [
        {k: v for k, v in f.items() if k != "path"} | ({"url": server.base + f["path"]} if "path" in f else {})
        for f in feeds
    ]
    path = tmp_path / "feeds.yaml"
    path.write_text(yaml.safe_dump({"min_host_interval_s": 0, **top, "feeds": entries}), encoding="utf-8")
    return path


def config_for(tmp_path: Path, server: FeedServer, feeds: list[dict[str, Any]], **top: Any) -> IngestConfig:
    return load_feeds(feeds_file(tmp_path, server, feeds, **top))


def raw_items(settings: Settings) -> list[RawItem]:
    return [decode_raw(m, NOW, settings.limits) for m in topic_messages(settings, settings.kafka.topics.raw)]


def ingestor(settings: Settings, config: IngestConfig, **kwargs: Any) -> Ingestor:
    return Ingestor(settings, config, clock=ManualClock(NOW), **kwargs)


def test_rss_atom_and_json_items_land_in_news_raw(
    broker: Any, sqlite_url: str, tmp_path: Path, feed_server: FeedServer
) -> None:
    settings = make_settings(broker.bootstrap, sqlite_url)
    config = config_for(tmp_path, feed_server, [
        {"name": "market-wire", "path": "/rss.xml", "ticker_fields": ["finmon_tickers", "tags"],
         "tickers": ["MKT"]},
        {"name": "exchange", "path": "/atom.xml", "format": "atom"},
        JSON_FEED,
    ])  # fmt: skip
    with ingestor(settings, config) as ing:
        results = {r.feed: r for r in ing.run_once()}
    assert {name: (r.fetched, r.new, r.errors) for name, r in results.items()} == {
        "market-wire": (3, 3, 0), "exchange": (2, 2, 0), "desk-api": (3, 2, 1),  # desk-3 has no text
    }  # fmt: skip
    items = {item.title: item for item in raw_items(settings)}
    assert len(items) == 7 and len({item.id for item in items.values()}) == 7
    acme = items["Acme Corp beats quarterly estimates as $ACME shares jump"]
    assert acme.source == "market-wire" and acme.tickers == ("ACME", "GLBX", "MKT")
    assert acme.body == "Acme Corp reported revenue above forecasts & raised its outlook."
    assert acme.url == f"{feed_server.base}/news/acme-beats"  # tracking parameters removed
    assert acme.published_at == datetime(2025, 1, 6, 14, tzinfo=UTC) and acme.fetched_at == NOW
    assert items["Globex names new chief financial officer"].tickers == ("GLBX", "MKT")
    assert items["Regulator opens probe into Initech accounting"].published_at == NOW  # no date in the entry
    assert items["Hooli to present at investor conference next month ($HOOL)"].tickers == ("HOOL",)
    buyback = items["Umbrella Holdings announces record buyback"]
    assert buyback.body == "The board approved a $2bn repurchase programme."
    assert buyback.published_at == datetime(2025, 1, 6, 12, tzinfo=UTC)
    vandelay = items["Vandelay Industries shares slump after guidance cut"]
    assert vandelay.tickers == ("VDLY",) and vandelay.published_at == datetime(2025, 1, 6, 15, tzinfo=UTC)
    assert items["Analysts downgrade Initech on weak demand outlook"].tickers == ("INIT", "VDLY")
    agents = {headers.get("User-Agent") for _, _, headers in feed_server.requests}
    assert agents == {user_agent()} and user_agent().startswith("finmon/")


def test_conditional_get_second_poll_is_not_modified(
    broker: Any, sqlite_url: str, tmp_path: Path, feed_server: FeedServer
) -> None:
    settings = make_settings(broker.bootstrap, sqlite_url)
    config = config_for(
        tmp_path, feed_server, [{"name": "etag", "path": "/rss.xml"}, {"name": "last-modified", "path": "/atom.xml"}]
    )
    with ingestor(settings, config) as ing:
        first = ing.run_once()
        second = ing.run_once()
    assert [r.new for r in first] == [3, 2]
    assert [(r.not_modified, r.fetched, r.new, r.errors) for r in second] == [(1, 0, 0, 0), (1, 0, 0, 0)]
    assert feed_server.conditional_hits == {"/rss.xml": 1, "/atom.xml": 1}
    assert topic_count(settings, settings.kafka.topics.raw) == 5


def test_duplicates_are_dropped_across_a_restart(
    broker: Any, store_url: str, tmp_path: Path, feed_server: FeedServer
) -> None:
    settings = make_settings(broker.bootstrap, store_url)
    # /nocache.xml sends no validators, so the second process really re-reads every entry.
    config = config_for(tmp_path, feed_server, [{"name": "wire", "path": "/nocache.xml"}])
    with ingestor(settings, config) as first:
        assert [(r.new, r.duplicates) for r in first.run_once()] == [(3, 0)]
    with ingestor(settings, config) as restarted:  # new store engine, producer, fetcher, poller
        assert [(r.fetched, r.new, r.duplicates) for r in restarted.run_once()] == [(3, 0, 3)]
    assert feed_server.paths().count("/nocache.xml") == 2
    assert topic_count(settings, settings.kafka.topics.raw) == 3


def test_dedupe_keys_expire_after_the_retention(
    broker: Any, store_url: str, tmp_path: Path, feed_server: FeedServer
) -> None:
    settings = make_settings(broker.bootstrap, store_url)
    config = config_for(tmp_path, feed_server, [{"name": "wire", "path": "/nocache.xml"}], seen_retention_days=30)
    with ingestor(settings, config) as first:
        assert [r.new for r in first.run_once()] == [3]
        kept = first.state.count_seen()
        assert kept >= 3
    later = Ingestor(settings, config, clock=ManualClock(NOW + timedelta(days=29)))
    with later:  # inside the retention: nothing pruned, all duplicates
        assert [(r.new, r.duplicates) for r in later.run_once()] == [(0, 3)]
        assert later.state.count_seen() == kept
    expired = Ingestor(settings, config, clock=ManualClock(NOW + timedelta(days=31)))
    with expired:  # the keys are forgotten, so the same items are published again (deduped by id downstream)
        assert expired.prune_seen() == kept
        assert [r.new for r in expired.run_once()] == [3]
    assert topic_count(settings, settings.kafka.topics.raw) == 6


def test_a_crash_between_publish_and_mark_seen_republishes_never_loses(
    broker: Any, sqlite_url: str, tmp_path: Path, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(broker.bootstrap, sqlite_url)
    config = config_for(tmp_path, feed_server, [{"name": "wire", "path": "/rss.xml"}])

    def store_down(*_: Any) -> None:
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    with ingestor(settings, config) as ing:
        with monkeypatch.context() as patch:
            patch.setattr(IngestState, "mark_seen", store_down)
            [failed] = ing.run_once()
        assert failed.errors == 1 and "store error" in (failed.error or "")
        [retried] = ing.run_once()  # validators were not saved either: a full fetch, not a 304
        assert (retried.new, retried.not_modified) == (3, 0)
        assert ing.run_once()[0].not_modified == 1
    ids = [item.id for item in raw_items(settings)]
    assert len(ids) == 6 and len(set(ids)) == 3  # the same three ids twice; the sink keeps one copy


def test_tracking_parameter_variants_dedupe_to_one_item(
    broker: Any, sqlite_url: str, tmp_path: Path, feed_server: FeedServer
) -> None:
    settings = make_settings(broker.bootstrap, sqlite_url)
    config = config_for(tmp_path, feed_server, [{"name": "variants", "path": "/tracking.xml"}])
    with ingestor(settings, config) as ing:
        [result] = ing.run_once()
    assert (result.fetched, result.new, result.duplicates) == (4, 2, 2)
    urls = sorted(item.url for item in raw_items(settings))
    assert urls == [
        "https://news.example.com/markets/acme-guidance",
        "https://news.example.com/markets/globex-dividend?id=7",
    ]


def test_broken_feeds_are_reported_and_do_not_stop_good_ones(
    broker: Any, sqlite_url: str, tmp_path: Path, feed_server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="monitor.ingest")
    settings = make_settings(broker.bootstrap, sqlite_url)
    config = config_for(tmp_path, feed_server, [
        {"name": "server-error", "path": "/broken"},
        {"name": "garbage", "path": "/garbage"},
        {"name": "slow", "path": "/slow", "timeout_s": 0.5},
        {"name": "good", "path": "/rss.xml"},
        {"name": "no-such-host", "url": "http://feeds.invalid/rss.xml"},  # .invalid never resolves
    ], defaults={"interval_s": 60})  # fmt: skip
    with ingestor(settings, config) as ing:
        started = time.monotonic()
        results = {r.feed: r for r in ing.run_once()}
        assert time.monotonic() - started < 2.5  # the slow feed was cut at its timeout, not awaited
        assert results["good"].new == 3 and results["good"].errors == 0
        for name, kind in [
            ("server-error", "http_500"),
            ("garbage", "not an RSS/Atom feed"),
            ("slow", "timeout"),
            ("no-such-host", "dns"),
        ]:
            assert results[name].errors == 1 and kind in (results[name].error or ""), results[name]
            assert any(f"feed {name} (" in record.getMessage() for record in caplog.records), name
        # A failed feed backs off (skipped until its next interval) while good feeds keep polling.
        feeds = {feed.name: feed for feed in config.feeds}
        assert ing.poller.poll_if_due(feeds["server-error"]) is None
        assert ing.poller.poll_if_due(feeds["good"]) is not None
        # Once the server recovers, the next poll of the failed feed succeeds.
        feed_server.serve_fixture("/broken", "exchange_notices.atom.xml")
        assert ing.poller.poll(feeds["server-error"]).new == 2
    assert topic_count(settings, settings.kafka.topics.raw) == 5


def test_robots_txt_disallow_is_honoured(broker: Any, sqlite_url: str, tmp_path: Path, feed_server: FeedServer) -> None:
    settings = make_settings(broker.bootstrap, sqlite_url)
    config = config_for(
        tmp_path,
        feed_server,
        [{"name": "private", "path": "/private/feed.xml"}, {"name": "public", "path": "/rss.xml"}],
    )
    with ingestor(settings, config) as ing:
        private, public = ing.run_once()
        ing.run_once()
    assert private.errors == 1 and "robots" in (private.error or "") and private.new == 0
    assert public.new == 3
    assert not any(path.startswith("/private/") for path in feed_server.paths())
    assert feed_server.paths().count("/robots.txt") == 1  # cached per host


def test_per_host_rate_limit_spaces_requests(
    broker: Any, sqlite_url: str, tmp_path: Path, feed_server: FeedServer
) -> None:
    settings = make_settings(broker.bootstrap, sqlite_url)
    feeds = [
        {"name": name, "path": path}
        for name, path in [("a", "/rss.xml"), ("b", "/atom.xml"), ("c", "/tracking.xml"), ("d", "/nocache.xml")]
    ]
    config = config_for(tmp_path, feed_server, feeds, min_host_interval_s=0.4)
    with ingestor(settings, config) as ing:
        results = ing.run_once()  # four threads race for the same host
    assert all(r.errors == 0 for r in results)
    times = sorted(at for _, at, _ in feed_server.requests)
    assert len(times) == 5  # robots.txt + 4 feeds
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.38, gaps


def test_article_text_extraction_behind_a_flag(
    broker: Any, sqlite_url: str, tmp_path: Path, feed_server: FeedServer
) -> None:
    pytest.importorskip("trafilatura")
    settings = make_settings(broker.bootstrap, sqlite_url)
    config = config_for(tmp_path, feed_server, [{"name": "long-reads", "path": "/long.xml"}])
    with ingestor(settings, config, extract=True) as ing:
        [result] = ing.run_once()
    assert result.new == 1
    [item] = raw_items(settings)
    assert "open offices in three new countries" in item.body and "Sign in" not in item.body


def test_cli_once_prints_a_json_summary_per_feed(
    broker: Any, sqlite_url: str, tmp_path: Path, feed_server: FeedServer
) -> None:
    settings = make_settings(broker.bootstrap, sqlite_url)
    path = feeds_file(
        tmp_path, feed_server, [{"name": "wire", "path": "/rss.xml"}, {"name": "broken", "path": "/broken"}]
    )
    result = CliRunner().invoke(command, ["--config", str(path), "--once"], obj=settings)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(x["feed"], x["fetched"], x["new"], x["duplicates"], x["errors"], x["not_modified"]) for x in lines] == [
        ("wire", 3, 3, 0, 0, 0), ("broken", 0, 0, 0, 1, 0)]  # fmt: skip
    assert "http_500" in lines[1]["error"]


def test_sigterm_stops_the_scheduled_scraper_cleanly(
    broker: Any, sqlite_url: str, tmp_path: Path, feed_server: FeedServer
) -> None:
    settings = make_settings(broker.bootstrap, sqlite_url)
    path = feeds_file(tmp_path, feed_server, [{"name": "wire", "path": "/rss.xml", "interval_s": 1}])
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "ingest", "--config", str(path)],
        cwd=REPO,
        env=settings_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: topic_count(settings, settings.kafka.topics.raw) == 3, timeout=60)
        wait_for(lambda: feed_server.conditional_hits.get("/rss.xml", 0) >= 1, timeout=30, every=0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err[-3000:]
    assert "stopping" in err and topic_count(settings, settings.kafka.topics.raw) == 3


def test_feeds_file_errors_name_the_file_feed_and_field(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    with pytest.raises(FeedConfigError, match="not found"):
        load_feeds(path)
    path.write_text("feeds: [unclosed", encoding="utf-8")
    with pytest.raises(FeedConfigError, match="not valid UTF-8 YAML"):
        load_feeds(path)
    path.write_text(yaml.safe_dump({"feeds": [
        {"name": "ok", "url": "https://example.com/rss"},
        {"name": "typo", "url": "ftp://example.com/rss", "interval_s": 0, "extract": True},
    ]}), encoding="utf-8")  # fmt: skip
    with pytest.raises(FeedConfigError) as info:
        load_feeds(path)
    message = str(info.value)
    assert str(path) in message and "feed 'typo' (feeds[1]) field url" in message
    assert "field interval_s" in message and "field extract:" in message
    path.write_text(yaml.safe_dump({"feeds": [{"name": "x", "url": "https://a/"}] * 2}), encoding="utf-8")
    with pytest.raises(FeedConfigError, match="unique"):
        load_feeds(path)


def test_shipped_example_feeds_file_is_valid() -> None:
    config = load_feeds(REPO / "feeds.example.yaml")
    assert len(config.active) >= 4 and all(feed.url.startswith("https://") for feed in config.feeds)


def test_url_normalisation() -> None:
    assert clean_url("HTTPS://Example.COM:443/a?b=2&utm_source=x&a=1#top") == "https://example.com/a?a=1&b=2"
    assert canonical_url("http://www.example.com/a?fbclid=1") == canonical_url("https://example.com/a")
    assert (
        redact("https://u:pw@api.example.com/v1?apikey=s3cret&q=acme") == "https://api.example.com/v1?apikey=***&q=acme"
    )
