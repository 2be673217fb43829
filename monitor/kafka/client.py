"""kafka-python clients configured for finmon: idempotent acks=all producers, manual-commit group consumers,
topic bootstrap, and retries with backoff while the broker is unreachable."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from monitor.config import Settings
from monitor.errors import BrokerError

log = logging.getLogger(__name__)
T = TypeVar("T")


def with_retry(what: str, make: Callable[[], T], settings: Settings, stop: Callable[[], bool] = lambda: False) -> T:
    """Call `make` until it stops raising broker errors, backing off up to 5 s, for `connect_retry_s`."""
    deadline = time.monotonic() + settings.kafka.connect_retry_s
    delay = 0.2
    while True:
        try:
            return make()
        except (KafkaError, OSError) as exc:  # kafka-python 3: no-broker errors are KafkaErrors
            if time.monotonic() > deadline or stop():
                raise BrokerError(
                    f"{what}: Kafka at {settings.bootstrap} unreachable for "
                    f"{settings.kafka.connect_retry_s:.0f}s ({exc.__class__.__name__}); start it "
                    "with `finmon broker` or set FINMON_BOOTSTRAP"
                ) from exc
            log.warning(
                "%s: broker %s unreachable (%s), retrying in %.1fs",
                what,
                settings.bootstrap,
                exc.__class__.__name__,
                delay,
            )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def _bootstrap_ms(settings: Settings) -> int:
    """One bootstrap attempt's limit: short, so `with_retry` logs and backs off instead of hanging."""
    return int(min(settings.kafka.connect_retry_s, 3.0) * 1000)


def make_producer(settings: Settings, *, client_id: str = "finmon") -> KafkaProducer:
    """acks=all + idempotence: a retried send is never written twice."""
    return with_retry(
        "producer",
        lambda: KafkaProducer(
            bootstrap_servers=settings.bootstrap,
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            retries=2**31 - 1,
            max_request_size=settings.kafka.max_request_bytes,
            request_timeout_ms=30000,
            bootstrap_timeout_ms=_bootstrap_ms(settings),
        ),
        settings,
    )


def make_consumer(
    settings: Settings, group: str | None, topics: Iterable[str] = (), *, client_id: str = "finmon"
) -> KafkaConsumer:
    """A consumer that commits only when told to (after the stage's output is durable)."""
    topics = list(topics)

    def build() -> KafkaConsumer:
        consumer = KafkaConsumer(
            bootstrap_servers=settings.bootstrap,
            client_id=client_id,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=settings.kafka.session_timeout_ms,
            heartbeat_interval_ms=settings.kafka.heartbeat_interval_ms,
            fetch_max_wait_ms=settings.kafka.fetch_max_wait_ms,
            max_poll_records=settings.kafka.max_poll_records,
            max_partition_fetch_bytes=settings.kafka.max_request_bytes,
            fetch_max_bytes=max(settings.kafka.max_request_bytes, 50 * 1024 * 1024),
            bootstrap_timeout_ms=_bootstrap_ms(settings),
        )
        if topics:
            consumer.subscribe(topics)
        return consumer

    return with_retry(f"consumer {group or ''}", build, settings)


def close_consumer(consumer: KafkaConsumer, settings: Settings) -> None:
    """Close a group member without committing; it sends LeaveGroup only if `kafka.leave_group_on_close` (see
    KafkaSettings: with Tansu, a leader that leaves during a rebalance leaves its group leaderless for good)."""
    if not settings.kafka.leave_group_on_close:
        coordinator = getattr(consumer, "_coordinator", None)  # kafka-python has no public "close, don't leave"
        if coordinator is not None:
            coordinator.reset_generation()  # forget the membership locally: close() has no group left to leave
    consumer.close(autocommit=False)


def group_name(settings: Settings, stage: str) -> str:
    return f"{settings.kafka.group_prefix}-{stage}"


def ensure_topics(settings: Settings) -> list[str]:
    """Create the pipeline's topics if missing; return the ones created."""
    names = list(settings.kafka.topics.model_dump().values())
    admin = with_retry(
        "admin",
        lambda: KafkaAdminClient(bootstrap_servers=settings.bootstrap, bootstrap_timeout_ms=_bootstrap_ms(settings)),
        settings,
    )
    try:
        existing = set(admin.list_topics())
        missing = [n for n in names if n not in existing]
        for name in missing:
            # One at a time: another worker may win the race for any of them, which is fine.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([NewTopic(name, settings.kafka.partitions, settings.kafka.replication_factor,
                                              topic_configs=_topic_configs(settings))])
        return missing
    finally:
        admin.close()


def _topic_configs(settings: Settings) -> dict[str, str]:
    retention = settings.kafka.retention_ms
    return {"retention.ms": str(retention)} if retention is not None else {}


def partitions_of(consumer: KafkaConsumer, topic: str, timeout: float = 10.0) -> list[TopicPartition]:
    """Partitions of `topic` (waits for metadata; an unknown topic yields [])."""
    deadline = time.monotonic() + timeout
    while True:
        parts = consumer.partitions_for_topic(topic)
        if parts or time.monotonic() > deadline:
            return [TopicPartition(topic, p) for p in sorted(parts or ())]
        time.sleep(0.1)


def highwaters(consumer: KafkaConsumer, tps: list[TopicPartition], timeout: float = 10.0) -> dict[TopicPartition, int]:
    """True end offsets. Tansu's ListOffsets answer is too low (it points at the last batch), but a fetch from
    there reports the right high-water mark, so seek there and fetch once per partition."""
    if not tps:
        return {}
    consumer.assign(tps)
    for tp, offset in consumer.end_offsets(tps).items():
        consumer.seek(tp, offset or 0)
    deadline = time.monotonic() + timeout
    marks: dict[TopicPartition, int] = {}
    while len(marks) < len(tps) and time.monotonic() < deadline:
        consumer.poll(timeout_ms=200, max_records=1)
        for tp in tps:
            mark = consumer.highwater(tp)
            if mark is not None:
                marks[tp] = mark
    if len(marks) < len(tps):
        raise BrokerError(f"no high-water mark from the broker for {sorted(set(tps) - set(marks))}")
    return marks
