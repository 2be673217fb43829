"""The loop every streaming stage runs: poll a micro-batch, process it, produce the output, wait for the
broker's acks, and only then commit the input offsets (at-least-once; the sinks are idempotent).

Stages differ only in their `Processor`. Bad records never stop the loop: a processor turns them into
dead letters, and a record that still makes the processor raise is dead-lettered by the runner.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kafka import TopicPartition
from kafka.errors import CommitFailedError, KafkaError, KafkaTimeoutError
from kafka.structs import OffsetAndMetadata

from monitor import metrics
from monitor.clock import Clock
from monitor.config import Settings
from monitor.errors import BrokerError
from monitor.kafka.client import close_consumer, make_consumer, make_producer
from monitor.records import DeadLetter, encode

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutMessage:
    """One record a stage produces."""

    topic: str
    value: bytes
    key: bytes | None = None
    reason: str | None = None  # set on dead letters, for the metrics
    partition: int | None = None  # None: the producer's partitioner picks one from the key


class Processor(Protocol):
    """A stage's logic: records in, messages out. Durable side effects (store writes) happen inside."""

    stage: str

    def process(self, records: Sequence[Any]) -> list[OutMessage]: ...

    def close(self) -> None: ...


class Housekeeper(Protocol):
    """Optional processor hooks: told how many partitions a topic has, and asked after every poll (records or
    not) for messages that depend on time passing, given each assigned input partition's (position, end
    offset or None while unknown); told which of those messages the broker acknowledged."""

    def bind(self, partitions_for: Callable[[str], int]) -> None: ...

    def housekeeping(self, progress: dict[int, tuple[int, int | None]], final: bool = False
                     ) -> list[OutMessage]: ...

    def housekeeping_sent(self, out: list[OutMessage]) -> None: ...

    def sent(self, out: list[OutMessage]) -> None:
        """The broker acknowledged every message `process` returned for the batch (called before its input
        offsets are committed; a crash in between redelivers the batch)."""


@dataclass
class StageStats:
    """Counters a stage keeps and logs; `finmon status` reads Kafka and the store instead."""

    records_in: int = 0
    messages_out: int = 0
    dead_letters: int = 0
    batches: int = 0
    started: float = field(default_factory=time.monotonic)

    def as_dict(self) -> dict[str, float]:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return {
            "records_in": self.records_in,
            "messages_out": self.messages_out,
            "dead_letters": self.dead_letters,
            "batches": self.batches,
            "records_per_s": round(self.records_in / elapsed, 1),
        }


def dead_letter_message(
    settings: Settings, record: Any, stage: str, reason: str, detail: str, clock: Clock
) -> OutMessage:
    """The dead-letter record for a consumed Kafka record; logs where it came from."""
    log.warning(
        "dead letter from %s: %s[%s]@%s %s: %s",
        stage,
        record.topic,
        record.partition,
        record.offset,
        reason,
        detail[:200],
        # Structured fields for --log-json: where the bad record sits, so it can be found and replayed.
        extra={"stage": stage, "topic": record.topic, "partition": record.partition, "offset": record.offset,
               "reason": reason},
    )
    letter = DeadLetter(
        payload=record.value if record.value is not None else b"",
        key=record.key,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        stage=stage,
        reason=reason,
        detail=detail,
        at=clock.now(),
    )
    return OutMessage(settings.kafka.topics.deadletter, encode(letter), record.key, reason)


