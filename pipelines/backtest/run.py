"""The backtest run: feed -> scores (cached) -> windows + alerts in event time -> signal evaluation -> report.

`run_backtest` is the whole job behind `finmon backtest`; it takes its inputs as a `BacktestConfig` plus the
usual `Settings` (limits, window and rule configuration) and returns the metrics it wrote to metrics.json.
Input problems are found before the model runs, and raise `BacktestError` saying what to fix.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Connection

from monitor.alerts.rules import RuleSet, load_rules
from monitor.classify.base import Prediction
from monitor.classify.model import ModelConfig, resolve_model_dir
from monitor.classify.routing import by_language, mixed_labels
from monitor.clock import INSTANT, to_micros
from monitor.config import Settings
from monitor.core.lateness import replay_verdicts
from monitor.core.scoring import build_scored, with_language
from monitor.entities import Linker
from monitor.records import RawItem, ScoredItem
from monitor.sources.files import ColumnMap
from monitor.store import Store, as_utc
from monitor.store import windows as wstore
from monitor.store.track import save_track_records
from pipelines.backtest import events as ev
from pipelines.backtest import report
from pipelines.backtest import signals as sig
from pipelines.backtest.edges import check_overlap, edge_counts, edge_table
from pipelines.backtest.feed import load_feed
from pipelines.backtest.markets import market_days
from pipelines.backtest.prices import PriceColumns, calendar, load_prices, session_of
from pipelines.backtest.scoring import ScoreStats, make_scorer
from pipelines.backtest.stream import EventTimeReplay, StreamStats, fired_alerts
from pipelines.backtest.track import track_records

DEFAULT_CACHE = Path("~/.cache/finmon/scores")


@dataclass
class BacktestConfig:
    """Everything `finmon backtest` was asked to do."""

    feed: Path
    prices: Path
    out: Path
    rules: Path | None = None
    columns: ColumnMap = field(default_factory=ColumnMap)
    price_columns: PriceColumns = field(default_factory=PriceColumns)
    model: str | None = None
    quantize: bool = True
    device: str = "cpu"
    limit: int | None = None
    cache_dir: Path = DEFAULT_CACHE
    step: timedelta = timedelta(minutes=5)
    progress: bool = True
    # Store each rule's track record in the configured store (monitor/alerts/track.py), stamped with this time
    # (the CLI's clock, read once at the entry point); None: only report it in metrics.json.
    save_track_record_at: datetime | None = None


@dataclass
class Timer:
    """Wall time per phase (perf_counter: durations only, never a date in the logic)."""

    marks: dict[str, float] = field(default_factory=dict)
    start: float = field(default_factory=time.perf_counter)

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.marks[f"{name}_seconds"] = round(now - self.start - sum(self.marks.values()), 3)


def run_backtest(cfg: BacktestConfig, settings: Settings) -> dict[str, Any]:
    timer = Timer()
    rules = load_rules(cfg.rules if cfg.rules is not None else settings.alerts.rules_file)
    feed = load_feed(cfg.feed, cfg.columns, settings.limits, cfg.limit)
    prices = load_prices(cfg.prices, cfg.price_columns)
    days = calendar(prices)
    check_overlap(feed.items, prices, days)
    timer.lap("load")
    stats = ScoreStats()
    scored = score_items(cfg, settings, feed.items, stats)
    timer.lap("score")
    alerts, stream, counted = replay_alerts(scored, settings, rules, cfg)
    timer.lap("stream")
    metrics, parts = evaluate(scored, prices, days, alerts, counted)
    timer.lap("evaluate")
    metrics.update(_run_facts(cfg, feed.rejected, stats, stream, len(rules.rules)))
    metrics["n_late"] = sum(1 for s in scored if s.late)  # as live classify would decide for a replay
    metrics["track_record"] = _track_record(cfg, settings, rules, parts)
    _finish(cfg, metrics, parts, timer, stats)
    return metrics


def _track_record(cfg: BacktestConfig, settings: Settings, rules: RuleSet, parts: dict[str, Any]
                  ) -> dict[str, dict[str, Any]]:
    """Per rule: alerts fired, hit rates and mean CAR after them; saved to the store when asked."""
    at = cfg.save_track_record_at or datetime(1970, 1, 1, tzinfo=UTC)
    records = track_records(rules, parts["alerts"], parts["events"], f"backtest of {cfg.feed.name}", at)
    if cfg.save_track_record_at is not None:
        store = Store(settings.store_url)
        store.create_schema()
        with store.engine.begin() as conn:
            save_track_records(conn, [r.to_json() | {"computed_at": r.computed_at} for r in records])
        store.dispose()
    hidden = ("rule", "source", "computed_at")
    return {r.rule: {k: v for k, v in r.to_json().items() if k not in hidden} for r in records}


def score_items(cfg: BacktestConfig, settings: Settings, items: list[RawItem], stats: ScoreStats
                ) -> list[ScoredItem]:
    """ScoredItems as the classify stage would publish them, scored_at = event time (deterministic)."""
    items = [with_language(item) for item in items]  # the language picks the model, as in live classify
    predictions, versions = route_and_score(cfg, settings, items, stats)
    # lateness as live classify decides it for a replay of this feed (same keys, same partitions)
    grace_us = settings.windows.grace // INSTANT
    sources = replay_verdicts([item.id.encode("utf-8") for item in items],
                              [to_micros(item.published_at) for item in items], settings.kafka.partitions, grace_us,
                              [item.source for item in items])
    linker = Linker.from_settings(settings)  # the same tickers and relevance as live classify
    return [build_scored(item, p, version, item.published_at, src_partition=part, src_offset=offset,
                         verdict=verdict, linker=linker)
            for item, p, version, (part, offset, verdict) in zip(items, predictions, versions, sources, strict=True)]


def route_and_score(cfg: BacktestConfig, settings: Settings, items: list[RawItem], stats: ScoreStats
                    ) -> tuple[list[Prediction], list[str]]:
    """Each item scored by its language's model (`classify.models_by_lang`, monitor/classify/routing.py), one
    cached scorer per model; predictions and model versions in item order."""
    by_lang = settings.classify.models_by_lang
    routes = by_language(by_lang)  # what ModelRouter.model_for looks up, by name: nothing loaded yet
    groups: dict[str | None, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(routes.get((item.lang or "").lower(), cfg.model), []).append(i)
    check_routed_labels(cfg.model, {lang: name for lang, name in by_lang.items() if name in groups})
    predictions: list[Prediction | None] = [None] * len(items)
    versions = [""] * len(items)
    for name, indices in groups.items():
        scorer = make_scorer(cfg.cache_dir.expanduser(), name, cfg.device, cfg.quantize,
                             settings.classify.max_batch_tokens, cfg.progress)
        try:
            for i, p in zip(indices, scorer.score([items[i].text for i in indices], stats), strict=True):
                predictions[i], versions[i] = p, scorer.version
        finally:
            scorer.cache.close()
    return [p for p in predictions if p is not None], versions


def check_routed_labels(default: str | None, routed: dict[str, str]) -> None:
    """Refuse a routed model whose topic labels are not the default's (read from the configs, nothing loaded)."""
    base = ModelConfig.load(resolve_model_dir(default))
    for lang, name in routed.items():
        config = ModelConfig.load(resolve_model_dir(name))
        if config.topic_labels != base.topic_labels:
            raise mixed_labels(lang, config.name, config.topic_labels, base.name, base.topic_labels)


