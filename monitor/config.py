"""One settings tree for every command, built once at the entry point and passed down (frozen).

Sources, highest priority first: explicit overrides (CLI flags), environment variables with the `FINMON_`
prefix (nested with `__`, e.g. `FINMON_KAFKA__PARTITIONS=8`), a YAML file (`--config` or `FINMON_CONFIG`),
then the defaults below.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from monitor.errors import ConfigError

_FROZEN = ConfigDict(frozen=True, extra="forbid")
DEFAULT_MIN_RELEVANCE = 40  # monitor.entities.DEFAULT_RELEVANCE_THRESHOLD
_YAML_PATH: ContextVar[Path | None] = ContextVar("finmon_yaml_path", default=None)


class TopicNames(BaseModel):
    """Kafka topic names of the pipeline."""

    model_config = _FROZEN
    raw: str = "news.raw"
    scored: str = "news.scored"
    windows: str = "sentiment.windows"
    stories: str = "news.stories"  # each accepted item's story once it is settled (monitor/records.SettledStory)
    alerts: str = "alerts"
    deadletter: str = "news.deadletter"


class KafkaSettings(BaseModel):
    """Kafka client behaviour; defaults are tuned for a live stream (see README, 'Kafka notes')."""

    model_config = _FROZEN
    topics: TopicNames = Field(default_factory=TopicNames)
    partitions: int = Field(4, ge=1, description="Partitions per topic when finmon creates it.")
    replication_factor: int = Field(1, ge=1)
    retention_ms: int | None = Field(None, description="retention.ms of created topics; None = broker default.")
    group_prefix: str = Field("finmon", description="Consumer groups are named <prefix>-<stage>.")
    session_timeout_ms: int = 6000
    heartbeat_interval_ms: int = 1000
    leave_group_on_close: bool = Field(
        False,
        description="Send LeaveGroup when a worker stops cleanly, so its partitions move at once instead of after "
        "session_timeout_ms. Off by default: if the member leaving is the group's leader and a rebalance is under "
        "way (another worker joining), the embedded broker (Tansu) keeps the departed leader as the group's leader "
        "and the group never forms again; a member that stops without leaving is evicted after the session "
        "timeout, and Tansu then elects a new leader. Safe to turn on with Apache Kafka.",
    )
    fetch_max_wait_ms: int = Field(
        500, ge=0,
        description="How long the broker may hold a fetch that finds nothing new. Tansu and Kafka answer as soon as "
        "records arrive, so this costs no latency; a short wait only makes idle consumers poll (20 ms: ~8% of a "
        "core per consumer, and the broker answering them).",
    )
    fill_factor: float = Field(
        8.0, ge=0.0,
        description="Sink, aggregate and alerting let a batch fill up for this many times what their last batch "
        "took to process (at most max_fill_ms): in a catch-up their fixed cost per batch is then paid for several "
        "classify batches at once, leaving the CPU to the model. 0 keeps the plain short wait.",
    )
    max_fill_ms: int = Field(5000, ge=0, description="Longest a sink, aggregate or alerting batch fills up.")
    max_poll_records: int = 2000
    max_request_bytes: int = Field(8 * 1024 * 1024, description="Producer request limit; above max_text_bytes.")
    connect_retry_s: float = Field(120.0, description="How long to keep retrying an unreachable broker.")


class LimitSettings(BaseModel):
    """What a valid news item looks like; anything outside goes to the dead-letter topic."""

    model_config = _FROZEN
    max_text_bytes: int = Field(64 * 1024, ge=1, description="Largest title+body accepted, in UTF-8 bytes.")
    min_event_time: datetime = datetime(1990, 1, 1, tzinfo=UTC)
    max_future_skew: timedelta = Field(timedelta(days=1), description="How far past 'now' an event may be.")


class ClassifySettings(BaseModel):
    """The classify stage: which model and how it batches."""

    model_config = _FROZEN
    model: str | None = Field(None, description="Model dir or HF id; None = the shipped default model.")
    models_by_lang: dict[str, str] = Field(
        default_factory=dict,
        description="Language (primary subtag as items carry it, e.g. zh) -> model (shipped name, dir or HF id) that"
        " scores items in that language; every other language uses `model`. E.g. {\"zh\": \"finmon-multilingual\"}.",
    )
    device: str = "auto"
    quantize: bool = Field(False, description="Dynamic int8 quantisation on CPU.")
    max_batch: int = Field(256, ge=1, description="Most items scored in one micro-batch.")
    max_wait_ms: int = Field(50, ge=0, description="Longest a micro-batch waits to fill up.")
    max_batch_tokens: int = Field(8192, ge=64, description="Token budget of one forward pass.")
    workers: int | None = Field(None, ge=1, description="Classify worker processes `finmon up` starts (one "
                                "consumer group sharing the news.raw partitions). None: one on a GPU; on CPU one "
                                "per core (at most the partitions, and 4), each with cores / workers threads.")
    threads: int | None = Field(None, ge=1, description="torch CPU threads of each classify worker; None: torch's "
                                "default (every core), or what `finmon up` chose for its workers.")


class WindowSettings(BaseModel):
    """The aggregate stage: event-time windows per key (see monitor/windows/__init__.py for the semantics)."""

    model_config = _FROZEN
    sizes: tuple[str, ...] = Field(
        ("5min", "1h", "1D"),
        description="Window specs: a pandas size ('5min', '1h', '1D') for tumbling windows, or 'SIZE/HOP' "
        "(e.g. '1h/15min') for hopping ones; the size must be a whole multiple of the hop.",
    )
    grace: timedelta = Field(
        timedelta(hours=1),
        description="How far out of event-time order a source (a news.raw partition) may deliver: an item more "
        "than this before the newest item its source had already delivered is late (dead-lettered). Stream "
        "time (event-time alerts) also waits this long behind the slowest source.",
    )
    mark_interval_s: float = Field(1.0, gt=0, description="Classify: at most one source mark per news.raw "
                                   "partition this often (wall seconds); marks carry stream time downstream.")
    idle_timeout_s: float = Field(10.0, gt=0, description="A news.raw partition that is caught up and has had no "
                                  "record for this long (wall seconds) is idle: it no longer holds stream time.")
    baseline_windows: int = Field(24, ge=2, description="Preceding windows a z-score is measured against.")
    min_baseline_windows: int = Field(6, ge=2, description="Non-empty baseline windows needed for a z-score.")
    volume_std_floor: float = Field(1.0, gt=0, description="Smallest std used for volume z-scores (counts).")
    sentiment_std_floor: float = Field(0.05, gt=0, description="Smallest std used for sentiment z-scores.")
    companies: dict[str, str] = Field(default_factory=dict, description="Extra company name -> ticker entries.")
    companies_file: Path | None = Field(None, description="YAML mapping of company name -> ticker to add.")
    max_batch: int = Field(1000, ge=1, description="Most records in one aggregate micro-batch.")


class EntitySettings(BaseModel):
    """Entity linking (monitor/entities): which companies are known and how relevant a link must be to count."""

    model_config = _FROZEN
    watchlist_file: Path | None = Field(None, description="YAML watchlist of your own companies: symbol -> names, "
                                        "aliases (see monitor/entities/watchlist.py); added to the shipped list.")
    min_relevance: int = Field(DEFAULT_MIN_RELEVANCE, ge=0, le=100,
                               description="Ticker windows count an item for a ticker only if its relevance "
                                           "(0-100) is at least this; `finmon link --json` lists the same.")
    universe: bool = Field(True, description="Also link the ~1,800 index companies of pytickersymbols; off: only "
                           "the shipped entities/companies files and your own entries.")
    listed: bool = Field(True, description="With `universe`, also link the ~2,700 other US-listed companies of "
                         "investpy's stocks table (if installed), by name, cashtag or exchange prefix only.")


class AlertSettings(BaseModel):
    """The alerting stage: rules, evaluation schedule, notification retries and the daily digest."""

    model_config = _FROZEN
    rules_file: Path | None = Field(None, description="Rules YAML; None = the shipped monitor/data/rules.yaml.")
    time_mode: str = Field("wall", pattern="^(wall|stream)$",
                           description="'wall': wall-clock time; 'stream': the stream's event time (replays).")
    evaluate_every_s: float = Field(15.0, gt=0, description="Periodic evaluation interval (APScheduler).")
    stream_step_s: float = Field(300.0, gt=0,
                                 description="Stream mode: also evaluate at the end of every step of event time "
                                             "since the last evaluation, so a replay fires the same alerts at any "
                                             "speed (like the backtest's --eval-every).")
    catchup_lag: int = Field(1000, ge=0, description="Wall mode: hold evaluation while a source's classify worker is "
                             "more than this many records behind (a catch-up: windows near now are still filling).")
    catchup_age_s: float = Field(60.0, gt=0, description="Wall mode: also hold it while the newest source mark of an "
                                 "active source is older than this (the aggregators are behind).")
    dispatch_every_s: float = Field(2.0, gt=0, description="How often pending notifications are (re)tried.")
    retry_max_attempts: int = Field(6, ge=1, description="Attempts per notification before it is marked failed.")
    retry_base_s: float = Field(2.0, gt=0, description="First retry delay; doubles each attempt.")
    retry_max_s: float = Field(300.0, gt=0, description="Longest delay between two attempts.")
    http_timeout_s: float = Field(10.0, gt=0)
    digest_time: str = Field("08:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="Daily digest, HH:MM UTC.")
    digest_channels: tuple[str, ...] = Field(("log",), description="Channels the daily digest goes to.")


class OutboxSettings(BaseModel):
    """The publishers' outbox (monitor/sources/outbox.py): records a restarted broker lost are published again."""

    model_config = _FROZEN
    settle_s: float = Field(15.0, ge=0, description="After finding records the broker lost, wait this long and check "
                                                   "the store again before re-publishing: outputs still in flight "
                                                   "from before the restart land first instead of turning into "
                                                   "duplicate_id dead letters.")
    retention_days: float = Field(7.0, gt=0, description="Entries not stored or dead-lettered after this many "
                                                         "days are dropped (Kafka's default retention).")
    check_every_s: float = Field(300.0, gt=0, description="`finmon ingest`: how often the outbox is checked "
                                                         "against the broker while it runs (also at start).")
    read_timeout_s: float = Field(30.0, gt=0, description="Longest a check may spend reading the topic back.")


