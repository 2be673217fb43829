"""Dialect helpers shared by the store modules (SQLite and PostgreSQL both support ON CONFLICT upserts)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite


def insert_stmt(conn: Connection, table: Any) -> Any:
    """An INSERT for `table` in the connection's dialect, so `.on_conflict_do_*` is available."""
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)
