"""The feeds file of `finmon ingest`: which feeds to poll, how often, and how to read them.

```yaml
min_host_interval_s: 1.0          # politeness: at least this long between two requests to one host
host_intervals: {www.sec.gov: 2}  # per-host overrides
defaults: {interval_s: 300}       # merged into every feed (a feed's own keys win)
seen_retention_days: 90           # dedupe keys older than this are pruned
feeds:
  - name: acme-wire
    url: https://example.com/rss.xml
    format: rss                   # rss | atom (both read by feedparser) | json
    tickers: [ACME]               # added to every item of this feed
```

Validation errors name the file, the feed and the field, so a typo is fixed without guessing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from monitor.ingest.errors import FeedConfigError

_STRICT = ConfigDict(frozen=True, extra="forbid")


class JsonMapping(BaseModel):
    """Where a JSON endpoint keeps its items and their fields (dotted paths, e.g. `data.articles`)."""

    model_config = _STRICT
    items: str = Field("", description="Dotted path to the list of items; '' = the body itself is the list.")
    id: str = "id"
    title: str = "title"
    body: str = "summary"
    url: str = "url"
    published_at: str = "published_at"
    tickers: str = "tickers"


class FeedConfig(BaseModel):
    """One feed: its URL, format, schedule and how its items become RawItems."""

    model_config = _STRICT
    name: str = Field(min_length=1, max_length=200, description="Becomes the items' `source`.")
    url: str
    format: Literal["rss", "atom", "json"] = "rss"
    interval_s: float = Field(300.0, ge=1, description="Seconds between two polls.")
    timeout_s: float = Field(15.0, gt=0, description="Whole-request limit (connect + all of the body).")
    extract_text: bool = Field(False, description="Fetch each new article and extract its text (trafilatura).")
    tickers: tuple[str, ...] = Field((), description="Tickers added to every item of this feed.")
    ticker_fields: tuple[str, ...] = Field((), description="Entry fields holding tickers (e.g. tags).")
    json_mapping: JsonMapping = Field(default_factory=JsonMapping, alias="json", description="For format: json.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers (never logged).")
    lang: str | None = Field(None, pattern=r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*$",
                             description="Language of every item (ISO 639-1, e.g. zh); unset: detected per item.")
    enabled: bool = True

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL; write it as https://host/path")
        return value


class IngestConfig(BaseModel):
    """The whole feeds file."""

    model_config = _STRICT
    feeds: tuple[FeedConfig, ...]
    min_host_interval_s: float = Field(1.0, ge=0, description="Least time between two requests to one host.")
    host_intervals: dict[str, float] = Field(default_factory=dict, description="Per-host overrides, by hostname.")
    max_backoff_s: float = Field(3600.0, gt=0, description="Longest pause of a failing feed between two polls.")
    robots_ttl_s: float = Field(3600.0, ge=0, description="How long a host's robots.txt is trusted.")
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="Larger responses are refused.")
    seen_retention_days: float = Field(
        90.0, gt=0, description="Dedupe keys older than this are forgotten (pruned at start and daily); keep it"
        " longer than any feed keeps an item listed, or old items are published again (and deduped by id later)."
    )

    @field_validator("feeds")
    @classmethod
    def _unique_names(cls, feeds: tuple[FeedConfig, ...]) -> tuple[FeedConfig, ...]:
        if not feeds:
            raise ValueError("no feeds: add at least one entry with a name and a url (see feeds.example.yaml)")
        names = [feed.name for feed in feeds]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"feed names must be unique (they key the dedupe state); repeated: {repeated}")
        return feeds

    @field_validator("host_intervals")
    @classmethod
    def _hosts(cls, intervals: dict[str, float]) -> dict[str, float]:
        negative = sorted(host for host, seconds in intervals.items() if seconds < 0)
        if negative:
            raise ValueError(f"intervals must be 0 or more seconds; negative for {negative}")
        return {host.lower(): seconds for host, seconds in intervals.items()}  # hostnames are case-insensitive

    def interval_for(self, host: str) -> float:
        """The politeness interval of one host."""
        return self.host_intervals.get(host.lower(), self.min_host_interval_s)

    @property
    def active(self) -> tuple[FeedConfig, ...]:
        return tuple(feed for feed in self.feeds if feed.enabled)


def load_feeds(path: Path | str) -> IngestConfig:
    """Read and validate a feeds file; every problem is reported with the file, feed and field."""
    path = Path(path)
    data = _read_yaml(path)
    data = _apply_defaults(path, data)
    try:
        return IngestConfig.model_validate(data)
    except ValidationError as exc:
        raise FeedConfigError(f"{path}: {_explain(exc, data)}; fix these entries and run again") from exc


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise FeedConfigError(
            f"feeds file {path} not found: pass an existing file to `finmon ingest --config` "
            "(feeds.example.yaml is a starting point)"
        ) from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise FeedConfigError(f"feeds file {path} is not valid UTF-8 YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise FeedConfigError(f"feeds file {path} must be a mapping with a `feeds:` list, not {type(data).__name__}")
    return data


def _apply_defaults(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """Merge `defaults:` into every feed mapping (the feed's own keys win)."""
    out = dict(data)
    defaults = out.pop("defaults", None) or {}
    if not isinstance(defaults, dict):
        raise FeedConfigError(f"{path}: `defaults` must be a mapping of feed settings, e.g. {{interval_s: 300}}")
    feeds = out.get("feeds")
    if isinstance(feeds, list):
        out["feeds"] = [{**defaults, **feed} if isinstance(feed, dict) else feed for feed in feeds]
    return out


def _explain(exc: ValidationError, data: dict[str, Any]) -> str:
    """'feed 'x' (feeds[2]) field interval_s: ...' for every error."""
    raw_feeds = data.get("feeds")
    feeds: list[Any] = raw_feeds if isinstance(raw_feeds, list) else []
    parts = []
    for err in exc.errors():
        loc = list(err["loc"])
        where = "top level"
        if len(loc) >= 2 and loc[0] == "feeds" and isinstance(loc[1], int):
            index = loc[1]
            feed = feeds[index] if index < len(feeds) else None
            name = feed.get("name") if isinstance(feed, dict) else None
            where = f"feed {name!r} (feeds[{index}])" if name else f"feeds[{index}]"
            loc = loc[2:]
        field = ".".join(str(p) for p in loc) or "(the entry itself)"
        message = "unknown setting, check its spelling" if err["type"] == "extra_forbidden" else err["msg"]
        parts.append(f"{where} field {field}: {message}")
    return "; ".join(parts)