def replay_alerts(scored: list[ScoredItem], settings: Settings, rules: RuleSet, cfg: BacktestConfig
                  ) -> tuple[pd.DataFrame, StreamStats, pd.DataFrame]:
    """Windows and alerts on a temporary SQLite store, thrown away afterwards; also what the windows counted
    per ticker (signals.story_frame), for the story-aware signal."""
    with tempfile.TemporaryDirectory(prefix="finmon-backtest-") as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'backtest.db'}")
        try:
            store.create_schema()
            stream = EventTimeReplay(store, settings.windows, rules, cfg.step,
                                     stories=settings.stories).run(scored, cfg.progress)
            with store.engine.connect() as conn:  # the replay settled every applied item's story at its end
                counted = sig.story_frame(ticker_rows(conn))
            return fired_alerts(store), stream, counted
        finally:
            store.dispose()


def ticker_rows(conn: Connection) -> list[tuple[str, object, str, float, int]]:
    """(item id, event time, ticker, score, novelty) for every ticker key of every settled accepted item."""
    return [(r.item_id, as_utc(r.event_time), key.split(":", 1)[1], int(r.score_u) / 1_000_000, int(r.novelty))
            for r in wstore.settled_items(conn) for key in (r.keys or ())
            if isinstance(key, str) and key.startswith("ticker:")]


