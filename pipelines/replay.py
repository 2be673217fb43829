"""`finmon replay FILE`: publish a historical feed to news.raw, keeping the original event times.

`--speed max` publishes as fast as the broker takes it; `--speed N` paces the feed at N x real time (the gap
between two items' event times divided by N), so dashboards and alerts see history unfold.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from monitor.config import Settings
from monitor.errors import BrokerError, FinmonError
from monitor.kafka.client import ensure_topics, make_producer
from monitor.sources.files import ColumnMap, FileSource, dumps, event_time

log = logging.getLogger(__name__)
DEMO_FEED = Path(__file__).resolve().parent.parent / "monitor" / "data" / "demo_feed.jsonl"


@dataclass
class ReplayResult:
    published: int
    failed: int
    seconds: float


def parse_speed(value: str) -> float | None:
    """'max' -> None (no pacing); '60' or '60x' -> 60.0."""
    if value.lower() == "max":
        return None
    try:
        speed = float(value.lower().rstrip("x"))
    except ValueError as exc:
        raise click.BadParameter(f"{value!r}: use 'max' or a positive factor like 60") from exc
    if speed <= 0:
        raise click.BadParameter(f"{value!r}: the factor must be positive")
    return speed


def resolve_feed(path: str) -> Path:
    """`demo` names the bundled demo feed."""
    return DEMO_FEED if path == "demo" else Path(path)


class Pacer:
    """Sleeps so that event time advances `speed` times faster than wall time."""

    def __init__(self, speed: float | None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.speed, self.sleep = speed, sleep
        self._origin: tuple[float, float] | None = None

    def wait(self, record: dict[str, Any]) -> None:
        when = event_time(record)
        if self.speed is None or when is None:
            return
        stamp = when.timestamp()
        if self._origin is None:
            self._origin = (stamp, time.monotonic())
        due = self._origin[1] + (stamp - self._origin[0]) / self.speed
        delay = due - time.monotonic()
        if delay > 0:
            self.sleep(delay)


def publish(
    settings: Settings,
    records: list[dict[str, Any]],
    speed: float | None = None,
    progress: bool = True,
    unparsed: list[bytes] | None = None,
) -> ReplayResult:
    """Publish wire records to news.raw (keyed by id), then lines that were not JSON objects as they are
    (the classify stage dead-letters them with the reason); raise if any send failed."""
    ensure_topics(settings)
    producer = make_producer(settings, client_id="finmon-replay")
    failures: list[BaseException] = []
    pacer, start = Pacer(speed), time.monotonic()
    topic = settings.kafka.topics.raw
    try:
        for record in tqdm(records, desc="replay", unit="item", disable=not progress, mininterval=1.0):
            pacer.wait(record)
            future = producer.send(topic, key=str(record.get("id", "")).encode("utf-8"), value=dumps(record))
            future.add_errback(failures.append)
        for line in unparsed or ():
            producer.send(topic, value=line).add_errback(failures.append)
        producer.flush(timeout=120)
    finally:
        producer.close(timeout=30)
    if failures:
        raise BrokerError(
            f"{len(failures)} of {len(records)} items could not be published "
            f"(first error: {failures[0]!r}); re-run the replay: ids are stable"
        )
    return ReplayResult(len(records) + len(unparsed or ()), len(failures), time.monotonic() - start)


def column_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The column-mapping flags shared by replay and backtest."""
    for name in ("id", "ticker", "time", "text"):
        func = click.option(
            f"--{name}-col",
            default=None,
            help=f"Column holding the item {name} "
            "(default: the usual names, e.g. title/text, published_at/created_at).",
        )(func)
    return func


@click.command("replay")
@click.argument("feed", default="demo")
@column_options
@click.option("--speed", default="max", show_default=True, help="'max', or N for N x real time.")
@click.option("--limit", type=int, default=None, help="Publish only the first N items (in event-time order).")
@click.pass_obj
def command(
    settings: Settings,
    feed: str,
    text_col: str | None,
    time_col: str | None,
    ticker_col: str | None,
    id_col: str | None,
    speed: str,
    limit: int | None,
) -> None:
    """Publish FEED (CSV, JSONL, Parquet, a directory of them, or 'demo') to news.raw."""
    try:
        source = FileSource(resolve_feed(feed), ColumnMap(text_col, time_col, ticker_col, id_col))
        records = source.records()[:limit]
        result = publish(settings, records, parse_speed(speed), unparsed=source.unparsed)
    except FinmonError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"published {result.published} items from {feed} in {result.seconds:.1f}s", err=True)
