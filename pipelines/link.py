"""`finmon link FILE`: which tickers each row of a feed file is about, with their relevance (monitor/entities).

Reads CSV, JSONL, Parquet or a directory of them like `finmon replay` (monitor/sources/files.py), in file
order. The text is the title column (or --text-col), plus a `body` column when there is one; a tickers column
(as replay finds it, or --ticker-col) is passed as the feed's tickers unless --no-feed-tickers. With `--json` it
prints one JSON array, per row `{"id": ..., "tickers": [{"symbol": "AAPL", "relevance": 92}, ...]}`, listing
only tickers at or above the relevance threshold (`entities.min_relevance`, default 40); without it, a table.
"""

from __future__ import annotations

import json
import math
from typing import Any

import click

from monitor.config import Settings
from monitor.entities import Link, Linker
from monitor.errors import FinmonError, SourceError
from monitor.sources.files import ColumnMap, read_table
from pipelines.replay import resolve_feed


def _column(chosen: str | None, field: str, columns: list[str], required: bool) -> str | None:
    if chosen is not None and chosen not in columns:
        raise SourceError(f"--{field}-col {chosen!r} is not a column; the file has {columns}")
    found = chosen or next((c for c in ColumnMap.CANDIDATES[field] if c in columns), None)
    if found is None and required:
        raise SourceError(f"no {field} column found among {columns}; name it with --{field}-col")
    return found


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _plain(value: Any) -> Any:
    """A cell as JSON: numpy scalars become Python ones, NaN becomes null."""
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and math.isnan(value) else value


def link_rows(
    linker: Linker, path: str, text_col: str | None, id_col: str | None, ticker_col: str | None, feed: bool = True
) -> list[tuple[Any, str, tuple[Link, ...]]]:
    """(id, title, links) per row, in file order; the id is the row number when the file has no id column."""
    frame = read_table(resolve_feed(path))
    columns = [str(c) for c in frame.columns]
    text = _column(text_col, "text", columns, required=True)
    ident = _column(id_col, "id", columns, required=False)
    tickers = _column(ticker_col, "ticker", columns, required=False) if feed else None
    body = "body" if "body" in columns and text != "body" else None
    out = []
    for n, row in enumerate(frame.to_dict(orient="records")):
        title = _text(row.get(text))
        cell = row.get(tickers) if tickers else None
        feed_list = [str(t) for t in cell] if isinstance(cell, list) else _text(cell).replace(",", " ").split()
        links = linker.link(title, _text(row.get(body)) if body else "", feed_list)
        out.append((_plain(row.get(ident)) if ident else n, title, links))
    return out


@click.command("link")
@click.argument("file")
@click.option("--text-col", default=None, help="Column holding the text (default: title/text/headline/content).")
@click.option("--id-col", default=None, help="Column holding the item id (default: id/guid/tweet_id/uuid, else "
              "the row number).")
@click.option("--ticker-col", default=None, help="Column of feed-supplied tickers (default: tickers/ticker/symbols/"
              "symbol if present).")
@click.option("--feed-tickers/--no-feed-tickers", default=True, show_default=True,
              help="Use the file's tickers column as the feed's tickers; off links from the text alone.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
@click.pass_obj
def command(settings: Settings, file: str, text_col: str | None, id_col: str | None, ticker_col: str | None,
            feed_tickers: bool, as_json: bool) -> None:
    """Link each row of FILE (CSV, JSONL, Parquet, a directory, or 'demo') to tickers, with relevance."""
    try:
        linker = Linker.from_settings(settings)
        rows = link_rows(linker, file, text_col, id_col, ticker_col, feed_tickers)
    except FinmonError as exc:
        raise click.ClickException(str(exc)) from exc
    threshold = linker.min_relevance
    if as_json:
        click.echo(json.dumps([
            {"id": ident, "tickers": [{"symbol": x.symbol, "relevance": x.relevance} for x in links
                                      if x.relevance >= threshold]}
            for ident, _, links in rows
        ], ensure_ascii=False, default=str))
        return
    for ident, title, links in rows:
        shown = ", ".join(f"{x.symbol} {x.relevance} ({x.how})" for x in links if x.relevance >= threshold)
        below = sum(x.relevance < threshold for x in links)
        extra = f"  [+{below} below {threshold}]" if below else ""
        click.echo(f"{str(ident)[:16]:<16}  {shown or '-':<40}{extra}  {title[:70]}")
