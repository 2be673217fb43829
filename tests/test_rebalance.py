"""Consumer groups through rebalances on the embedded broker (Tansu) with kafka-python.

- A worker that stops cleanly while its group rebalances must not leave the group without a leader: Tansu keeps a
  leader that sent LeaveGroup during a rebalance as the group's leader, and the members left behind then rejoin and
  fail SyncGroup forever (the scale-out test stalled so when classify worker c1 stopped as c3 joined).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from monitor.config import Settings
from monitor.kafka.broker import EmbeddedBroker
from monitor.kafka.client import close_consumer, ensure_topics, group_name, make_consumer
from tests.conftest import make_settings


class Member(threading.Thread):
    """A group member that keeps polling in the background; `assigned` is its latest assignment."""

    def __init__(self, settings: Settings, group: str, topic: str, name: str) -> None:
        super().__init__(daemon=True)
        self.settings, self.consumer = settings, make_consumer(settings, group, [topic], client_id=name)
        self.assigned: set[int] = set()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.consumer.poll(timeout_ms=200)
            self.assigned = {tp.partition for tp in self.consumer.assignment()}
        close_consumer(self.consumer, self.settings)


def _wait(predicate: Any, timeout: float, poll: Any = None) -> bool:
    """Wait until predicate() holds, polling `poll` (a consumer this thread drives) meanwhile."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        if poll is not None:
            poll.poll(timeout_ms=200)
        else:
            time.sleep(0.1)
    return True


@pytest.mark.slow
def test_a_leader_that_stops_during_a_rebalance_does_not_leave_its_group_without_a_leader(
    broker: EmbeddedBroker, tmp_path
) -> None:
    settings = make_settings(broker.bootstrap, f"sqlite:///{tmp_path / 'x.db'}", partitions=4)
    ensure_topics(settings)
    topic, group = settings.kafka.topics.raw, group_name(settings, "probe")
    leader = make_consumer(settings, group, [topic], client_id="leader")  # the first member leads
    assert _wait(lambda: bool(leader.assignment()), 60, poll=leader)
    others = [Member(settings, group, topic, "f")]
    others[0].start()
    assert _wait(lambda: bool(others[0].assigned), 60, poll=leader)
    # The leader is busy with a batch (no poll) when another worker joins: a rebalance begins...
    others.append(Member(settings, group, topic, "n"))
    others[1].start()
    try:
        assert _wait(lambda: leader._coordinator.rejoin_needed, 30)  # its heartbeat has seen the rebalance
        close_consumer(leader, settings)  # ...and it stops (SIGTERM) before rejoining
        everything = set(range(4))
        assert _wait(lambda: set().union(*(m.assigned for m in others)) == everything, 60), (
            f"the group never formed again: {[sorted(m.assigned) for m in others]}"
        )
    finally:
        for member in others:
            member.done.set()
        for member in others:
            member.join(30)

