"""Wiring only: which stage consumes what, and how each is built from the settings."""

from __future__ import annotations

import logging
from typing import Any

from monitor.clock import Clock, SystemClock
from monitor.config import Settings
from monitor.kafka.client import group_name
from monitor.kafka.stage import Processor, StageRunner
from monitor.store import TRANSIENT_ERRORS, Store

log = logging.getLogger(__name__)
STAGES = ("classify", "sink", "aggregate", "alerting")


def stage_topics(settings: Settings) -> dict[str, list[str]]:
    """Input topics of each stage (its consumer group reads these)."""
    topics = settings.kafka.topics
    return {
        "classify": [topics.raw],
        "sink": [topics.scored, topics.deadletter],
        "aggregate": [topics.scored],
        "alerting": [topics.windows],
    }


def _runner(settings: Settings, stage: str, processor: Processor, clock: Clock, **options: Any) -> StageRunner:
    """A stage loop over the stage's input topics, as the member of its consumer group."""
    return StageRunner(
        settings, processor, stage_topics(settings)[stage], group_name(settings, stage), clock, **options
    )


def build_classify(
    settings: Settings, *, stop_after_idle: float | None = None, clock: Clock | None = None
) -> StageRunner:
    from monitor.classify.engine import load_classifier
    from monitor.classify.routing import ModelRouter
    from monitor.stages.classify import ClassifyProcessor

    clock = clock or SystemClock()
    cfg = settings.classify
    if cfg.threads is not None:
        import torch

        torch.set_num_threads(cfg.threads)
    classifier = ModelRouter.load(cfg.model, cfg.models_by_lang, lambda name: load_classifier(
        name, device=cfg.device, quantize=cfg.quantize, max_batch_tokens=cfg.max_batch_tokens))
    store = Store(settings.store_url)
    store.create_schema()
    return _runner(
        settings,
        "classify",
        ClassifyProcessor(settings, classifier, clock, store),
        clock,
        max_batch=cfg.max_batch,
        max_wait_ms=cfg.max_wait_ms,
        stop_after_idle=stop_after_idle,
        transient=TRANSIENT_ERRORS,  # resuming a partition reads its source snapshot from the store
    )


def build_sink(settings: Settings, *, stop_after_idle: float | None = None, clock: Clock | None = None) -> StageRunner:
    from monitor.stages.sink import SinkProcessor

    clock = clock or SystemClock()
    store = Store(settings.store_url)
    store.create_schema()
    return _runner(
        settings,
        "sink",
        SinkProcessor(settings, store, clock),
        clock,
        max_batch=1000,
        max_wait_ms=100,
        fill_factor=settings.kafka.fill_factor,
        max_fill_ms=settings.kafka.max_fill_ms,
        stop_after_idle=stop_after_idle,
        transient=TRANSIENT_ERRORS,
    )


def build_aggregate(
    settings: Settings, *, stop_after_idle: float | None = None, clock: Clock | None = None
) -> StageRunner:
    from monitor.stages.aggregate import AggregateProcessor

    clock = clock or SystemClock()
    settings = with_rule_windows(settings)
    store = Store(settings.store_url)
    store.create_schema()
    return _runner(
        settings,
        "aggregate",
        AggregateProcessor(settings, store, clock),
        clock,
        max_batch=settings.windows.max_batch,
        max_wait_ms=100,
        fill_factor=settings.kafka.fill_factor,
        max_fill_ms=settings.kafka.max_fill_ms,
        stop_after_idle=stop_after_idle,
        transient=TRANSIENT_ERRORS,
    )


def with_rule_windows(settings: Settings) -> Settings:
    """The window sizes the alert rules read are computed too: a rule on a size nobody computes would never
    fire, silently."""
    from monitor.alerts.rules import load_rules
    from monitor.windows import parse_spec

    have = {parse_spec(size).label for size in settings.windows.sizes}
    extra = [rule.window for rule in load_rules(settings.alerts.rules_file).rules
             if parse_spec(rule.window).label not in have]
    extra = list(dict.fromkeys(extra))
    if not extra:
        return settings
    log.info("aggregate: also computing %s windows, which alert rules read", ", ".join(extra))
    windows = settings.windows.model_copy(update={"sizes": (*settings.windows.sizes, *extra)})
    return settings.model_copy(update={"windows": windows})


def build_alerting(
    settings: Settings, *, stop_after_idle: float | None = None, clock: Clock | None = None
) -> StageRunner:
    from monitor.alerts.service import AlertService, make_clock, start_scheduler
    from monitor.kafka.client import make_producer
    from monitor.stages.alerting import AlertingProcessor

    store = Store(settings.store_url)
    store.create_schema()
    alert_clock = clock or make_clock(settings, store)
    service = AlertService(settings, store, alert_clock)
    service.producer = make_producer(settings, client_id="alerting-events")
    scheduler = start_scheduler(service)
    return _runner(
        settings,
        "alerting",
        AlertingProcessor(settings, service, alert_clock, scheduler),
        clock or SystemClock(),
        max_batch=2000,
        max_wait_ms=200,
        fill_factor=settings.kafka.fill_factor,
        max_fill_ms=settings.kafka.max_fill_ms,
        stop_after_idle=stop_after_idle,
        transient=TRANSIENT_ERRORS,
    )


BUILDERS = {
    "classify": build_classify,
    "sink": build_sink,
    "aggregate": build_aggregate,
    "alerting": build_alerting,
}


def build_stage(stage: str, settings: Settings, *, stop_after_idle: float | None = None) -> StageRunner:
    """A stage runner as `finmon worker` runs it: with a heartbeat in the store (readiness, System page)."""
    from monitor.store.heartbeats import HeartbeatWriter

    runner = BUILDERS[stage](settings, stop_after_idle=stop_after_idle)
    store = Store(settings.store_url)
    store.create_schema()
    runner.heartbeat = HeartbeatWriter(store.engine, SystemClock())
    return runner