class StorySettings(BaseModel):
    """Stories and novelty (monitor/stories): near-duplicates and copies of one story share a story id."""

    model_config = _FROZEN
    threshold: float = Field(0.5, gt=0, le=1, description="Estimated Jaccard similarity (word unigrams and "
                             "bigrams) at or above which an item joins a story.")
    num_perm: int = Field(64, ge=8, le=1024, description="MinHash permutations per signature.")
    bands: int = Field(16, ge=1, description="LSH bands; num_perm must be a multiple of it.")
    seed: int = Field(1, description="Seed of the MinHash permutations: every worker must use the same one.")
    window_hours: float = Field(24.0, gt=0, description="Novelty counts a story's earlier items within this "
                                "much event time; a story silent for longer is closed (a copy starts a new one).")
    decay: float = Field(0.75, gt=0, lt=1, description="Novelty = round(100 * decay ** earlier copies in window).")
    prune_hours: float = Field(48.0, gt=0, description="LSH entries of stories not seen for this much event time "
                               "(behind the newest item) are deleted; keep it >= window_hours + the lateness "
                               "you expect.")
    prune_every_hours: float = Field(1.0, gt=0, description="Prune once per this much event-time progress.")
    publish: bool = Field(True, description="Publish each settled item's story (item id, story id, novelty) to "
                          "the stories topic (news.stories), to join to its news.scored record by id.")
    settle_lag: timedelta | None = Field(
        None, description="How far behind the stream's processed time the aggregate stage settles stories. None: "
        "the grace when alerts run on stream time (exact: the same stories at any replay speed, whatever the "
        "disorder within the grace), 0 with wall-clock alerting (live: story rules see the news within seconds; "
        "an item that arrives later but older than settled ones is settled after them).",
    )

    @model_validator(mode="after")
    def _check_bands(self) -> StorySettings:
        if self.num_perm % self.bands:
            raise ValueError(f"num_perm ({self.num_perm}) must be a multiple of bands ({self.bands})")
        return self


