"""Daily prices per ticker (long format), loaded by backtests or by hand, shown next to a ticker's sentiment."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import pandas as pd
from sqlalchemy import Column, Date, Engine, Float, String, Table, select

from monitor.store.schema import metadata

prices = Table(
    "prices",
    metadata,
    Column("ticker", String(32), primary_key=True),
    Column("date", Date, primary_key=True),
    Column("close", Float, nullable=False),
)


def upsert_prices(engine: Engine, rows: Iterable[tuple[str, date, float]]) -> int:
    """Insert or replace (ticker, date, close) rows; returns how many were written."""
    from sqlalchemy.dialects import postgresql, sqlite

    payload = [{"ticker": t, "date": d, "close": float(c)} for t, d, c in rows]
    if not payload:
        return 0
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(prices)
    stmt = stmt.on_conflict_do_update(index_elements=["ticker", "date"], set_={"close": stmt.excluded.close})
    with engine.begin() as conn:
        conn.execute(stmt, payload)
    return len(payload)


def price_series(engine: Engine, ticker: str, start: date | None = None, end: date | None = None) -> pd.DataFrame:
    c = prices.c
    query = select(c.date, c.close).where(c.ticker == ticker).order_by(c.date)
    if start is not None:
        query = query.where(c.date >= start)
    if end is not None:
        query = query.where(c.date <= end)
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).mappings().all(), columns=["date", "close"])
