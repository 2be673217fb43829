"""Records on the wire: frozen dataclasses with a versioned JSON encoding, validated at every boundary.

`decode_raw` is the gate of the pipeline: it turns arbitrary bytes into a `RawItem` or raises `RecordError`
with a stable reason code, which the stage sends to the dead-letter topic.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from monitor.clock import ensure_utc
from monitor.config import LimitSettings
from monitor.errors import RecordError

SCHEMA_VERSION = 1
MARK_KIND = "source_mark"
STORY_KIND = "story"
_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z]{1,6}(?:[.-][A-Za-z]{1,2})?)(?![\w])")


@dataclass(frozen=True, slots=True)
class RawItem:
    """A news item as scrapers and replays publish it to `news.raw`."""

    id: str
    title: str
    published_at: datetime
    body: str = ""
    source: str = ""
    url: str = ""
    tickers: tuple[str, ...] = ()
    lang: str | None = None
    fetched_at: datetime | None = None

    @property
    def text(self) -> str:
        """What the classifier reads: the headline, then the body if there is one."""
        return f"{self.title}\n{self.body}" if self.body else self.title

    def to_wire(self) -> dict[str, Any]:
        out = asdict(self)
        out["v"] = SCHEMA_VERSION
        out["tickers"] = list(self.tickers)
        out["published_at"] = _iso(self.published_at)
        out["fetched_at"] = _iso(self.fetched_at) if self.fetched_at else None
        return out


@dataclass(frozen=True, slots=True)
class ScoredItem:
    """A raw item plus both heads' scores, as published to `news.scored` and stored."""

    item: RawItem
    topic: str
    topic_probs: dict[str, float]
    sentiment: str
    sentiment_probs: dict[str, float]
    model_version: str
    scored_at: datetime
    src_partition: int = -1  # where in news.raw it came from: tells redeliveries from duplicate ids
    src_offset: int = -1
    late: bool = False  # its source had delivered news more than the grace newer before it (monitor/core)
    source_time: datetime | None = None  # the newest event time its source had delivered before it
    # Every ticker the entity linker found, symbol -> relevance 0-100 (monitor/entities); `item.tickers` are
    # those at or above `entities.min_relevance`, most relevant first. None: scored before linking existed
    # (its tickers are the feed's and cashtags; window keys then also read company names, monitor/windows/keys.py).
    links: dict[str, int] | None = None
    # Its story (monitor/stories), settled at the watermark by the aggregate stage, after classify published the
    # record: None on `news.scored`; filled where the story is known (a `SettledStory` on `news.stories`
    # joined by item id, `with_story`, the store).
    story_id: str | None = None
    novelty: int | None = None

    @property
    def sentiment_score(self) -> float:
        """P(positive) - P(negative)."""
        return round(self.sentiment_probs["positive"] - self.sentiment_probs["negative"], 6)

    def to_wire(self) -> dict[str, Any]:
        out = self.item.to_wire()
        out.update(
            topic=self.topic,
            topic_probs=self.topic_probs,
            sentiment=self.sentiment,
            sentiment_probs=self.sentiment_probs,
            sentiment_score=self.sentiment_score,
            model_version=self.model_version,
            scored_at=_iso(self.scored_at),
            src_partition=self.src_partition,
            src_offset=self.src_offset,
            late=self.late,
            source_time=_iso(self.source_time) if self.source_time else None,
            links=self.links,
            story_id=self.story_id,
            novelty=self.novelty,
        )
        return out

    def with_story(self, settled: SettledStory) -> ScoredItem:
        """This record with the story the story pass settled for it."""
        if settled.id != self.item.id:
            raise ValueError(f"story of item {settled.id!r} given to item {self.item.id!r}")
        return replace(self, story_id=settled.story_id, novelty=settled.novelty)


