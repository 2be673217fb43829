"""The alerting service: evaluation, notification dispatch, event publishing and the daily digest behind one
lock, plus the APScheduler 3 wiring that runs them periodically (so `for` and repeat intervals advance
when no news arrives). The logic is in monitor/alerts/lifecycle.py and notify.py; this is wiring only.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from monitor.alerts.lifecycle import AlertEvaluator
from monitor.alerts.notify import Dispatcher, queue_digest
from monitor.alerts.rules import RuleSet, load_rules
from monitor.clock import EPOCH, INSTANT, Clock, SystemClock, from_micros, to_micros
from monitor.config import Settings
from monitor.core.streamtime import catching_up, complete_time
from monitor.core.ticks import following_tick
from monitor.store import Store
from monitor.store import alerts as astore
from monitor.store.sources import stream_clock_marks
from monitor.store.windows import next_window_end

log = logging.getLogger(__name__)


class StreamClock:
    """Event time every source has passed (monitor/core/streamtime.py): replays and backtests alert on it."""

    def __init__(self, store: Store, topic: str, grace: timedelta) -> None:
        self.store, self.topic, self.grace_us = store, topic, grace // INSTANT

    def now(self) -> datetime:
        with self.store.engine.connect() as conn:
            t_us = complete_time(stream_clock_marks(conn, self.topic), self.grace_us)
        return EPOCH if t_us is None else from_micros(t_us)


def make_clock(settings: Settings, store: Store) -> Clock:
    if settings.alerts.time_mode == "stream":
        return StreamClock(store, settings.kafka.topics.scored, settings.windows.grace)
    return SystemClock()


class AlertService:
    """Everything the alerting worker does, safe to call from the stage loop and scheduler threads."""

    def __init__(self, settings: Settings, store: Store, clock: Clock, rules: RuleSet | None = None) -> None:
        self.settings, self.store, self.clock = settings, store, clock
        self.rules = rules if rules is not None else load_rules(settings.alerts.rules_file)
        stream = settings.alerts.time_mode == "stream"
        self.evaluator = AlertEvaluator(store, self.rules, complete_only=stream)
        self.dispatcher = Dispatcher(store, self.rules, settings.alerts, clock)
        self.producer: Any = None  # set by the worker; tests may leave it None
        self._lock = threading.Lock()
        self._publish_lock = threading.Lock()  # one publisher at a time: no event sent twice by two threads
        self.step = timedelta(seconds=settings.alerts.stream_step_s) if stream else None
        self._sizes = sorted({rule.window for rule in self.rules.rules})
        self._held = False

    def evaluate(self) -> list[dict[str, Any]]:
        with self._lock:
            now = self.clock.now()
            if self.step is not None:
                transitions = self._catch_up(now)
            elif self._behind(now):
                return []
            else:
                transitions = self.evaluator.evaluate(now)
        if transitions:
            log.info("alerting: %d transition(s): %s", len(transitions),
                     ", ".join(f"{t['rule']}/{t['key']}->{t['state']}" for t in transitions))
        return transitions

    def _catch_up(self, now: datetime) -> list[dict[str, Any]]:
        """Stream mode: evaluate at the ticks (monitor/core/ticks.py) up to `now`, the time every source has
        passed, on complete windows only: a replay fires the same alerts at any speed, batch size and number
        of workers, and a catch-up never fires from a window that is still filling. The last tick evaluated
        is kept in the store, so a restarted worker goes on where it stopped."""
        step = self.step
        assert step is not None  # noqa: S101  (only called in stream mode)
        transitions: list[dict[str, Any]] = []
        with self.store.engine.connect() as conn:
            done = astore.evaluated_tick(conn, self.settings.kafka.topics.scored)
        tick = self._following(done, step)
        while tick is not None and tick <= now:
            transitions += self.evaluator.evaluate(tick - INSTANT)
            with self.store.engine.begin() as conn:
                astore.set_evaluated_tick(conn, self.settings.kafka.topics.scored, tick)
            tick = self._following(tick, step)
        return transitions

    def _behind(self, now: datetime) -> bool:
        """Wall mode: the stream is catching up (monitor/core/streamtime.catching_up); say so once."""
        cfg = self.settings.alerts
        with self.store.engine.connect() as conn:
            marks = stream_clock_marks(conn, self.settings.kafka.topics.scored)
        behind = catching_up(marks, to_micros(now), cfg.catchup_lag, int(cfg.catchup_age_s * 1_000_000))
        if behind != self._held:
            log.info("alerting: %s", "the stream is catching up: evaluation held until it is done" if behind
                     else "the stream has caught up: evaluating again")
            self._held = behind
        return behind

    def _following(self, tick: datetime | None, step: timedelta) -> datetime | None:
        with self.store.engine.connect() as conn:
            active = bool(astore.active_alerts(conn))
            next_end = next_window_end(conn, self._sizes, tick)
        return following_tick(tick, step, active, next_end)

    def dispatch(self) -> int:
        with self._lock:
            return self.dispatcher.dispatch()

    def digest(self) -> None:
        with self._lock:
            queue_digest(self.store, self.rules, self.settings.alerts.digest_channels, self.clock.now())

    def publish(self) -> int:
        """Send unpublished transitions to the `alerts` topic; mark them only once the broker acked them.

        At-least-once: a worker killed between the ack and the mark sends those transitions again after its
        restart, byte for byte the same message with the same `event_id`, which consumers dedupe on."""
        if self.producer is None:
            return 0
        with self._publish_lock:
            return self._publish()

    def _publish(self) -> int:
        with self._lock, self.store.engine.connect() as conn:
            pending = astore.unpublished_events(conn)
        if not pending:
            return 0
        topic = self.settings.kafka.topics.alerts
        futures = [self.producer.send(topic, key=e["key"].encode("utf-8"), value=transition_message(e))
                   for e in pending]
        self.producer.flush(timeout=30)
        for future in futures:
            future.get(timeout=30)
        with self.store.engine.begin() as conn:
            astore.mark_published(conn, [e["id"] for e in pending], self.clock.now())
        return len(pending)

    def cycle(self) -> None:
        """One periodic round: evaluate, publish transitions, send due notifications."""
        self.evaluate()
        self.publish_safely()
        self.dispatch()

    def publish_safely(self) -> None:
        try:
            self.publish()
        except Exception as exc:  # the broker may be away: events stay in the outbox for the next round
            log.warning("alerting: publishing transitions failed (%s); will retry", exc)


def transition_message(event: dict[str, Any]) -> bytes:
    """One transition as the `alerts` topic carries it: the public alert plus `event_id`, the transition's row in
    the store's outbox (unique per transition in one store, the same when the transition is sent again)."""
    return json.dumps({**event["payload"], "event_id": event["id"]}, separators=(",", ":")).encode("utf-8")


def start_scheduler(service: AlertService) -> BackgroundScheduler:
    """Periodic evaluation, dispatch and the daily digest (UTC) in background threads."""
    cfg = service.settings.alerts
    scheduler = BackgroundScheduler(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1})
    scheduler.add_job(service.cycle, IntervalTrigger(seconds=cfg.evaluate_every_s), id="evaluate")
    scheduler.add_job(service.dispatch, IntervalTrigger(seconds=cfg.dispatch_every_s), id="dispatch")
    hour, minute = (int(p) for p in cfg.digest_time.split(":"))
    scheduler.add_job(service.digest, CronTrigger(hour=hour, minute=minute, timezone=UTC), id="digest")
    scheduler.start()
    return scheduler
