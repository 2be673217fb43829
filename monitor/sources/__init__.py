"""Where news comes from: files (replay, backtest) now; scrapers plug in beside them."""

from monitor.sources.files import ColumnMap, FileSource, read_table

__all__ = ["ColumnMap", "FileSource", "read_table"]
