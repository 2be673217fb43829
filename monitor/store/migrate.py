"""Columns a table gained after a store was created: `metadata.create_all` only creates missing tables, so
existing stores get the new columns here, once, by whichever worker starts first: nullable ones as they are
declared, and a column declared NOT NULL with a server default (window sums) with that default, which fills
the rows already there."""

from __future__ import annotations

from sqlalchemy import Engine, Table, inspect
from sqlalchemy.exc import SQLAlchemyError


def add_missing_column(engine: Engine, table: Table, name: str) -> None:
    """ALTER TABLE ... ADD COLUMN `name` (as `table` declares it) unless the column exists."""
    if name in _columns(engine, table):
        return
    column = table.c[name]
    ddl = f"{name} {column.type.compile(dialect=engine.dialect)}"
    if column.server_default is not None:
        default = column.server_default.arg  # type: ignore[attr-defined]
        ddl += f" NOT NULL DEFAULT {default}" if not column.nullable else f" DEFAULT {default}"
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {ddl}")
    except SQLAlchemyError:
        if name not in _columns(engine, table):  # else another worker starting at the same time added it first
            raise


def _columns(engine: Engine, table: Table) -> set[str]:
    return {column["name"] for column in inspect(engine).get_columns(table.name)}