@dataclass(frozen=True, slots=True)
class SettledStory:
    """An item's story as the story pass settled it (monitor/windows/stories.py), published by the aggregate
    stage to `news.stories` keyed by story id, so one story's items stay in order on one partition. Join it
    to the `news.scored` record by `id` (`ScoredItem.with_story`). Late items are never settled: no message."""

    id: str  # the item id
    story_id: str
    novelty: int  # 0..100: 100 starts a story, later copies within 24 h decay
    published_at: datetime  # the item's event time
    source: str
    tickers: tuple[str, ...]  # the ticker keys the story match compared (window keys `ticker:<SYMBOL>`)
    settled_at: datetime  # the aggregate stage's clock when it settled

    def to_wire(self) -> dict[str, Any]:
        return {"v": SCHEMA_VERSION, "kind": STORY_KIND, "id": self.id, "story_id": self.story_id,
                "novelty": self.novelty, "published_at": _iso(self.published_at), "source": self.source,
                "tickers": list(self.tickers), "settled_at": _iso(self.settled_at)}


@dataclass(frozen=True, slots=True)
class SourceMark:
    """A watermark a classify worker sends to every news.scored partition after the items it produced from
    one news.raw partition: everything that partition delivered up to `max_event_time` is in front of it.
    Consumers of news.scored that only want items skip records with `"kind": "source_mark"`."""

    src_topic: str
    src_partition: int
    through_offset: int  # the last news.raw offset the mark covers
    max_event_time: datetime | None  # the newest event time the partition has delivered (None: none yet)
    idle: bool  # caught up and quiet for the idle timeout: it does not hold stream time back
    fanout: int  # how many news.scored partitions receive this mark
    sent_at: datetime
    lag: int | None = None  # records of the partition still unread when it was sent (None: unknown)
    sources: int | None = None  # how many news.raw partitions there are: stream time waits for all of them

    def to_wire(self) -> dict[str, Any]:
        return {
            "v": SCHEMA_VERSION,
            "kind": MARK_KIND,
            "src_topic": self.src_topic,
            "src_partition": self.src_partition,
            "through_offset": self.through_offset,
            "max_event_time": _iso(self.max_event_time) if self.max_event_time else None,
            "idle": self.idle,
            "fanout": self.fanout,
            "sent_at": _iso(self.sent_at),
            "lag": self.lag,
            "sources": self.sources,
        }


# The columns of a window row, once: the store, sentiment.windows, the CLI, the dashboard and alert rules use these.
# Story columns (n_stories, n_negative_stories, sum_novelty, sum_nov_score_u and what derives from them) are
# filled by the story pass at the watermark (monitor/windows/stories.py), not by the per-batch sums.
WINDOW_COUNTS = ("count", "n_negative", "n_neutral", "n_positive", "n_stories", "n_negative_stories")
WINDOW_DERIVED = ("mean_sentiment", "negative_share", "neutral_share", "positive_share", "sentiment_index",
                  "story_sentiment", "story_negative_share")
WINDOW_ZSCORES = ("volume_z", "sentiment_z", "story_z", "story_sentiment_z")
WINDOW_METRICS = ("count", *WINDOW_DERIVED, *WINDOW_ZSCORES, "n_stories", "n_negative_stories")  # rule metrics
# The exact integer sums a window is derived from (stored, never published; see monitor/windows/engine.py).
WINDOW_SUMS = (*WINDOW_COUNTS, "sum_score_u", "sum_conf_u", "sum_conf_score_u", "sum_novelty", "sum_nov_score_u")
WINDOW_STORY_SUMS = ("n_stories", "n_negative_stories", "sum_novelty", "sum_nov_score_u")