def evaluate(scored: list[ScoredItem], prices: pd.DataFrame, days: pd.DatetimeIndex, alerts: pd.DataFrame,
             counted: pd.DataFrame | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Signal and event-study metrics, and the tables and series the report shows; with `counted` (what the
    windows counted per ticker) the story-aware signal's too, as `story_*`."""
    frame = sig.item_frame(scored)
    cover = sig.coverage(frame, prices)
    daily = sig.daily_signals(frame, prices, days)
    metrics: dict[str, Any] = {"n_items": len(scored), "n_tickers": len(cover.priced),
                               "unpriced_tickers": cover.unpriced, "n_alerts": len(alerts),
                               "n_signal_rows": len(daily)}
    parts: dict[str, Any] = {"signals": daily}
    for h in sig.HORIZONS:
        metrics.update(_horizon_metrics(daily, h, parts))
    if counted is not None:
        stories = sig.story_signals(counted, prices, days)
        parts["story_signals"] = stories
        for h in sig.HORIZONS:
            metrics.update(_horizon_metrics(stories, h, parts, "story_"))
    abnormal = ev.abnormal_returns(prices)
    calendars = market_days(prices)
    events = ev.alert_events(alerts, abnormal, calendars)
    metrics.update(ev.event_metrics(events))
    metrics["n_alerts_by_rule"] = {str(k): int(v) for k, v in alerts["rule"].value_counts().sort_index().items()}
    alerts = alerts.assign(session=_alert_sessions(alerts, days, calendars))
    edges = edge_table(frame, prices, days, cover)
    metrics.update(edge_counts(edges))
    parts.update(events=events, curves=ev.car_curves(events), alerts=alerts, edges=edges)
    return metrics, parts


def _alert_sessions(alerts: pd.DataFrame, days: pd.DatetimeIndex, calendars: dict[str, pd.DatetimeIndex]
                    ) -> pd.Series:
    """The session of each alert: its ticker's market for a ticker key, New York for market and topic keys."""
    if alerts.empty:
        return pd.Series([], index=alerts.index, dtype=object)
    tickers = alerts["key"].str.extract(r"^ticker:(.+)$")[0].fillna("")
    return session_of(alerts["fired_at"], days, tickers, calendars).dt.date


def _horizon_metrics(daily: pd.DataFrame, h: int, parts: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    target = f"fwd_{h}d"
    ic = sig.daily_ic(daily, "sentiment", target)
    summary = sig.summarize_ic(ic)
    volume = sig.summarize_ic(sig.daily_ic(daily, "n_items", target))
    by_q = sig.quintile_returns(daily, target)
    spread = sig.long_short(by_q)
    parts[f"{prefix}ic_{h}d"], parts[f"{prefix}quintiles_{h}d"] = ic, by_q.mean()
    out = {f"ic_mean_{h}d": summary["mean"], f"ic_tstat_{h}d": summary["tstat"],
           f"hit_rate_{h}d": summary["hit_rate"], f"ic_days_{h}d": summary["days"],
           f"volume_ic_mean_{h}d": volume["mean"], f"volume_ic_tstat_{h}d": volume["tstat"],
           f"long_short_{h}d": float(spread.mean()) if len(spread) else None,
           f"quintile_days_{h}d": len(by_q),
           f"quintile_mean_{h}d": {str(int(q)): float(v) for q, v in by_q.mean().items()}}
    return {prefix + k: v for k, v in out.items()}


def _run_facts(cfg: BacktestConfig, rejected: Any, stats: ScoreStats, stream: StreamStats, n_rules: int
               ) -> dict[str, Any]:
    return {"n_rejected": sum(rejected.values()), "rejected": dict(sorted(rejected.items())),
            "cache_hits": stats.hits, "cache_misses": stats.misses, "n_rules": n_rules,
            "eval_ticks": stream.ticks, "stream_mode": stream.mode, "window_batches": stream.batches,
            "alert_transitions": stream.transitions,
            "quantize": cfg.quantize, "limit": cfg.limit}


def _finish(cfg: BacktestConfig, metrics: dict[str, Any], parts: dict[str, Any], timer: Timer,
            stats: ScoreStats) -> None:
    cfg.out.mkdir(parents=True, exist_ok=True)
    report.write_tables(cfg.out, parts["signals"], parts["alerts"], parts["events"])
    quintile_table = pd.DataFrame({f"{h}d": parts[f"quintiles_{h}d"] for h in sig.HORIZONS}).reset_index(
        names="quintile")
    parts.update(quintile_table=quintile_table, title=f"feed {cfg.feed}, prices {cfg.prices}, rules "
                 f"{cfg.rules or 'shipped default'}")
    report.write_html(cfg.out, metrics, parts)
    timer.lap("report")
    wall = round(time.perf_counter() - timer.start, 3)
    metrics.update(wall_seconds=wall, texts_per_s=round(metrics["n_items"] / wall, 1) if wall else None,
                   timings={**timer.marks, "model_seconds": round(stats.model_seconds, 3),
                            "model_texts_per_s": round(stats.misses / stats.model_seconds, 1)
                            if stats.model_seconds else None})
    report.write_metrics(cfg.out, metrics)

