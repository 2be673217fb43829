"""Publishing to news.raw with an outbox, so that a broker that forgets does not make finmon forget.

The embedded broker (Tansu) keeps topics in memory: when it restarts, every record published but not yet
scored is gone, while the publisher has already moved on (ingest marked the item seen, a replay passed it).
The store is therefore the record of what is done:

* *What is written when.* A record is sent, and once the broker has acknowledged it, an outbox entry is written
  (monitor/store/outbox.py): item id = Kafka key, the value bytes as sent, and where the ack put it (partition,
  offset). `finmon ingest` writes the entries in the same transaction as the items' dedupe keys, so an item
  is either seen *and* in the outbox, or neither (and then simply published again at the next poll). A replay
  writes them every 500 records or every second.
* *When an entry is done.* Once the item is stored (`scored_items` has the id) or that record was dead-lettered
  (a dead letter of news.raw has its key and value bytes). Done entries are pruned at each check; entries
  older than `outbox.retention_days` are dropped with a warning.
* *What is re-published when.* At start (`finmon ingest`, `finmon replay`, `finmon up --feed`) and, for ingest,
  every `outbox.check_every_s`: entries not done are read back from the topic (monitor/sources/logcheck.py).
  Those still at their offset with the same key and value are in flight in a healthy broker and left alone;
  time alone says nothing about that (a stopped classify worker can leave a record unscored for hours). Only
  the records the broker no longer has are re-published, byte for byte with the same key, after
  `outbox.settle_s` and a second look at the store: a worker that outlived the broker may still deliver an
  output it held, and re-publishing that item would turn the late copy into a `duplicate_id` dead letter.
  Each entry is claimed before its re-publish, so two publishers recovering at once never both send it.
* *Why nothing is counted twice.* Only items with no outcome in the store are sent again, and the store keys
  scored items by id. Two windows are left, and in both the item is still stored once while the extra copy
  becomes one `duplicate_id` dead letter: an output that lands after the settle delay, and a publisher killed
  between an ack and its outbox entry (ingest: before marking seen, as before; a replay: within a second),
  which sends that record again when it starts next while the first copy may still be in flight.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaTimeoutError
from sqlalchemy import Engine

from monitor.clock import Clock
from monitor.config import Settings
from monitor.errors import BrokerError
from monitor.kafka.client import ensure_topics, make_producer
from monitor.sources.logcheck import still_in_log
from monitor.store.outbox import Outbox, OutboxEntry, Pending, payload_hash

log = logging.getLogger(__name__)
RECOVER_BATCH = 500  # entries re-published per claim / send / record round


@dataclass(frozen=True, slots=True)
class Message:
    """One record for news.raw: the item id (its Kafka key and outbox identity) and the exact value bytes."""

    item_id: str
    value: bytes

    @property
    def key(self) -> bytes:
        return self.item_id.encode("utf-8")


@dataclass(frozen=True, slots=True)
class Recovery:
    """What one outbox check did."""

    pending: int = 0  # entries neither stored nor dead-lettered
    in_flight: int = 0  # ...of which the broker still holds the record
    republished: int = 0
    pruned: int = 0  # done entries removed
    expired: int = 0  # entries dropped after the retention


def content_id(value: bytes) -> str:
    """An id for a record that has none (a feed line that is not JSON): the same bytes, the same id."""
    return "sha256:" + hashlib.sha256(value).hexdigest()


Submitted = tuple[Message, Any]  # a message and the producer's future for it


class OutboxPublisher:
    """A producer for news.raw whose acknowledged records become outbox entries; `recover()` re-publishes the
    entries a restarted broker lost. Thread-safe: ingest polls and its periodic check share one."""

    def __init__(self, settings: Settings, engine: Engine, *, client_id: str, clock: Clock,
                 stop: threading.Event | None = None, timeout_s: float = 60.0) -> None:
        ensure_topics(settings)
        self.settings, self.topic, self.client_id = settings, settings.kafka.topics.raw, client_id
        self.outbox, self.clock, self.timeout_s = Outbox(engine), clock, timeout_s
        self.stop = stop or threading.Event()
        self._producer: KafkaProducer | None = None
        self._fresh_broker = False  # set when a send failed: the broker may have restarted without its topics
        self._lock = threading.RLock()

    @property
    def producer(self) -> KafkaProducer:
        if self._producer is None:
            if self._fresh_broker:
                # Otherwise the first send would auto-create news.raw with the broker's partition count.
                ensure_topics(self.settings)
                self._fresh_broker = False
            self._producer = make_producer(self.settings, client_id=self.client_id)
        return self._producer

    def submit(self, message: Message) -> Submitted:
        """Send without waiting; `confirm` collects the acks."""
        return message, self.producer.send(self.topic, key=message.key, value=message.value)

    def confirm(self, submitted: Sequence[Submitted]) -> tuple[list[OutboxEntry], list[BaseException]]:
        """Wait for the acks of `submitted`: the entries of those acknowledged, and the errors of the rest."""
        with contextlib.suppress(KafkaTimeoutError):  # the futures still pending say which were not acknowledged
            self.producer.flush(timeout=self.timeout_s)
        now = self.clock.now()
        entries: list[OutboxEntry] = []
        failures: list[BaseException] = []
        for message, future in submitted:
            if not future.is_done:
                failures.append(KafkaTimeoutError(f"no ack within {self.timeout_s:.0f}s"))
            elif future.failed():
                failures.append(future.exception)
            else:
                ack = future.value
                entries.append(OutboxEntry(self.topic, message.item_id, message.value, ack.partition, ack.offset, now))
        if failures:
            self._reset_producer()
        return entries, failures

    def send(self, messages: Sequence[Message]) -> list[OutboxEntry]:
        """Send and wait for every ack; raise `BrokerError` if any record was not acknowledged."""
        with self._lock:
            entries, failures = self.confirm([self.submit(m) for m in messages])
        if failures:
            raise BrokerError(f"{len(failures)} of {len(messages)} records not acknowledged by Kafka at "
                              f"{self.settings.bootstrap} ({failures[0].__class__.__name__})") from failures[0]
        return entries

    def record(self, entries: Sequence[OutboxEntry]) -> None:
        self.outbox.record(entries, self.clock.now())

    def already_sent(self, messages: Sequence[Message]) -> set[str]:
        """The ids of `messages` that need no publish: done, or in the outbox (in flight or just recovered)."""
        done = self.outbox.done(self.topic, {m.item_id: payload_hash(m.value) for m in messages})
        return done | (self.outbox.item_ids(self.topic) & {m.item_id for m in messages})

    def recover(self) -> Recovery:
        """Prune the outbox, then re-publish the records not done that the broker no longer holds."""
        cfg = self.settings.outbox
        ensure_topics(self.settings)  # a restarted broker has none; reading them back would wait for nothing
        pruned, expired = self.outbox.prune(self.topic, self.clock.now() - timedelta(days=cfg.retention_days))
        if expired:
            log.warning("outbox: dropped %d entries of %s not stored or dead-lettered within %g days",
                        expired, self.topic, cfg.retention_days)
        pending = self.outbox.entries(self.topic)  # what prune left: not done
        if not pending:
            return Recovery(pruned=pruned, expired=expired)
        present = still_in_log(self.settings, self.topic, pending, cfg.read_timeout_s)
        lost = [entry for entry in pending if entry.item_id not in present]
        republished = self._republish(lost, len(pending)) if lost else 0
        log.info("outbox: %d entries of %s not yet stored, %d still in the broker, %d re-published",
                 len(pending), self.topic, len(present), republished)
        return Recovery(len(pending), len(present), republished, pruned, expired)

    def _republish(self, lost: list[Pending], pending: int) -> int:
        log.warning(
            "outbox: %d of %d records published to %s but not yet stored are gone from the broker at %s "
            "(restarted? a memory-only broker forgets); publishing them again in %.0fs",
            len(lost), pending, self.topic, self.settings.bootstrap, self.settings.outbox.settle_s,
        )  # fmt: skip
        if self.stop.wait(self.settings.outbox.settle_s):
            return 0
        done = self.outbox.done(self.topic, {entry.item_id: entry.payload_hash for entry in lost})
        todo = [entry for entry in lost if entry.item_id not in done]
        sent = 0
        for i in range(0, len(todo), RECOVER_BATCH):
            claimed = self.outbox.claim(todo[i : i + RECOVER_BATCH])
            payloads = self.outbox.payloads(self.topic, [entry.item_id for entry in claimed])
            entries = self.send([Message(e.item_id, payloads[e.item_id]) for e in claimed if e.item_id in payloads])
            self.record(entries)
            sent += len(entries)
        return sent

    def _reset_producer(self) -> None:
        """Drop the producer after a failed send: an idempotent producer whose broker restarted (Tansu forgets
        producer ids) fails every later send for good, while a new one starts clean."""
        with self._lock:
            producer, self._producer, self._fresh_broker = self._producer, None, True
        if producer is not None:
            try:
                producer.close(timeout=5)
            except Exception as exc:  # closing a broken producer is best effort
                log.debug("outbox: closing the failed producer: %s", exc)

    def close(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(timeout=30)

    def __enter__(self) -> OutboxPublisher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
