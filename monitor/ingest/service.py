"""Wiring of `finmon ingest`: the Kafka publisher, the store, the fetcher and the poller in one `Ingestor`,
polled once (`--once`) or on per-feed schedules by APScheduler until a stop is requested (SIGTERM)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType

from apscheduler.executors.pool import ThreadPoolExecutor as SchedulerPool
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from kafka.errors import KafkaError
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from monitor.clock import Clock, SystemClock
from monitor.config import Settings
from monitor.errors import BrokerError, FinmonError
from monitor.ingest.config import IngestConfig
from monitor.ingest.extract import require_trafilatura
from monitor.ingest.http import Fetcher
from monitor.ingest.poller import FeedPoller, PollResult
from monitor.records import RawItem, encode
from monitor.sources.outbox import Message, OutboxPublisher, Recovery
from monitor.store import Store
from monitor.store.ingest import IngestState
from monitor.store.outbox import OutboxEntry

log = logging.getLogger(__name__)


class KafkaPublisher:
    """Publishes items to news.raw keyed by id, waits for every acknowledgement and returns the outbox entries;
    `recover()` re-publishes what a restarted broker lost (monitor/sources/outbox.py)."""

    def __init__(self, settings: Settings, engine: Engine, clock: Clock, stop: threading.Event,
                 timeout_s: float = 60.0) -> None:
        self.bootstrap = settings.bootstrap
        self.outbox = OutboxPublisher(settings, engine, client_id="finmon-ingest", clock=clock, stop=stop,
                                      timeout_s=timeout_s)

    def publish(self, items: Sequence[RawItem]) -> list[OutboxEntry]:
        try:
            return self.outbox.send([Message(item.id, encode(item)) for item in items])
        except BrokerError as exc:
            raise BrokerError(
                f"{len(items)} items not acknowledged by Kafka at {self.bootstrap} "
                f"({(exc.__cause__ or exc).__class__.__name__}); "
                "nothing was marked seen, so they are retried at the next poll"
            ) from exc

    def recover(self) -> Recovery:
        return self.outbox.recover()

    def close(self) -> None:
        self.outbox.close()


class Ingestor:
    """Everything one `finmon ingest` process holds; close it (or use `with`) to release it all."""

    def __init__(
        self,
        settings: Settings,
        config: IngestConfig,
        *,
        extract: bool = False,
        clock: Clock | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        if extract or any(feed.extract_text for feed in config.active):
            require_trafilatura()  # fail at start, not at the first new article
        self.config, self.stop = config, stop or threading.Event()
        self.clock, self.check_every_s = clock or SystemClock(), settings.outbox.check_every_s
        self.store = Store(settings.store_url)
        self.fetcher = Fetcher(config, stop=self.stop)
        try:
            self.store.create_schema()  # creates ingest_seen / ingest_feeds (monitor.store.ingest is imported)
            self.publisher = KafkaPublisher(settings, self.store.engine, self.clock, self.stop)
        except BaseException:
            self.fetcher.close()
            self.store.dispose()
            raise
        self.state = IngestState(self.store.engine)
        self._recovered = False
        self.poller = FeedPoller(
            config, self.fetcher, self.state, self.publisher, self.clock, settings.limits, extract=extract,
        )  # fmt: skip

    def run_once(self) -> list[PollResult]:
        """Poll every enabled feed once (after pruning expired dedupe keys and, the first time, checking the
        outbox)."""
        self.prune_seen()
        if not self._recovered:
            self.recover_outbox()
        return self.poller.poll_all(self.config.active)

    def recover_outbox(self) -> Recovery | None:
        """Re-publish what a restarted broker lost; a broker or store error is logged, not fatal (retried at
        the next check)."""
        self._recovered = True
        try:
            return self.publisher.recover()
        except (FinmonError, SQLAlchemyError, KafkaError) as exc:
            log.warning("ingest: outbox check failed (%s: %s); retried in %.0fs", exc.__class__.__name__,
                        str(exc).splitlines()[0][:200] if str(exc) else "", self.check_every_s)
            return None

    def prune_seen(self) -> int:
        """Drop dedupe keys older than `seen_retention_days`; a store error is logged, not fatal (retried daily)."""
        cutoff = self.clock.now() - timedelta(days=self.config.seen_retention_days)
        try:
            pruned = self.state.prune_seen(cutoff)
        except SQLAlchemyError as exc:
            log.warning("ingest: could not prune dedupe keys older than %s: %s", cutoff.isoformat(), exc)
            return 0
        if pruned:
            log.info("ingest: pruned %d dedupe keys first seen before %s", pruned, cutoff.isoformat())
        return pruned

    def run_forever(self) -> None:
        """Poll each feed on its own interval until `stop` is set; in-flight polls finish before returning."""
        self.prune_seen()
        self.recover_outbox()
        scheduler = self._scheduler()
        # APScheduler logs every run at INFO; the poller's own one-line result per poll says more.
        logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)
        scheduler.start()
        log.info("ingest: polling %d feeds (SIGTERM or Ctrl-C stops)", len(self.config.active))
        try:
            while not self.stop.wait(1.0):
                pass
        finally:
            log.info("ingest: stopping, waiting for polls in flight")
            scheduler.shutdown(wait=True)

    def _scheduler(self) -> BackgroundScheduler:
        workers = max(1, min(8, len(self.config.active)))
        scheduler = BackgroundScheduler(executors={"default": SchedulerPool(workers)}, timezone="UTC")
        for feed in self.config.active:
            scheduler.add_job(
                self.poller.poll_if_due, IntervalTrigger(seconds=feed.interval_s), args=[feed], id=feed.name,
                name=f"poll {feed.name}", max_instances=1, coalesce=True,
                misfire_grace_time=int(max(feed.interval_s, 1)), next_run_time=_first_run(),
            )  # fmt: skip
        scheduler.add_job(self.prune_seen, IntervalTrigger(days=1), id="prune-seen", name="prune dedupe keys",
                          max_instances=1, coalesce=True)
        scheduler.add_job(self.recover_outbox, IntervalTrigger(seconds=self.check_every_s), id="outbox",
                          name="check the outbox", max_instances=1, coalesce=True)
        return scheduler

    def close(self) -> None:
        self.stop.set()
        self.fetcher.close()
        self.publisher.close()
        self.store.dispose()

    def __enter__(self) -> Ingestor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _first_run() -> datetime:
    """Poll every feed right away at start instead of one interval later."""
    # APScheduler schedules in wall-clock time; this is scheduling, not item logic, so no injected clock.
    return datetime.now(UTC) + timedelta(milliseconds=100)
