"""Load a historical feed for a backtest: the replay's `FileSource`, then the live pipeline's own gate.

Every record goes through `decode_raw`, exactly as the classify stage would take it from `news.raw` (with
the record's own event time as `now`, since a backtest lives in event time). Records the gate rejects are
counted by reason instead of being scored: the backtest sees what the live monitor would have seen.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from monitor.config import LimitSettings
from monitor.errors import RecordError
from monitor.records import RawItem, decode_raw
from monitor.sources.files import ColumnMap, FileSource, dumps, event_time
from pipelines.backtest.errors import BacktestError


@dataclass
class Feed:
    """The valid items of a feed in event-time order, and what was rejected (reason -> count)."""

    items: list[RawItem]
    rejected: Counter[str] = field(default_factory=Counter)


def load_feed(path: str | Path, columns: ColumnMap, limits: LimitSettings, limit: int | None = None) -> Feed:
    """Read, merge by id, order by event time, keep the first `limit` items, validate each one."""
    source = FileSource(path, columns)
    records = source.records()[:limit] if limit is not None else source.records()
    feed = Feed(items=[])
    if source.unparsed:  # JSONL lines that are not JSON objects: live, these are dead-lettered
        feed.rejected["malformed_json"] += len(source.unparsed)
    for record in records:
        _admit(feed, record, limits)
    if not feed.items:
        raise BacktestError(_empty_message(path, len(records), feed.rejected))
    return feed


def _admit(feed: Feed, record: dict[str, object], limits: LimitSettings) -> None:
    when = event_time(record)
    if when is None or when.tzinfo is None:
        feed.rejected["invalid_time"] += 1
        return
    try:
        # the future-skew check compares with `now`: in event time, `now` is the record's own time
        feed.items.append(decode_raw(dumps(record), when, limits))
    except RecordError as exc:
        feed.rejected[exc.reason] += 1


def _empty_message(path: str | Path, n_records: int, rejected: Counter[str]) -> str:
    if n_records == 0:
        return f"the feed {path} holds no rows; give a CSV/JSONL/Parquet file with a text and a time column"
    reasons = ", ".join(f"{k}: {v}" for k, v in rejected.most_common())
    return (f"none of the {n_records} items in {path} is usable ({reasons}); check --text-col and --time-col "
            "(times must be ISO-8601, epoch seconds or bare dates)")


def items_with_tickers(items: list[RawItem]) -> int:
    """How many items name at least one ticker (the signal needs them)."""
    return sum(1 for item in items if item.tickers)