class StageRunner:
    """Runs one processor over a consumer group until stopped, idle for too long, or signalled."""

    def __init__(
        self,
        settings: Settings,
        processor: Processor,
        topics: Sequence[str],
        group: str,
        clock: Clock,
        *,
        max_batch: int = 500,
        max_wait_ms: int = 50,
        fill_factor: float = 0.0,
        max_fill_ms: int = 2000,
        stop_after_idle: float | None = None,
        transient: tuple[type[BaseException], ...] = (),
        log_every_s: float = 10.0,
        heartbeat: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.settings, self.processor, self.topics, self.group = settings, processor, list(topics), group
        self.clock, self.max_batch, self.max_wait = clock, max_batch, max_wait_ms / 1000
        self.fill_factor, self.max_fill = fill_factor, max_fill_ms / 1000
        self._last_batch_s = 0.0  # how long the last batch took to process (see _fill_wait)
        self.stop_after_idle, self.transient, self.log_every_s = stop_after_idle, transient, log_every_s
        self.heartbeat = heartbeat
        self.stats = StageStats()
        self._stop = threading.Event()
        self._assigned: list[str] = []

    def stop(self, *_: Any) -> None:
        """Ask the loop to finish its batch, commit and close (also the SIGTERM/SIGINT handler)."""
        self._stop.set()

    def run(self) -> StageStats:
        self._install_signals()
        metrics.serve(self.settings.metrics_port, self.settings.metrics_host)
        consumer = make_consumer(self.settings, self.group, self.topics, client_id=self.processor.stage)
        producer = make_producer(self.settings, client_id=self.processor.stage)
        log.info("%s: consuming %s as group %s", self.processor.stage, self.topics, self.group)
        if hasattr(self.processor, "bind"):
            self.processor.bind(lambda topic: len(producer.partitions_for(topic)))
        try:
            self._loop(consumer, producer)
            self._housekeeping(consumer, producer, final=True)
        finally:
            close_consumer(consumer, self.settings)  # no LeaveGroup by default: see KafkaSettings.leave_group_on_close
            producer.close(timeout=10)
            self._beat(0.0, 0.0, stopped=True)
            self.processor.close()
            log.info("%s: stopped %s", self.processor.stage, self.stats.as_dict())
        return self.stats

    def _beat(self, rate: float, mean_batch: float, stopped: bool = False) -> None:
        """Tell the heartbeat sink what this worker consumes and how fast; never fails the stage."""
        if self.heartbeat is None:
            return
        # Lag of the partitions this worker still owns (set by _update_lag after each batch), so readers such
        # as the dashboard get consumer lag from the store instead of asking the broker.
        lag = {part: n for part, n in getattr(self, "_lag", {}).items() if part in self._assigned}
        snapshot = {"stage": self.processor.stage, "assigned": [] if stopped else self._assigned,
                    "records_per_s": rate, "mean_batch": mean_batch, "stopped": stopped,
                    "lag": {} if stopped else lag, **self.stats.as_dict()}
        try:
            self.heartbeat(snapshot)
        except Exception as exc:  # a heartbeat is best effort: the store may be down
            log.debug("%s: heartbeat failed: %s", self.processor.stage, exc)

    def _watch_assignment(self, consumer: Any) -> None:
        assigned = sorted(f"{tp.topic}[{tp.partition}]" for tp in consumer.assignment())
        if assigned != self._assigned:
            self._assigned = assigned
            log.info("%s: assigned %s", self.processor.stage, ", ".join(assigned) or "nothing")
            self._beat(0.0, 0.0)

    def _install_signals(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)

    def _loop(self, consumer: Any, producer: Any) -> None:
        last_record, last_log = time.monotonic(), time.monotonic()
        logged = StageStats(started=last_log)
        while not self._stop.is_set():
            batch = self._collect(consumer)
            self._watch_assignment(consumer)
            now = time.monotonic()
            if batch:
                last_record = now
                self._handle(batch, consumer, producer)
            elif not consumer.assignment():
                last_record = now  # idle time counts from when this member got partitions, not from start
            elif self.stop_after_idle is not None and now - last_record >= self.stop_after_idle:
                log.info("%s: idle for %.0fs, stopping", self.processor.stage, now - last_record)
                break
            self._housekeeping(consumer, producer)
            if now - last_log >= self.log_every_s:
                self._log_rates(logged, now - last_log)
                logged, last_log = StageStats(**{**self.stats.__dict__}), now

    def _housekeeping(self, consumer: Any, producer: Any, final: bool = False) -> None:
        """Time-driven output of the processor (e.g. idle source marks); nothing to commit. `final`: the
        loop has ended (stopped or idle), this is the last call."""
        hook = getattr(self.processor, "housekeeping", None)
        if hook is None or (self._stop.is_set() and not final):
            return
        progress: dict[int, tuple[int, int | None]] = {}  # partition -> (next offset to read, end offset)
        for tp in consumer.assignment():
            try:
                progress[tp.partition] = (consumer.position(tp), consumer.highwater(tp))
            except KafkaError:
                continue
        out = hook(progress, final) if final else hook(progress)
        if out and self._produce(producer, out) and hasattr(self.processor, "housekeeping_sent"):
            self.processor.housekeeping_sent(out)

    def _log_rates(self, prev: StageStats, elapsed: float) -> None:
        n_in = self.stats.records_in - prev.records_in
        n_out = self.stats.messages_out - prev.messages_out
        dead = self.stats.dead_letters - prev.dead_letters
        batches = max(self.stats.batches - prev.batches, 1)
        self._beat(n_in / elapsed, n_in / batches)
        log.info(
            "%s: %.1f in/s, %.1f out/s, %d dead letters, mean batch %.0f (total in %d)",
            self.processor.stage,
            n_in / elapsed,
            n_out / elapsed,
            dead,
            n_in / batches,
            self.stats.records_in,
        )

    def _fill_wait(self) -> float:
        """How long a batch may fill up after its first record: max_wait, or `fill_factor` times what the last
        batch cost, up to max_fill. A stage whose batches have a large fixed cost (a transaction, a pandas pass
        per window size) then spends at most about 1/(1 + fill_factor) of its time on that cost while records
        trickle in behind a slower upstream (a backlog drained by classify), instead of paying it for every
        upstream batch; a cheap stage keeps its short wait, and latency grows by at most max_fill."""
        return max(self.max_wait, min(self.fill_factor * self._last_batch_s, self.max_fill))

    def _collect(self, consumer: Any) -> list[Any]:
        """A micro-batch: wait up to 200 ms for a first record, then fill up for at most _fill_wait()."""
        batch: list[Any] = []
        deadline: float | None = None
        while len(batch) < self.max_batch and not self._stop.is_set():
            left = 0.2 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                break
            polled = consumer.poll(timeout_ms=int(left * 1000), max_records=self.max_batch - len(batch))
            for records in polled.values():
                batch.extend(records)
            if deadline is None:
                if not batch:
                    break
                deadline = time.monotonic() + self._fill_wait()
        return batch

    def _handle(self, batch: list[Any], consumer: Any, producer: Any) -> None:
        started = time.perf_counter()
        out = self._process(batch)
        if out is None:
            return  # stopped while waiting out a transient failure: nothing committed, redelivered later
        if not self._produce(producer, out):
            return
        if hasattr(self.processor, "sent"):  # the broker acknowledged every message of the batch
            self.processor.sent(out)
        self._commit(consumer, batch)
        self._last_batch_s = time.perf_counter() - started
        self._count(batch, out, self._last_batch_s)
        self._update_lag(consumer)

    def _count(self, batch: list[Any], out: list[OutMessage], seconds: float) -> None:
        stage = self.processor.stage
        dead = [m for m in out if m.topic == self.settings.kafka.topics.deadletter]
        self.stats.records_in += len(batch)
        self.stats.messages_out += len(out)
        self.stats.dead_letters += len(dead)
        self.stats.batches += 1
        metrics.RECORDS_IN.labels(stage).inc(len(batch))
        metrics.BATCH_SIZE.labels(stage).observe(len(batch))
        metrics.BATCH_SECONDS.labels(stage).observe(seconds)
        for message in out:
            metrics.MESSAGES_OUT.labels(stage, message.topic).inc()
        for message in dead:
            metrics.DEAD_LETTERS.labels(stage, message.reason or "unknown").inc()

    def _update_lag(self, consumer: Any) -> None:
        """Lag per assigned partition from the fetched high-water mark (Tansu's ListOffsets is too low); kept
        for the next heartbeat as {"topic[partition]": lag}, the format of `assigned`."""
        lag: dict[str, int] = {}
        for tp in consumer.assignment():
            mark = consumer.highwater(tp)
            if mark is not None:
                behind = max(mark - consumer.position(tp), 0)
                metrics.LAG.labels(self.processor.stage, tp.topic, str(tp.partition)).set(behind)
                lag[f"{tp.topic}[{tp.partition}]"] = behind
        self._lag = lag

    def _process(self, batch: list[Any]) -> list[OutMessage] | None:
        """The processor's output for a batch. A batch in hand when the stop signal arrives is still processed
        (once: a clean stop finishes its batch and commits it, so a drained group ends with lag 0); only the
        retries of a transient failure end with the stop (None: nothing committed, redelivered later)."""
        delay = 0.5
        while True:
            try:
                return self.processor.process(batch)
            except self.transient as exc:
                metrics.TRANSIENT.labels(self.processor.stage, exc.__class__.__name__).inc()
                if self._stop.is_set():
                    log.warning("%s: transient failure while stopping (%s); the batch of %d will be redelivered",
                                self.processor.stage, exc.__class__.__name__, len(batch))
                    return None
                log.warning(
                    "%s: transient failure (%s: %s), retrying the batch in %.1fs",
                    self.processor.stage,
                    exc.__class__.__name__,
                    str(exc).splitlines()[0][:200],
                    delay,
                )
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)
            except Exception:  # a bug or a poisonous record: find it, dead-letter it, keep going
                log.exception("%s: batch of %d failed; isolating records", self.processor.stage, len(batch))
                return self._isolate(batch)

    def _isolate(self, batch: list[Any]) -> list[OutMessage]:
        out: list[OutMessage] = []
        for record in batch:
            try:
                out.extend(self.processor.process([record]))
            except self.transient:
                raise
            except Exception as exc:
                detail = f"{exc.__class__.__name__}: {exc}"
                out.append(
                    dead_letter_message(
                        self.settings, record, self.processor.stage, "processing_error", detail, self.clock
                    )
                )
        return out

    def _produce(self, producer: Any, out: list[OutMessage]) -> bool:
        """Send and wait for every ack; retry while the broker is away. False if stopped meanwhile."""
        delay = 0.5
        while True:
            try:
                futures = [producer.send(m.topic, value=m.value, key=m.key, partition=m.partition) for m in out]
                if not self._await_acks(producer, len(out)):
                    return False
                for future in futures:
                    future.get(timeout=30)  # raises if the producer gave up on a record (delivery timeout)
                return True
            except (KafkaError, BrokerError) as exc:
                if self._stop.is_set():
                    return False
                metrics.TRANSIENT.labels(self.processor.stage, "produce").inc()
                log.warning("%s: producing failed (%s), retrying in %.1fs", self.processor.stage, exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)

    def _await_acks(self, producer: Any, n: int) -> bool:
        """Flush in short steps so an unreachable broker is reported while the producer keeps retrying the
        same records (re-sending them would only add duplicates)."""
        started = time.monotonic()
        while True:
            try:
                producer.flush(timeout=5)
                return True
            except KafkaTimeoutError:
                if self._stop.is_set():
                    return False
                metrics.TRANSIENT.labels(self.processor.stage, "broker_unreachable").inc()
                log.warning("%s: broker slow or unreachable: %d messages unacknowledged after %.0fs, waiting",
                            self.processor.stage, n, time.monotonic() - started)

    def _commit(self, consumer: Any, batch: list[Any]) -> None:
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for record in batch:
            tp = TopicPartition(record.topic, record.partition)
            if tp not in offsets or offsets[tp].offset <= record.offset:
                offsets[tp] = OffsetAndMetadata(record.offset + 1, "", -1)
        try:
            consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # A partition that moves to another member is re-read there from the last commit (our sinks are
            # idempotent). One that stays with this member is not: kafka-python 3 keeps a retained partition's
            # position across a rebalance, so without the seek below the batch would never be read or committed
            # again, and if it held a partition's last records that partition's lag would stay above 0 for good.
            # The usual case: the next poll of the batch already began a rejoin (RebalanceInProgressError).
            metrics.COMMIT_FAILURES.labels(self.processor.stage).inc()
            log.warning("%s: commit failed (%s); the batch will be redelivered", self.processor.stage, exc)
            self._rewind(consumer, batch)

    def _rewind(self, consumer: Any, batch: list[Any]) -> None:
        """Seek each partition of an uncommitted batch that this member still holds back to the batch's first
        record of that partition, so the batch is delivered again."""
        assigned = consumer.assignment()
        first: dict[TopicPartition, int] = {}
        for record in batch:
            tp = TopicPartition(record.topic, record.partition)
            first[tp] = min(first.get(tp, record.offset), record.offset)
        for tp, offset in first.items():
            if tp in assigned:
                consumer.seek(tp, offset)
