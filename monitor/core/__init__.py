"""The Kafka-free core that live stages, replays and the backtest share.

- `lateness`: per-source watermarks. An item is late only when its own source had already delivered news
  more than the grace newer than it; how the stream was batched, partitioned downstream or restarted
  does not matter.
- `streamtime`: the stream time every source has passed (the minimum of the source watermarks, idle
  sources excepted), which alert evaluation in event time waits for.
- `scoring`: building a `ScoredItem` from a raw item and a prediction (one place for what it carries).

Nothing here imports Kafka, SQLAlchemy or the store: adapters (monitor/stages, pipelines/backtest) feed it
records and persist what it decides.
"""
