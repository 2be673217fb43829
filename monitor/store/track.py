"""Rule track records (monitor/alerts/track.py): one row per rule, replaced by each saved backtest.

`rule_track_records` — rule (key), source, computed_at, direction, n_alerts, n_events, hit_rate_1d, hit_rate_5d,
car_1d, car_5d, t_1d, t_5d (meanings in monitor/alerts/track.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, Connection, DateTime, Float, Integer, String, Table, select

from monitor.store.dialect import insert_stmt
from monitor.store.schema import metadata
from monitor.store.times import as_utc

rule_track_records = Table(
    "rule_track_records",
    metadata,
    Column("rule", String(128), primary_key=True),
    Column("source", String(1024), nullable=False),
    Column("computed_at", DateTime(timezone=True), nullable=False),
    Column("direction", String(8)),
    Column("n_alerts", Integer, nullable=False),
    Column("n_events", Integer, nullable=False),
    Column("hit_rate_1d", Float),
    Column("hit_rate_5d", Float),
    Column("car_1d", Float),
    Column("car_5d", Float),
    Column("t_1d", Float),
    Column("t_5d", Float),
)
_VALUES = [c.name for c in rule_track_records.columns if c.name != "rule"]


def save_track_records(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Upsert one record per rule (a later backtest replaces a rule's record)."""
    if not rows:
        return
    stmt = insert_stmt(conn, rule_track_records)
    conn.execute(stmt.on_conflict_do_update(index_elements=["rule"], set_={c: stmt.excluded[c] for c in _VALUES}),
                 list(rows))


def track_records(conn: Connection) -> dict[str, dict[str, Any]]:
    """rule -> its stored record (empty if no backtest saved any)."""
    rows = conn.execute(select(rule_track_records)).mappings().all()
    return {r["rule"]: {**r, "computed_at": as_utc(r["computed_at"])} for r in rows}
