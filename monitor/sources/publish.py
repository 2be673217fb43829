"""Publishing a feed to news.raw: what `finmon replay` and `finmon up --feed` do.

Records are published in event-time order keyed by item id (then the feed lines that are not JSON objects,
as they are, keyed by a hash of their bytes: the classify stage dead-letters them with the reason), paced at
`speed` x real time or as fast as the broker takes them. Every acknowledged record gets an outbox entry
(monitor/sources/outbox.py), so a replay *resumes*: run again, it first re-publishes what a restarted broker
lost, then skips what is stored, dead-lettered or still in flight, and publishes only the rest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from monitor.clock import Clock, SystemClock
from monitor.config import Settings
from monitor.errors import BrokerError
from monitor.sources.files import dumps, event_time
from monitor.sources.outbox import Message, OutboxPublisher, Recovery, Submitted, content_id
from monitor.store import Store

log = logging.getLogger(__name__)
CONFIRM_EVERY = 500  # records between two waits for acks (and outbox writes)...
CONFIRM_EVERY_S = 1.0  # ...or seconds, whichever comes first


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a replay did: records sent (and failed) now, re-published from the outbox, skipped as done."""

    published: int
    failed: int
    seconds: float
    republished: int = 0
    skipped: int = 0


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


def record_message(record: dict[str, Any]) -> Message:
    """A wire record keyed by its id (a record without one is keyed by its bytes; classify rejects it)."""
    value = dumps(record)
    item_id = record.get("id")
    return Message(str(item_id) if item_id not in (None, "") else content_id(value), value)


def line_message(line: bytes) -> Message:
    return Message(content_id(line), line)


def publish(
    settings: Settings,
    records: list[dict[str, Any]],
    speed: float | None = None,
    progress: bool = True,
    unparsed: list[bytes] | None = None,
    *,
    resume: bool = True,
    clock: Clock | None = None,
) -> ReplayResult:
    """Publish wire records to news.raw (keyed by id), then lines that were not JSON objects as they are; with
    `resume` (the default) first re-publish what a restarted broker lost, then skip what an earlier run already
    brought to the pipeline; without it, publish every record again. Raises `BrokerError` at
    the first batch the broker did not acknowledge (what was acknowledged is in the outbox)."""
    started = time.monotonic()
    store = Store(settings.store_url)
    try:
        store.create_schema()
        with OutboxPublisher(settings, store.engine, client_id="finmon-replay", clock=clock or SystemClock()) as pub:
            recovery = pub.recover() if resume else Recovery()
            todo, lines, skipped = _unsent(pub, records, unparsed or [], resume)
            sent = _stream(pub, todo, lines, speed, progress)
    finally:
        store.dispose()
    if skipped:
        log.info("replay: skipped %d records already stored, dead-lettered or in flight", skipped)
    return ReplayResult(sent, 0, time.monotonic() - started, recovery.republished, skipped)


def _unsent(
    pub: OutboxPublisher, records: list[dict[str, Any]], unparsed: list[bytes], resume: bool
) -> tuple[list[tuple[dict[str, Any], Message]], list[Message], int]:
    todo = [(record, record_message(record)) for record in records]
    lines = [line_message(line) for line in unparsed]
    if not resume:
        return todo, lines, 0
    skip = pub.already_sent([m for _, m in todo] + lines)
    kept = [(record, m) for record, m in todo if m.item_id not in skip]
    kept_lines = [m for m in lines if m.item_id not in skip]
    return kept, kept_lines, len(todo) + len(lines) - len(kept) - len(kept_lines)


def _stream(
    pub: OutboxPublisher, todo: list[tuple[dict[str, Any], Message]], lines: list[Message], speed: float | None,
    progress: bool,
) -> int:
    """Send at the pace, confirming (and writing the outbox) every CONFIRM_EVERY records or CONFIRM_EVERY_S."""
    pacer, batch, sent, last = Pacer(speed), [], 0, time.monotonic()
    for record, message in tqdm(todo, desc="replay", unit="item", disable=not progress, mininterval=1.0):
        pacer.wait(record)
        batch.append(pub.submit(message))
        if len(batch) >= CONFIRM_EVERY or time.monotonic() - last >= CONFIRM_EVERY_S:
            sent += _confirm(pub, batch, len(todo) + len(lines))
            batch, last = [], time.monotonic()
    batch.extend(pub.submit(message) for message in lines)
    return sent + _confirm(pub, batch, len(todo) + len(lines))


def _confirm(pub: OutboxPublisher, batch: Sequence[Submitted], total: int) -> int:
    entries, failures = pub.confirm(batch)
    pub.record(entries)
    if failures:
        raise BrokerError(
            f"{len(failures)} of {total} items could not be published (first error: {failures[0]!r}); "
            "run the replay again: it resumes where this one stopped"
        )
    return len(entries)
