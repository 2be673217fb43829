"""`finmon backtest`: replay a historical feed through the monitor and test its signal against prices."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pandas as pd

from monitor.config import Settings
from monitor.errors import FinmonError
from monitor.sources.files import ColumnMap
from pipelines.backtest.prices import PriceColumns
from pipelines.backtest.run import DEFAULT_CACHE, BacktestConfig, run_backtest
from pipelines.replay import column_options

SHOWN = ("n_items", "n_tickers", "n_alerts", "ic_mean_1d", "ic_tstat_1d", "hit_rate_1d", "ic_mean_5d",
         "long_short_1d", "car_post_5d", "cache_hits", "cache_misses", "wall_seconds", "texts_per_s")


def parse_step(value: str) -> timedelta:
    try:
        step = pd.Timedelta(value).to_pytimedelta()
    except ValueError as exc:
        raise click.BadParameter(f"{value!r}: use a duration like 5min, 1min or 1h") from exc
    if step <= timedelta(0):
        raise click.BadParameter(f"{value!r}: the step must be positive")
    return step


@click.command("backtest")
@click.option("--feed", required=True, type=click.Path(path_type=Path), help="Feed file or directory.")
@click.option("--prices", "prices_path", required=True, type=click.Path(path_type=Path),
              help="Daily prices, long format (date, ticker, close/adj_close): a file or a directory.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output directory.")
@click.option("--rules", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="Alert rules YAML (default: the configured rules, else the shipped ones).")
@column_options
@click.option("--price-date-col", default="date", show_default=True)
@click.option("--price-ticker-col", default="ticker", show_default=True)
@click.option("--price-col", default=None, help="Price column (default: adj_close if present, else close).")
@click.option("--model", default=None, help="Model dir or name (default: the configured / shipped model).")
@click.option("--quantize/--no-quantize", default=True, show_default=True, help="Dynamic int8 on CPU.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, mps or auto.")
@click.option("--limit", type=int, default=None, help="Only the first N items (in event-time order).")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=DEFAULT_CACHE, show_default=True,
              help="Where scores are cached by model version and text hash.")
@click.option("--eval-every", "step", default="5min", show_default=True, callback=lambda c, p, v: parse_step(v),
              help="Event-time step of the alert evaluation clock.")
@click.option("--progress/--no-progress", default=True, help="Progress bars on stderr.")
@click.option("--save-track-record", is_flag=True,
              help="Store each rule's track record (alerts fired, hit rate, CAR) in the configured store, where live "
                   "alerts show it (notifications, `finmon alerts list --json`, the dashboard).")
@click.pass_obj
def command(settings: Settings, feed: Path, prices_path: Path, out: Path, rules: Path | None, text_col: str | None,
            time_col: str | None, ticker_col: str | None, id_col: str | None, price_date_col: str,
            price_ticker_col: str, price_col: str | None, model: str | None, quantize: bool, device: str,
            limit: int | None, cache_dir: Path, step: timedelta, progress: bool, save_track_record: bool) -> None:
    """Replay FEED through classify -> windows -> alerts in event time and evaluate the signal vs PRICES."""
    if limit is not None and limit < 1:
        raise click.BadParameter("--limit must be at least 1", param_hint="--limit")
    cfg = BacktestConfig(feed=feed, prices=prices_path, out=out, rules=rules,
                         columns=ColumnMap(text_col, time_col, ticker_col, id_col),
                         price_columns=PriceColumns(price_date_col, price_ticker_col, price_col),
                         model=model or settings.classify.model, quantize=quantize, device=device, limit=limit,
                         cache_dir=cache_dir, step=step, progress=progress,
                         save_track_record_at=datetime.now(UTC) if save_track_record else None)
    try:
        metrics = run_backtest(cfg, settings)
    except FinmonError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps({k: metrics.get(k) for k in SHOWN}))
    click.echo(f"wrote {out}/metrics.json, signals.parquet, alerts.csv, events.csv and report.html", err=True)
