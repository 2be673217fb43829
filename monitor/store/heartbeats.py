"""Worker heartbeats: each stage worker records what it consumes and how fast, so `finmon up` can wait until
every stage is ready and the dashboard's System page can show items/s and batch sizes per stage.

`stage_heartbeats` - one row per worker process (`worker` = host:pid): stage, started_at, updated_at,
assigned (list of "topic[partition]"), running totals (records_in, messages_out, dead_letters, batches), the
rate over the last interval (`records_per_s`) and the mean batch size; `stopped_at` once it exits cleanly;
`lag`: {"topic[partition]": records behind} of the partitions it owns, as of its last batch (the dashboard's
consumer lag, read from here so that it never needs a Kafka client).
"""

from __future__ import annotations

import os
import socket
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Engine, Float, String, Table, select

from monitor.store.migrate import add_missing_column
from monitor.store.schema import metadata
from monitor.store.times import as_utc

stage_heartbeats = Table(
    "stage_heartbeats",
    metadata,
    Column("worker", String(128), primary_key=True),
    Column("stage", String(64), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("stopped_at", DateTime(timezone=True)),
    Column("assigned", JSON, nullable=False),
    Column("records_in", BigInteger, nullable=False),
    Column("messages_out", BigInteger, nullable=False),
    Column("dead_letters", BigInteger, nullable=False),
    Column("batches", BigInteger, nullable=False),
    Column("records_per_s", Float, nullable=False),
    Column("mean_batch", Float, nullable=False),
    Column("lag", JSON),  # added after the table: add_missing_columns() upgrades older stores
)


def add_missing_columns(engine: Engine) -> None:
    """Add the columns this table gained after a store was created (create_all only creates missing tables)."""
    add_missing_column(engine, stage_heartbeats, "lag")


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def beat(engine: Engine, row: dict[str, Any]) -> None:
    """Insert or update this worker's row."""
    from sqlalchemy.dialects import postgresql, sqlite  # lazy: dialect chosen at run time

    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(stage_heartbeats).values(**row)
    stmt = stmt.on_conflict_do_update(index_elements=["worker"], set_={k: v for k, v in row.items() if k != "worker"})
    with engine.begin() as conn:
        conn.execute(stmt)


def heartbeats(engine: Engine) -> list[dict[str, Any]]:
    """Every worker's latest row, newest first."""
    with engine.connect() as conn:
        rows = conn.execute(select(stage_heartbeats).order_by(stage_heartbeats.c.updated_at.desc())).mappings().all()
    out = []
    for row in rows:
        item = dict(row)
        for key in ("started_at", "updated_at", "stopped_at"):
            item[key] = as_utc(item[key])
        out.append(item)
    return out


def ready_stages(engine: Engine, since: datetime) -> set[str]:
    """Stages with a running worker that has partitions assigned and beat after `since`."""
    return {
        r["stage"]
        for r in heartbeats(engine)
        if r["assigned"] and r["stopped_at"] is None and r["updated_at"] is not None and r["updated_at"] >= since
    }


class HeartbeatWriter:
    """The stage loop's heartbeat sink: writes the worker's snapshot to the store."""

    def __init__(self, engine: Engine, clock: Any) -> None:
        # An engine, not a Store: the Store (db.py) registers this module's table, so this module must not
        # import db.py back. The caller creates the schema.
        self.engine = engine
        self.clock, self.worker = clock, worker_id()
        self.started_at = clock.now()

    def __call__(self, snapshot: dict[str, Any]) -> None:
        now = self.clock.now()
        beat(
            self.engine,
            {
                "worker": self.worker,
                "stage": snapshot["stage"],
                "started_at": self.started_at,
                "updated_at": now,
                "stopped_at": now if snapshot["stopped"] else None,
                "assigned": snapshot["assigned"],
                "records_in": snapshot["records_in"],
                "messages_out": snapshot["messages_out"],
                "dead_letters": snapshot["dead_letters"],
                "batches": snapshot["batches"],
                "records_per_s": float(snapshot["records_per_s"]),
                "mean_batch": float(snapshot["mean_batch"]),
                "lag": snapshot.get("lag", {}),
            },
        )
