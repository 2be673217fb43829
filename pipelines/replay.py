"""`finmon replay FILE`: publish a historical feed to news.raw, keeping the original event times.

`--speed max` publishes as fast as the broker takes it; `--speed N` paces the feed at N x real time (the gap
between two items' event times divided by N), so dashboards and alerts see history unfold. A replay resumes:
run again, it re-publishes what a restarted broker lost and skips what is done or in flight (the publishing
itself, with its outbox, is monitor/sources/publish.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from monitor.config import Settings
from monitor.errors import FinmonError
from monitor.sources.files import ColumnMap, FileSource
from monitor.sources.publish import Pacer, ReplayResult, publish

__all__ = ["DEMO_FEED", "Pacer", "ReplayResult", "column_options", "command", "parse_speed", "publish", "resolve_feed"]
log = logging.getLogger(__name__)
DEMO_FEED = Path(__file__).resolve().parent.parent / "monitor" / "data" / "demo_feed.jsonl"


def parse_speed(value: str) -> float | None:
    """'max' -> None (no pacing); '60' or '60x' -> 60.0."""
    if value.lower() == "max":
        return None
    try:
        speed = float(value.lower().rstrip("x"))
    except ValueError as exc:
        raise click.BadParameter(f"{value!r}: use 'max' or a positive factor like 60") from exc
    if speed <= 0:
        raise click.BadParameter(f"{value!r}: the factor must be positive")
    return speed


def resolve_feed(path: str) -> Path:
    """`demo` names the bundled demo feed."""
    return DEMO_FEED if path == "demo" else Path(path)


def column_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The column-mapping flags shared by replay and backtest."""
    for name in ("id", "ticker", "time", "text"):
        func = click.option(
            f"--{name}-col",
            default=None,
            help=f"Column holding the item {name} "
            "(default: the usual names, e.g. title/text, published_at/created_at).",
        )(func)
    return func


@click.command("replay")
@click.argument("feed", default="demo")
@column_options
@click.option("--speed", default="max", show_default=True, help="'max', or N for N x real time.")
@click.option("--limit", type=int, default=None, help="Publish only the first N items (in event-time order).")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Skip items already stored, dead-lettered or in flight (re-publishing what a restarted broker "
                   "lost); --no-resume publishes every item again.")
@click.pass_obj
def command(
    settings: Settings,
    feed: str,
    text_col: str | None,
    time_col: str | None,
    ticker_col: str | None,
    id_col: str | None,
    speed: str,
    limit: int | None,
    resume: bool,
) -> None:
    """Publish FEED (CSV, JSONL, Parquet, a directory of them, or 'demo') to news.raw."""
    try:
        source = FileSource(resolve_feed(feed), ColumnMap(text_col, time_col, ticker_col, id_col))
        records = source.records()[:limit]
        result = publish(settings, records, parse_speed(speed), unparsed=source.unparsed, resume=resume)
    except FinmonError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"published {result.published} items from {feed} in {result.seconds:.1f}s{_resumed(result)}", err=True)


def _resumed(result: ReplayResult) -> str:
    parts = [f"re-published {result.republished} lost by the broker"] if result.republished else []
    parts += [f"skipped {result.skipped} already stored or in flight"] if result.skipped else []
    return f" ({'; '.join(parts)})" if parts else ""
