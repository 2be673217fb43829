"""The `finmon` command. Settings are built once here and handed to every subcommand.

It lives in pipelines/, the application side: it wires the library (monitor/), the dashboard and the batch
pipelines into one command, so the library never has to import any of them.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

import click

from monitor.config import Settings, load_settings
from monitor.errors import FinmonError
from monitor.logs import setup_logging

log = logging.getLogger("finmon")

# Subcommands in other modules are imported only when used (torch is slow to import).
LAZY = {
    "replay": "pipelines.replay:command",
    "train": "pipelines.training.train:command",
    "evaluate": "pipelines.training.evaluate:command",
    "fetch-teacher": "pipelines.training.teacher:command",
    "calibrate": "pipelines.training.recalibrate:command",
    "average": "pipelines.training.average:command",
    "dashboard": "dashboards.serve:command",
    "ingest": "pipelines.ingest:command",
    "backtest": "pipelines.backtest:command",
    "topics": "monitor.kafka.commands:command",
    "link": "pipelines.link:command",
    "fetch-multilingual": "pipelines.training.multilingual:command",
}
LAZY_BENCH = {
    "classifier": "benchmarks.bench_classifier:command",
    "pipeline": "benchmarks.bench_pipeline:command",
    "linking": "benchmarks.bench_linking:command",
    "stories": "benchmarks.bench_stories:command",
}


def _load(target: str) -> click.Command:
    module, attr = target.split(":")
    try:
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command
    except ImportError as exc:
        raise click.ClickException(f"{target} is unavailable ({exc}); reinstall with `make install`") from exc


def _exists(target: str) -> bool:
    try:
        return importlib.util.find_spec(target.split(":")[0]) is not None
    except ImportError:
        return False


class LazyGroup(click.Group):
    """A group whose listed subcommands load on first use."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        available = [name for name, target in self.lazy.items() if _exists(target)]
        return sorted([*super().list_commands(ctx), *available])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            return _load(self.lazy[cmd_name])
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, lazy=LAZY)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML settings file (also FINMON_CONFIG).",
)
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING... (also FINMON_LOG_LEVEL).")
@click.option("--log-json", is_flag=True, default=None, help="One JSON object per log line.")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, log_level: str | None, log_json: bool | None) -> None:
    """finmon: a streaming financial sentiment monitor."""
    try:
        settings = load_settings(config_file, log_level=log_level, log_json=log_json)
    except FinmonError as exc:
        raise click.ClickException(str(exc)) from exc
    setup_logging(settings.log_level, settings.log_json)
    ctx.obj = settings