class Settings(BaseSettings):
    """The whole finmon configuration."""

    model_config = SettingsConfigDict(env_prefix="FINMON_", env_nested_delimiter="__", frozen=True, extra="forbid")
    bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma separated.")
    store_url: str = Field("sqlite:///.finmon/finmon.db", description="SQLAlchemy URL of the store.")
    data_dir: Path = Field(Path(".finmon"), description="Where the embedded stack keeps logs and state.")
    log_level: str = "INFO"
    log_json: bool = False
    metrics_port: int | None = Field(None, description="Serve Prometheus /metrics on this port (workers).")
    metrics_host: str = Field("127.0.0.1", description="Address the metrics endpoint binds to.")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    classify: ClassifySettings = Field(default_factory=ClassifySettings)
    windows: WindowSettings = Field(default_factory=WindowSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    entities: EntitySettings = Field(default_factory=EntitySettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    stories: StorySettings = Field(default_factory=StorySettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit overrides (CLI flags) > environment > YAML file > defaults.
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        yaml_path = _YAML_PATH.get()
        if yaml_path is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_path))
        return tuple(sources)


def _check_yaml(path: Path) -> None:
    """Fail early, with a fix, on a missing or malformed file (pydantic-settings would be vaguer)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} not found: pass an existing YAML file to --config") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings, not {type(data).__name__}")


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Build the settings once at the entry point: defaults < YAML file < environment < overrides."""
    raw_path = config_file or os.environ.get("FINMON_CONFIG")
    path = Path(raw_path) if raw_path else None
    if path is not None:
        _check_yaml(path)
    token = _YAML_PATH.set(path)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(f"invalid settings: {_explain(exc)}; check FINMON_* variables and the config file") from exc
    finally:
        _YAML_PATH.reset(token)


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)