@dataclass(frozen=True, slots=True)
class WindowRow:
    """One event-time window of one key (`market`, `topic:<name>`, `ticker:<SYMBOL>`), as the aggregate stage
    publishes it to `sentiment.windows` keyed by `key` (the latest message per window is its value)."""

    key: str
    size: str  # the spec label: `5min`, `1h`, `1d`, or `SIZE/HOP` for hopping windows
    window_start: datetime  # [start, end), UTC
    window_end: datetime
    count: int
    n_negative: int
    n_neutral: int
    n_positive: int
    n_stories: int  # distinct stories (items with novelty 100), settled at the watermark
    n_negative_stories: int
    mean_sentiment: float | None
    negative_share: float | None
    neutral_share: float | None
    positive_share: float | None
    sentiment_index: float | None
    story_sentiment: float | None  # novelty-weighted mean score
    story_negative_share: float | None  # n_negative_stories / n_stories
    volume_z: float | None  # None until the key has enough baseline windows
    sentiment_z: float | None
    story_z: float | None = None  # n_stories against the baseline (a message older than it: None)
    story_sentiment_z: float | None = None  # story_sentiment against the baseline

    @classmethod
    def from_mapping(cls, row: Any) -> WindowRow:
        """From any mapping with these fields (a store row, a decoded message); NaN becomes None. The story
        fields may be missing (a message from an aggregate stage older than them): 0 and None."""
        values = {name: row[name] if name in WINDOW_ROW_REQUIRED else row.get(name) for name in WINDOW_ROW_FIELDS}
        for name in (*WINDOW_DERIVED, *WINDOW_ZSCORES):
            value = values[name]
            values[name] = None if value is None or value != value else float(value)
        for name in WINDOW_COUNTS:
            values[name] = int(values[name] or 0)
        return cls(**values)

    def to_wire(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in WINDOW_ROW_FIELDS}
        out.update(window_start=_iso(self.window_start), window_end=_iso(self.window_end))
        return out


WINDOW_ROW_FIELDS = ("key", "size", "window_start", "window_end", *WINDOW_COUNTS, *WINDOW_DERIVED, *WINDOW_ZSCORES)
_STORY_FIELDS = ("n_stories", "n_negative_stories", "story_sentiment", "story_negative_share", "story_z",
                 "story_sentiment_z")
