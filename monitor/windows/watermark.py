"""Lateness decisions that do not depend on how the stream was batched or whether a worker crashed.

Each input partition has its own watermark: the largest event time seen on it so far, minus the grace.
A record is *late* when its event time is before the watermark of its partition at the moment it is read.
Kafka delivers a partition in offset order, so the decision for a record is a function of the partition's
prefix alone: replaying from the last committed offset makes the same decisions an uninterrupted run made.

The first decision about an item id is final (kept with the item in the store); a redelivery or a
duplicate publish of the same id reuses it and does not move the watermark again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Arrival:
    """One decoded record as the aggregate stage saw it."""

    partition: int
    offset: int
    item_id: str
    t_us: int


@dataclass(slots=True)
class PartitionMark:
    """Per-partition state kept in the store: the max event time seen and the last offset that moved it."""

    max_t_us: int | None = None
    through_offset: int = -1

    def watermark(self, grace_us: int) -> int | None:
        return None if self.max_t_us is None else self.max_t_us - grace_us


def decide(arrivals: Iterable[Arrival], known: Mapping[str, bool], marks: dict[int, PartitionMark],
           grace_us: int) -> dict[str, bool]:
    """item id -> late? for every id in `arrivals` (read in partition/offset order); updates `marks`.

    `known` holds the decisions already stored; they are reused as they are.
    """
    decided: dict[str, bool] = dict(known)
    for arrival in sorted(arrivals, key=lambda a: (a.partition, a.offset)):
        if arrival.item_id in decided:
            continue
        mark = marks.setdefault(arrival.partition, PartitionMark())
        watermark = mark.watermark(grace_us)
        decided[arrival.item_id] = watermark is not None and arrival.t_us < watermark
        if mark.max_t_us is None or arrival.t_us > mark.max_t_us:
            mark.max_t_us = arrival.t_us
        mark.through_offset = max(mark.through_offset, arrival.offset)
    return decided
