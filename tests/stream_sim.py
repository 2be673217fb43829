"""The live stage processors in one process, over an in-memory log with Kafka's delivery guarantees.

Per partition, records keep their order and offsets; a consumer group commits offsets per partition; a
worker that crashes loses its memory and its uncommitted batch, which the next owner reads again (so
news.scored gets duplicates, as at-least-once delivery does); rebalances move partitions between workers.
The processors are the real ones (`ClassifyProcessor` with the packaged model, `AggregateProcessor`,
`AlertService` in stream mode over the real store): only the broker is simulated, so that hypothesis can try
many interleavings in the time one real-broker run takes (tests/test_event_time.py runs the real thing).
"""

from __future__ import annotations

import random
from collections import namedtuple
from dataclasses import dataclass, field
from typing import Any

from monitor.alerts.rules import RuleSet
from monitor.alerts.service import AlertService, StreamClock
from monitor.classify.base import Classifier
from monitor.clock import ManualClock
from monitor.config import Settings
from monitor.core.lateness import partition_for
from monitor.kafka.stage import OutMessage
from monitor.records import ScoredItem, decode_scored_record
from monitor.stages.aggregate import AggregateProcessor
from monitor.stages.classify import ClassifyProcessor
from monitor.store import Store

Record = namedtuple("Record", "topic partition offset key value")


class Log:
    """A topic: partitions of records; a keyed message goes where Kafka's default partitioner puts it."""

    def __init__(self, name: str, partitions: int) -> None:
        self.name, self.parts = name, [[] for _ in range(partitions)]  # type: list[list[Record]]

    def append(self, msg: OutMessage) -> None:
        p = msg.partition if msg.partition is not None else partition_for(msg.key or b"", len(self.parts))
        self.parts[p].append(Record(self.name, p, len(self.parts[p]), msg.key, msg.value))


@dataclass
class Group:
    """A consumer group: committed offsets, workers, and which worker owns which partition."""

    committed: list[int]
    workers: list[Any]
    shift: int = 0

    def owned(self, worker: int) -> list[int]:
        return [p for p in range(len(self.committed)) if (p + self.shift) % len(self.workers) == worker]


@dataclass
class Outcome:
    dead: list[OutMessage] = field(default_factory=list)
    scored: dict[str, ScoredItem] = field(default_factory=dict)  # the first copy of each item on news.scored
    transitions: int = 0


def simulate(settings: Settings, classifier: Classifier, store: Store, raw_msgs: list[tuple[bytes, bytes]],
             rules: RuleSet, rng: random.Random, n_classify: int, n_aggregate: int, crash: float) -> Outcome:
    """Run classify, aggregate and stream-mode alerting over `raw_msgs` until everything is applied."""
    topics, clock = settings.kafka.topics, ManualClock(settings.limits.min_event_time)
    clock.set(max_time(raw_msgs))  # wall time for validation: after every item
    raw = Log(topics.raw, settings.kafka.partitions)
    for key, value in raw_msgs:
        raw.append(OutMessage(topics.raw, value, key))
    scored, out = Log(topics.scored, settings.kafka.partitions), Outcome()

    def new_classify() -> ClassifyProcessor:
        proc = ClassifyProcessor(settings, classifier, clock, store)
        proc.bind(lambda _topic: len(scored.parts))
        return proc

    def new_aggregate() -> AggregateProcessor:
        return AggregateProcessor(settings, store, clock)

    cgroup = Group([0] * len(raw.parts), [new_classify() for _ in range(n_classify)])
    agroup = Group([0] * len(scored.parts), [new_aggregate() for _ in range(n_aggregate)])
    alerting = AlertService(settings, store, StreamClock(store, topics.scored, settings.windows.grace), rules)

    def emit(messages: list[OutMessage]) -> None:
        for m in messages:
            if m.topic == topics.scored:
                scored.append(m)
                record = decode_scored_record(m.value)
                if isinstance(record, ScoredItem):
                    out.scored.setdefault(record.item.id, record)
            elif m.topic == topics.deadletter:
                out.dead.append(m)

    while not _done(raw, cgroup) or not _done(scored, agroup):
        roll = rng.random()
        if roll < 0.45 and not _done(raw, cgroup):
            _step(cgroup, raw, rng, crash, new_classify, emit, marks=True)
        elif roll < 0.9 and not _done(scored, agroup):
            _step(agroup, scored, rng, crash, new_aggregate, emit, marks=False)
        elif roll < 0.95:
            cgroup.shift += 1  # a rebalance: partitions move to other workers
            agroup.shift += 1
        else:
            out.transitions += len(alerting.evaluate())
        if _done(raw, cgroup):  # caught up: the workers say their partitions are idle, once
            for w, worker in enumerate(cgroup.workers):
                ends = {p: (len(raw.parts[p]), len(raw.parts[p])) for p in cgroup.owned(w)}
                emit(worker.housekeeping(ends, final=True))
    out.transitions += len(alerting.evaluate())
    return out


def _done(log: Log, group: Group) -> bool:
    return all(group.committed[p] >= len(part) for p, part in enumerate(log.parts))


def _step(group: Group, log: Log, rng: random.Random, crash: float, new: Any, emit: Any, marks: bool) -> None:
    w = rng.randrange(len(group.workers))
    worker = group.workers[w]
    owned = group.owned(w)
    batch = [r for p in owned for r in log.parts[p][group.committed[p]: group.committed[p] + rng.randint(0, 8)]]
    if batch:
        emit(worker.process(batch))
    if marks:
        positions = {p: (max([group.committed[p]] + [r.offset + 1 for r in batch if r.partition == p]),
                         len(log.parts[p])) for p in owned}
        emit(worker.housekeeping(positions))
    if rng.random() < crash:
        group.workers[w] = new()  # killed before committing: the batch is read again
        return
    for r in batch:
        group.committed[r.partition] = max(group.committed[r.partition], r.offset + 1)


def max_time(raw_msgs: list[tuple[bytes, bytes]]) -> Any:
    import json
    from datetime import datetime

    return max(datetime.fromisoformat(json.loads(v)["published_at"]) for _, v in raw_msgs)
