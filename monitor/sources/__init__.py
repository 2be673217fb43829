"""Where news comes from and how it reaches news.raw: files (replay, backtest; scrapers live in monitor/ingest),
and publishing with an outbox (`publish`, `outbox`, `logcheck`) so that a restarted broker loses nothing."""

from monitor.sources.files import ColumnMap, FileSource, read_table

__all__ = ["ColumnMap", "FileSource", "read_table"]
