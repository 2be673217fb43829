"""Columns a table gained after a store was created: `metadata.create_all` only creates missing tables, so
existing stores get the new (nullable) columns here, once, by whichever worker starts first."""

from __future__ import annotations

from sqlalchemy import Engine, Table, inspect
from sqlalchemy.exc import SQLAlchemyError


def add_missing_column(engine: Engine, table: Table, name: str) -> None:
    """ALTER TABLE ... ADD COLUMN `name` (as `table` declares it) unless the column exists."""
    if name in _columns(engine, table):
        return
    column_type = table.c[name].type.compile(dialect=engine.dialect)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {name} {column_type}")
    except SQLAlchemyError:
        if name not in _columns(engine, table):  # else another worker starting at the same time added it first
            raise


def _columns(engine: Engine, table: Table) -> set[str]:
    return {column["name"] for column in inspect(engine).get_columns(table.name)}
