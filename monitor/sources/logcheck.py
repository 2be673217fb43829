"""Is a record still where the broker acknowledged it? Read back from the topic, not guessed from time.

A record that is still in the log at its acknowledged (partition, offset), with the same key and the same value,
is in flight: the consumer groups will get to it, and publishing it again would only make a duplicate. A record
that is not there any more - the offset is past the partition's end (a memory-only broker restarted and its
topic is new), before its start (retention dropped it), or holds another record (the topic was re-created and
refilled) - was lost.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from monitor.config import Settings
from monitor.errors import BrokerError
from monitor.kafka.client import highwaters, make_consumer, partitions_of
from monitor.store.outbox import Pending, payload_hash


def still_in_log(settings: Settings, topic: str, entries: Sequence[Pending], timeout_s: float) -> set[str]:
    """The item ids of `entries` whose record is still in `topic` where it was acknowledged."""
    wanted: dict[int, dict[int, Pending]] = defaultdict(dict)
    for entry in entries:
        if entry.partition >= 0 and entry.offset >= 0:
            wanted[entry.partition][entry.offset] = entry
    if not wanted:
        return set()
    consumer = make_consumer(settings, None, client_id="finmon-outbox")
    try:
        tps = partitions_of(consumer, topic, timeout=min(timeout_s, 10.0))
        marks = highwaters(consumer, tps, timeout=timeout_s)
        deadline = time.monotonic() + timeout_s
        found: set[str] = set()
        for tp in tps:
            here = {o: e for o, e in wanted.get(tp.partition, {}).items() if o < marks[tp]}
            if here:
                found |= _scan(consumer, tp, here, marks[tp], deadline)
        return found
    finally:
        consumer.close(autocommit=False)


def _scan(
    consumer: KafkaConsumer, tp: TopicPartition, here: dict[int, Pending], mark: int, deadline: float
) -> set[str]:
    """Read `tp` from the first wanted offset to the last; a partition that starts later (retention) just skips
    ahead (auto_offset_reset=earliest), so what was dropped is never found."""
    consumer.assign([tp])
    consumer.seek(tp, min(here))
    last = min(max(here) + 1, mark)
    found: set[str] = set()
    while consumer.position(tp) < last:
        if time.monotonic() > deadline:
            raise BrokerError(
                f"could not read {tp.topic}[{tp.partition}] back from the broker in time; the outbox is checked "
                "again later, nothing was re-published"
            )
        for record in consumer.poll(timeout_ms=200).get(tp, []):
            entry = here.get(record.offset)
            if entry is not None and _same(record, entry):
                found.add(entry.item_id)
    return found


def _same(record: Any, entry: Pending) -> bool:
    return bool(record.key == entry.key and payload_hash(record.value or b"") == entry.payload_hash)