# What every window message has carried since before stories: a consumer may require only these.
WINDOW_ROW_REQUIRED = tuple(name for name in WINDOW_ROW_FIELDS if name not in _STORY_FIELDS)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record a stage could not use, kept whole with where it came from and why."""

    payload: bytes
    topic: str
    partition: int
    offset: int
    stage: str
    reason: str
    detail: str
    at: datetime
    key: bytes | None = field(default=None)

    def to_wire(self) -> dict[str, Any]:
        return {
            "v": SCHEMA_VERSION,
            "payload_b64": base64.b64encode(self.payload).decode("ascii"),
            "key_b64": base64.b64encode(self.key).decode("ascii") if self.key is not None else None,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "stage": self.stage,
            "reason": self.reason,
            "detail": self.detail,
            "at": _iso(self.at),
        }


def encode(record: RawItem | ScoredItem | SourceMark | SettledStory | WindowRow | DeadLetter) -> bytes:
    """Compact UTF-8 JSON of a record's wire form."""
    return json.dumps(record.to_wire(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def stable_id(*parts: str) -> str:
    """A deterministic id for items whose source has none (same input, same id, across runs)."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return digest[:24]


def extract_cashtags(text: str) -> tuple[str, ...]:
    """`$AAPL`-style cashtags in order of appearance, upper-cased, without duplicates."""
    seen: dict[str, None] = {}
    for match in _CASHTAG.finditer(text):
        seen.setdefault(match.group(1).upper(), None)
    return tuple(seen)


def normalize_tickers(values: Any) -> tuple[str, ...]:
    """Accept a list or a comma/space separated string; strip `$`, upper-case, drop blanks and repeats."""
    if values is None:
        return ()
    if isinstance(values, str):
        values = re.split(r"[,;\s]+", values)
    if not isinstance(values, list | tuple):
        raise RecordError("invalid_field", f"tickers must be a list of symbols, got {type(values).__name__}")
    out: dict[str, None] = {}
    for value in values:
        if not isinstance(value, str):
            raise RecordError("invalid_field", f"tickers must be strings, got {type(value).__name__}")
        symbol = value.strip().lstrip("$").upper()
        if symbol:
            out.setdefault(symbol, None)
    return tuple(out)


def parse_time(value: Any, field_name: str) -> datetime:
    """ISO-8601 (a trailing Z accepted) or epoch seconds/milliseconds, returned in UTC."""
    if isinstance(value, bool) or value is None:
        raise RecordError("missing_field" if value is None else "invalid_field", f"{field_name} is {value!r}")
    if isinstance(value, int | float):
        seconds = value / 1000 if abs(value) > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise RecordError("timestamp_out_of_range", f"{field_name}={value!r} is not a usable epoch") from exc
    if not isinstance(value, str):
        raise RecordError("invalid_field", f"{field_name} must be an ISO-8601 string, got {type(value).__name__}")
    try:
        return ensure_utc(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
    except ValueError as exc:
        raise RecordError("invalid_field", f"{field_name}={value[:60]!r} is not ISO-8601") from exc


def _iso(when: datetime) -> str:
    return ensure_utc(when).isoformat().replace("+00:00", "Z")


def _load_object(payload: bytes) -> dict[str, Any]:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(
            "not_utf8", f"payload is not UTF-8 (byte {exc.start}); producers must send UTF-8 JSON"
        ) from exc
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise RecordError("malformed_json", f"payload is not valid JSON: {str(exc)[:120]}") from exc
    if not isinstance(data, dict):
        raise RecordError("not_an_object", f"payload must be a JSON object, got {type(data).__name__}")
    version = data.get("v", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise RecordError("unsupported_version", f"schema version {version!r}; this finmon reads v{SCHEMA_VERSION}")
    return data


def _text_field(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RecordError("invalid_field", f"{name} must be a string, got {type(value).__name__}")
    return value


def _check_time(when: datetime, now: datetime, limits: LimitSettings) -> None:
    if when < limits.min_event_time or when > now + limits.max_future_skew:
        raise RecordError(
            "timestamp_out_of_range",
            f"published_at {_iso(when)} is outside [{_iso(limits.min_event_time)}, now + {limits.max_future_skew}]",
        )


def raw_from_wire(data: dict[str, Any], now: datetime, limits: LimitSettings) -> RawItem:
    """Validate a decoded wire object into a `RawItem`."""
    item_id = data.get("id")
    if item_id is None or item_id == "":
        raise RecordError("missing_field", "id is missing; publishers must give every item a stable id")
    if not isinstance(item_id, str | int) or isinstance(item_id, bool):
        raise RecordError("invalid_field", f"id must be a string, got {type(item_id).__name__}")
    title, body = _text_field(data, "title"), _text_field(data, "body")
    if not title.strip() and not body.strip():
        reason = "missing_field" if "title" not in data and "body" not in data else "empty_text"
        raise RecordError(reason, "the item has no text: give it a non-empty title or body")
    size = len(title.encode("utf-8")) + len(body.encode("utf-8"))
    if size > limits.max_text_bytes:
        raise RecordError(
            "text_too_large",
            f"text is {size} bytes, over the limit of {limits.max_text_bytes} "
            "(raise FINMON_LIMITS__MAX_TEXT_BYTES to accept it)",
        )
    published = parse_time(data.get("published_at"), "published_at")
    _check_time(published, now, limits)
    fetched = data.get("fetched_at")
    return RawItem(
        id=str(item_id),
        title=title,
        body=body,
        published_at=published,
        source=_text_field(data, "source"),
        url=_text_field(data, "url"),
        tickers=normalize_tickers(data.get("tickers")),
        lang=_text_field(data, "lang") or None,
        fetched_at=parse_time(fetched, "fetched_at") if fetched is not None else None,
    )


def decode_raw(payload: bytes | None, now: datetime, limits: LimitSettings) -> RawItem:
    """Bytes from `news.raw` to a valid `RawItem`, or `RecordError` with the reason."""
    if payload is None:
        raise RecordError("missing_field", "the record has no value (a tombstone?); publish a JSON object")
    return raw_from_wire(_load_object(payload), now, limits)


def decode_scored_record(payload: bytes) -> ScoredItem | SourceMark:
    """Bytes from `news.scored`: a scored item, or a classify worker's source mark."""
    data = _load_object(payload)
    if data.get("kind") == MARK_KIND:
        return _mark_from_wire(data)
    return _scored_from_wire(data)


def decode_scored(payload: bytes) -> ScoredItem:
    """Bytes from `news.scored` back to a `ScoredItem` (our own output: fields are trusted but checked)."""
    record = decode_scored_record(payload)
    if isinstance(record, SourceMark):
        raise RecordError("not_an_item", "a source mark, not a scored item")
    return record


def _mark_from_wire(data: dict[str, Any]) -> SourceMark:
    try:
        when = data.get("max_event_time")
        return SourceMark(
            src_topic=str(data["src_topic"]),
            src_partition=int(data["src_partition"]),
            through_offset=int(data["through_offset"]),
            max_event_time=parse_time(when, "max_event_time") if when else None,
            idle=bool(data["idle"]),
            fanout=int(data["fanout"]),
            sent_at=parse_time(data["sent_at"], "sent_at"),
            lag=int(data["lag"]) if data.get("lag") is not None else None,
            sources=int(data["sources"]) if data.get("sources") is not None else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordError("invalid_field", f"source mark is incomplete: {exc!r}") from exc


def _scored_from_wire(data: dict[str, Any]) -> ScoredItem:
    try:
        item = RawItem(
            id=str(data["id"]),
            title=data.get("title") or "",
            body=data.get("body") or "",
            published_at=parse_time(data["published_at"], "published_at"),
            source=data.get("source") or "",
            url=data.get("url") or "",
            tickers=normalize_tickers(data.get("tickers")),
            lang=data.get("lang"),
            fetched_at=parse_time(data["fetched_at"], "fetched_at") if data.get("fetched_at") else None,
        )
        return ScoredItem(
            item=item,
            topic=str(data["topic"]),
            topic_probs=dict(data["topic_probs"]),
            sentiment=str(data["sentiment"]),
            sentiment_probs=dict(data["sentiment_probs"]),
            model_version=str(data["model_version"]),
            scored_at=parse_time(data["scored_at"], "scored_at"),
            src_partition=int(data.get("src_partition", -1)),
            src_offset=int(data.get("src_offset", -1)),
            late=bool(data.get("late", False)),  # records written before source lateness: not late
            source_time=parse_time(data["source_time"], "source_time") if data.get("source_time") else None,
            links=_links(data.get("links")),
            story_id=str(data["story_id"]) if data.get("story_id") else None,  # '' or absent: not settled
            novelty=_novelty(data["novelty"]) if data.get("novelty") is not None else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordError("invalid_field", f"scored record is incomplete: {exc!r}") from exc


def decode_settled_story(payload: bytes) -> SettledStory:
    """Bytes from `news.stories` back to a `SettledStory`."""
    data = _load_object(payload)
    if data.get("kind") != STORY_KIND:
        raise RecordError("not_a_story", f"kind {data.get('kind')!r}, expected {STORY_KIND!r}")
    try:
        return SettledStory(id=str(data["id"]), story_id=str(data["story_id"]), novelty=_novelty(data["novelty"]),
                            published_at=parse_time(data["published_at"], "published_at"),
                            source=str(data.get("source") or ""), tickers=tuple(map(str, data.get("tickers") or ())),
                            settled_at=parse_time(data["settled_at"], "settled_at"))
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordError("invalid_field", f"story record is incomplete: {exc!r}") from exc


def _novelty(value: Any) -> int:
    novelty = int(value)
    if not 0 <= novelty <= 100:
        raise ValueError(f"novelty must be 0..100, not {novelty}")
    return novelty


def _links(value: Any) -> dict[str, int] | None:
    """symbol -> relevance of a scored record; None when the record predates entity linking."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"links must be an object of symbol -> relevance, not {type(value).__name__}")
    return {str(symbol): max(0, min(100, int(rel))) for symbol, rel in value.items()}


def decode_deadletter(payload: bytes) -> DeadLetter:
    """Bytes from `news.deadletter` back to a `DeadLetter`."""
    data = _load_object(payload)
    try:
        key = data.get("key_b64")
        return DeadLetter(
            payload=base64.b64decode(data["payload_b64"]),
            key=base64.b64decode(key) if key else None,
            topic=str(data["topic"]),
            partition=int(data["partition"]),
            offset=int(data["offset"]),
            stage=str(data["stage"]),
            reason=str(data["reason"]),
            detail=str(data.get("detail", "")),
            at=parse_time(data["at"], "at"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordError("invalid_field", f"dead-letter record is incomplete: {exc!r}") from exc
