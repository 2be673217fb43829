"""`finmon ingest --config feeds.yaml`: poll RSS, Atom and JSON feeds and publish new items to news.raw.

Runs until SIGTERM or Ctrl-C (polls in flight finish first), or with `--once` polls every feed once and
prints one JSON summary line per feed: fetched, new, duplicates, errors, not_modified (and the error text).
Needs network access to the feeds; the Kafka bootstrap and the store come from the finmon settings.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from types import FrameType

import click

from monitor.config import Settings
from monitor.errors import FinmonError
from monitor.ingest.config import load_feeds
from monitor.ingest.service import Ingestor


def _install_stop(stop: threading.Event) -> None:
    """SIGTERM and SIGINT ask for a clean stop instead of killing a poll between publish and mark-seen."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        click.echo(f"finmon ingest: signal {signum}, stopping after the polls in flight", err=True)
        stop.set()

    if threading.current_thread() is threading.main_thread():  # signals can only be set there
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


@click.command("ingest")
@click.option(
    "--config",
    "feeds_file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Feeds file (YAML); see feeds.example.yaml.",
)
@click.option("--once", is_flag=True, help="Poll every feed once, print a JSON summary per feed, and exit.")
@click.option("--extract", is_flag=True, help="Fetch each new article and extract its text (needs trafilatura).")
@click.pass_obj
def command(settings: Settings, feeds_file: Path, once: bool, extract: bool) -> None:
    """Poll the feeds in the feeds file and publish new items to news.raw."""
    stop = threading.Event()
    try:
        config = load_feeds(feeds_file)
        with Ingestor(settings, config, extract=extract, stop=stop) as ingestor:
            _install_stop(stop)
            if once:
                for result in ingestor.run_once():
                    click.echo(json.dumps(result.as_dict(), sort_keys=True))
                return
            ingestor.run_forever()
    except FinmonError as exc:
        raise click.ClickException(str(exc)) from exc
