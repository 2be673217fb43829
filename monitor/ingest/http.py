"""Polite HTTP for the scrapers: one User-Agent naming the project, robots.txt honoured (cached per origin),
a minimum interval between two requests to one host, whole-request timeouts and a body size cap.

Every failure becomes a `FetchError` with a short `kind` (timeout, dns, connect, http_500, robots,
too_large...), so a poll can report it and move on.
"""

from __future__ import annotations

import importlib.metadata
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

import httpx

from monitor.ingest.config import IngestConfig
from monitor.ingest.errors import FetchError, Stopping
from monitor.ingest.urls import host_of, redact

log = logging.getLogger(__name__)
ROBOTS_AGENT = "finmon"


def user_agent() -> str:
    """`finmon/<version> (+https://github.com/finmon/finmon)`: site owners can see who we are."""
    try:
        version = importlib.metadata.version("finmon")
    except importlib.metadata.PackageNotFoundError:
        version = "0"
    return f"finmon/{version} (+https://github.com/finmon/finmon)"


@dataclass(frozen=True, slots=True)
class Response:
    """What a fetch returns: 200 with a body, or 304 (not modified) without one."""

    status: int
    body: bytes
    headers: Mapping[str, str]
    url: str


class HostRateLimiter:
    """At least `interval_for(host)` seconds between the starts of two requests to one host, across threads.

    Each caller reserves the next free slot under a lock and sleeps outside it, so waiting for a slow host
    never blocks requests to other hosts.
    """

    def __init__(
        self,
        interval_for: Callable[[str], float],
        monotonic: Callable[[], float] = time.monotonic,
        stop: threading.Event | None = None,
    ) -> None:
        self.interval_for, self.monotonic = interval_for, monotonic
        self.stop = stop or threading.Event()
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def acquire(self, host: str) -> None:
        """Wait for this host's next slot; raise `Stopping` if shutdown is requested meanwhile."""
        with self._lock:
            now = self.monotonic()
            slot = max(now, self._next.get(host, now))
            self._next[host] = slot + self.interval_for(host)
        delay = slot - self.monotonic()
        # Event.wait doubles as an interruptible sleep: SIGTERM ends the wait at once.
        if (delay > 0 and self.stop.wait(delay)) or self.stop.is_set():
            raise Stopping("shutdown requested")


@dataclass
class _Robots:
    parser: RobotFileParser | None  # None: the host has no usable robots.txt, everything is allowed
    expires: float


@dataclass
class RobotsCache:
    """robots.txt per origin (RFC 9309): 4xx means no rules; 5xx or unreachable means stay away for now."""

    fetcher: Fetcher
    ttl_s: float
    _cache: dict[str, _Robots] = field(default_factory=dict)
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def allowed(self, url: str, timeout_s: float) -> bool:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with self._guard:
            lock = self._locks.setdefault(origin, threading.Lock())
        with lock:  # one robots.txt fetch per origin, even when its feeds are polled at the same time
            entry = self._cache.get(origin)
            if entry is None or entry.expires <= self.fetcher.monotonic():
                entry = self._load(origin, timeout_s)
                self._cache[origin] = entry
        return entry.parser is None or entry.parser.can_fetch(ROBOTS_AGENT, url)

    def _load(self, origin: str, timeout_s: float) -> _Robots:
        robots_url = f"{origin}/robots.txt"
        try:
            response = self.fetcher.request(robots_url, timeout_s=timeout_s, accept_errors=True)
        except FetchError as exc:
            raise FetchError(exc.kind, f"robots.txt unreachable ({exc.detail})") from exc
        if response.status >= 500:
            raise FetchError(f"http_{response.status}", f"{redact(robots_url)} answered {response.status}")
        expires = self.fetcher.monotonic() + self.ttl_s
        if response.status >= 400:
            return _Robots(None, expires)
        parser = RobotFileParser(robots_url)
        parser.parse(response.body.decode("utf-8", errors="replace").splitlines())
        return _Robots(parser, expires)


class Fetcher:
    """GETs through the rate limiter and robots.txt, with conditional-request headers when given."""

    def __init__(
        self,
        config: IngestConfig,
        *,
        client: httpx.Client | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        stop: threading.Event | None = None,
    ) -> None:
        self.config, self.monotonic = config, monotonic
        self.stop = stop or threading.Event()
        # Redirects are followed; robots.txt and the rate limit apply to the first URL only.
        self.client = client or httpx.Client(follow_redirects=True, headers={"User-Agent": user_agent()})
        self.limiter = HostRateLimiter(config.interval_for, monotonic, self.stop)
        self.robots = RobotsCache(self, config.robots_ttl_s)

    def get(self, url: str, *, timeout_s: float, headers: Mapping[str, str] | None = None) -> Response:
        """A 200 or 304 response for `url`, or `FetchError` (robots.txt, HTTP status, network, size)."""
        if not self.robots.allowed(url, timeout_s):
            raise FetchError("robots", f"robots.txt of {host_of(url)} disallows {redact(url)} for {ROBOTS_AGENT}")
        return self.request(url, timeout_s=timeout_s, headers=headers)

    def request(
        self, url: str, *, timeout_s: float, headers: Mapping[str, str] | None = None, accept_errors: bool = False
    ) -> Response:
        """One rate-limited GET; HTTP errors raise unless `accept_errors` (robots.txt wants to see them)."""
        self.limiter.acquire(host_of(url))
        try:
            response = self._stream(url, timeout_s, headers or {})
        except httpx.HTTPError as exc:
            raise _network_error(url, timeout_s, exc) from exc
        if response.status >= 400 and not accept_errors:
            raise FetchError(f"http_{response.status}", f"{redact(url)} answered HTTP {response.status}")
        return response

    def _stream(self, url: str, timeout_s: float, headers: Mapping[str, str]) -> Response:
        """Read the body in chunks so that a dripping server still hits the whole-request deadline."""
        deadline = self.monotonic() + timeout_s
        chunks, size = [], 0
        with self.client.stream("GET", url, headers=dict(headers), timeout=timeout_s) as response:
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > self.config.max_body_bytes:
                    raise FetchError("too_large", f"{redact(url)} sent over {self.config.max_body_bytes} bytes")
                if self.monotonic() > deadline:
                    raise FetchError("timeout", f"{redact(url)} took over {timeout_s:g}s to send its body")
                chunks.append(chunk)
            return Response(response.status_code, b"".join(chunks), dict(response.headers), str(response.url))

    def close(self) -> None:
        self.client.close()


def _network_error(url: str, timeout_s: float, exc: httpx.HTTPError) -> FetchError:
    host = host_of(url)
    if isinstance(exc, httpx.TimeoutException):
        return FetchError("timeout", f"{redact(url)} did not answer within {timeout_s:g}s")
    if _is_dns_failure(exc):
        return FetchError("dns", f"cannot resolve {host}: check the feed URL and this machine's DNS")
    if isinstance(exc, httpx.ConnectError):
        return FetchError("connect", f"cannot connect to {host} ({exc.__class__.__name__}): is the site up?")
    return FetchError("network", f"{redact(url)}: {exc.__class__.__name__}")


def _is_dns_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror) or "Name or service not known" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