@cli.command()
@click.option("--port", type=int, default=None, help="Port on 127.0.0.1 (default: the one in FINMON_BOOTSTRAP).")
@click.pass_obj
def broker(settings: Settings, port: int | None) -> None:
    """Run the embedded Kafka-compatible broker (Tansu) until Ctrl-C or SIGTERM."""
    import signal

    from monitor.kafka.broker import EmbeddedBroker
    from monitor.kafka.client import ensure_topics

    port = port or int(settings.bootstrap.split(",")[0].rsplit(":", 1)[1])
    with EmbeddedBroker(port) as embedded:
        ensure_topics(settings.model_copy(update={"bootstrap": embedded.bootstrap}))
        click.echo(f"broker listening on {embedded.bootstrap} (memory only; Ctrl-C stops it)", err=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            while embedded.is_running():
                signal.pause()
        except KeyboardInterrupt:
            pass


@cli.command()
@click.argument("stage", type=click.Choice(["classify", "sink", "aggregate", "alerting"]))
@click.option("--stop-after-idle", type=float, default=None, help="Exit after S seconds without records.")
@click.pass_obj
def worker(settings: Settings, stage: str, stop_after_idle: float | None) -> None:
    """Run one pipeline stage as a member of its consumer group."""
    from monitor.app import build_stage
    from monitor.kafka.client import ensure_topics

    ensure_topics(settings)
    runner = build_stage(stage, settings, stop_after_idle=stop_after_idle)
    stats = runner.run()
    click.echo(json.dumps({"stage": stage, **stats.as_dict()}))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def status(settings: Settings, as_json: bool) -> None:
    """Items published, scored, stored, dead-lettered, and each consumer group's lag."""
    from monitor.status import collect_status

    result = collect_status(settings)
    if as_json:
        click.echo(json.dumps(result, default=str, sort_keys=True))
        return
    for key in ("published", "scored", "stored", "dead_lettered"):
        click.echo(f"{key:>14}: {result.get(key)}")
    for group, lag in result.get("lag", {}).items():
        click.echo(f"{'lag ' + group:>14}: {lag}")
    for key in ("broker", "store"):
        click.echo(f"{key:>14}: {result.get(key)}")


@cli.command()
@click.option("--feed", default="demo", show_default=True, help="Feed file to replay, 'demo', or 'none'.")
@click.option("--speed", default="max", show_default=True, help="'max', or N for N x real time.")
@click.option("--dashboard/--no-dashboard", default=True, help="Serve the Streamlit dashboard.")
@click.option("--dashboard-port", type=int, default=8501, show_default=True)
@click.option(
    "--stop-after-idle",
    type=float,
    default=None,
    help="Stop everything once all stages were idle S seconds; print the status JSON last.",
)
@click.pass_obj
def up(
    settings: Settings, feed: str, speed: str, dashboard: bool, dashboard_port: int, stop_after_idle: float | None
) -> None:
    """Start the embedded broker, every stage, the dashboard, and replay a feed into it."""
    from pipelines.replay import parse_speed
    from pipelines.stack import UpOptions, run_up, status_line

    options = UpOptions(
        feed=None if feed == "none" else feed,
        speed=parse_speed(speed),
        dashboard=dashboard,
        dashboard_port=dashboard_port,
        stop_after_idle=stop_after_idle,
        broker_port=None,
    )
    final = run_up(settings, options)
    click.echo(status_line(final))


def _store(settings: Settings) -> Any:
    from monitor.store import Store

    store = Store(settings.store_url)
    store.create_schema()
    return store


@cli.command("windows")
@click.option("--key", required=True, help="market, topic:<name> or ticker:<SYMBOL>.")
@click.option("--size", required=True, help="Window size: 5min, 1h, 1d, or SIZE/HOP for hopping windows.")
@click.option("--last", type=int, default=None, help="Only the last N windows.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_obj
def windows_command(settings: Settings, key: str, size: str, last: int | None, as_json: bool) -> None:
    """Windows of one key and size from the store (FINMON_STORE_URL), oldest first."""
    from monitor.alerts.cli import show_windows

    show_windows(_store(settings), key, size, last, as_json)


@cli.command("stories")
@click.option("--key", required=True, help="market, topic:<name> or ticker:<SYMBOL> (as in `finmon windows`).")
@click.option("--since", "since_text", default=None, help="Only stories first seen at or after this ISO time.")
@click.option("--limit", type=int, default=50, show_default=True, help="At most this many stories.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_obj
def stories_command(settings: Settings, key: str, since_text: str | None, limit: int, as_json: bool) -> None:
    """Stories about KEY, newest first: id, first seen, items (copies), sources, headline, mean sentiment.
    Stories are settled behind stream time (README "Stories and novelty"), so the newest news may be missing."""
    from monitor.stories.queries import key_stories

    since = _parse_since(since_text)
    rows = key_stories(_store(settings), key, since, limit)
    shown = [{"story_id": r["story_id"], "first_seen": r["first_seen"].isoformat().replace("+00:00", "Z"),
              "n_items": r["n_items"], "n_sources": r["n_sources"], "headline": r["headline"],
              "sentiment": None if r["sentiment"] is None else round(r["sentiment"], 4)} for r in rows]
    if as_json:
        click.echo(json.dumps(shown))
        return
    if not shown:
        click.echo(f"no settled stories about {key}", err=True)
        return
    for r in shown:
        sentiment = "n/a" if r["sentiment"] is None else f"{r['sentiment']:+.2f}"
        click.echo(f"{r['first_seen']}  {r['n_items']:>4} items  {r['n_sources']:>2} sources  {sentiment:>6}  "
                   f"{r['headline'][:90]}")


def _parse_since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not an ISO time; use e.g. 2026-11-30T09:00:00Z",
                                 param_hint="--since") from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@cli.group()
def alerts() -> None:
    """List, silence and acknowledge alerts (reads and writes the store)."""


@alerts.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.option("--all", "show_all", is_flag=True, help="Also pending alerts that cleared before firing.")
@click.pass_obj
def alerts_list(settings: Settings, as_json: bool, show_all: bool) -> None:
    """Alerts, oldest first: rule, key, state, severity, started_at, resolved_at."""
    from monitor.alerts.cli import list_alerts

    list_alerts(_store(settings), as_json, show_all)


@alerts.command("silence")
@click.option("--rule", default=None, help="Rule name to silence (default: any rule).")
@click.option("--key", default=None, help="Key to silence, e.g. ticker:AAPL (default: any key).")
@click.option("--for", "duration", default="2h", show_default=True, help="How long: 30min, 2h, 1D...")
@click.option("--by", "created_by", default="cli", show_default=True, help="Who silences.")
@click.option("--comment", default="", help="Why.")
@click.option("--list", "list_only", is_flag=True, help="Only list silences.")
@click.pass_obj
def alerts_silence(settings: Settings, rule: str | None, key: str | None, duration: str, created_by: str,
                   comment: str, list_only: bool) -> None:
    """Silence notifications of a rule and/or key until the silence expires."""
    from monitor.alerts.cli import add_silence, list_silences

    if list_only:
        list_silences(_store(settings))
        return
    add_silence(_store(settings), rule, key, duration, created_by, comment)


@alerts.command("ack")
@click.argument("alert_id", type=int, required=False)
@click.option("--rule", default=None, help="Acknowledge the active alerts of this rule...")
@click.option("--key", default=None, help="...and/or of this key.")
@click.option("--by", "acked_by", default="cli", show_default=True, help="Who acknowledges.")
@click.pass_obj
def alerts_ack(settings: Settings, alert_id: int | None, rule: str | None, key: str | None, acked_by: str) -> None:
    """Acknowledge active alerts (by id, or by rule/key): no more repeat notifications for them."""
    from monitor.alerts.cli import ack

    ack(_store(settings), alert_id, rule, key, acked_by)


@cli.group(cls=LazyGroup, lazy=LAZY_BENCH)
def bench() -> None:
    """Benchmarks that print numbers (classifier, pipeline, linking, stories)."""


def main(argv: list[str] | None = None) -> None:
    """Console entry point: finmon errors become one-line messages, not tracebacks."""
    try:
        cli.main(args=argv, prog_name="finmon", standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except FinmonError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
