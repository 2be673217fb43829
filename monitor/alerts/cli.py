"""What `finmon windows` and `finmon alerts ...` print and do (click wiring is in pipelines/cli.py)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import click
import pandas as pd

from monitor.alerts.lifecycle import iso
from monitor.alerts.track import TrackRecord
from monitor.clock import SystemClock
from monitor.records import WINDOW_DERIVED, WINDOW_ZSCORES
from monitor.store import Store
from monitor.store import alerts as astore
from monitor.store.track import track_records
from monitor.store.windows import read_windows
from monitor.windows import WindowError, parse_spec

WINDOW_FIELDS = ("window_start", "window_end", "count", *WINDOW_DERIVED, *WINDOW_ZSCORES, "n_stories",
                 "n_negative_stories")
ALERT_FIELDS = ("id", "rule", "key", "state", "severity", "started_at", "fired_at", "resolved_at", "acked_at",
                "labels", "summary")


def show_windows(store: Store, key: str, size: str, last: int | None, as_json: bool) -> None:
    try:
        label = parse_spec(size).label
    except WindowError as exc:
        raise click.BadParameter(str(exc), param_hint="--size") from exc
    with store.engine.connect() as conn:
        rows = [{f: _plain(r[f]) for f in WINDOW_FIELDS} for r in read_windows(conn, key, label, last)]
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo(f"no {label} windows for {key!r} in {store.safe_url}; keys look like market, topic:<name>, "
                   "ticker:<SYMBOL>", err=True)
        return
    click.echo(pd.DataFrame(rows).to_string(index=False))


def _plain(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return iso(value)
    if isinstance(value, float) and value != value:
        return None
    return value


def list_alerts(store: Store, as_json: bool, show_all: bool) -> None:
    states = (*astore.LISTED, "inactive") if show_all else astore.LISTED
    with store.engine.connect() as conn:
        records = {rule: TrackRecord.from_mapping(r).to_json() for rule, r in track_records(conn).items()}
        rows = [{f: _plain(a[f]) for f in ALERT_FIELDS} | {"track_record": records.get(a["rule"])}
                for a in astore.list_alerts(conn, states)]
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo("no alerts", err=True)
        return
    shown = pd.DataFrame(rows)[["id", "rule", "key", "state", "severity", "started_at", "resolved_at", "acked_at"]]
    click.echo(shown.to_string(index=False))


def add_silence(store: Store, rule: str | None, key: str | None, duration: str, created_by: str,
                comment: str) -> None:
    if rule is None and key is None:
        raise click.UsageError("give --rule and/or --key: a silence of everything is too easy to forget")
    try:
        length = pd.Timedelta(duration).to_pytimedelta()
    except ValueError as exc:
        raise click.BadParameter(f"{duration!r} is not a duration; use e.g. 30min, 2h, 1D", param_hint="--for") from exc
    if length <= timedelta(0):
        raise click.BadParameter("must be positive", param_hint="--for")
    now = SystemClock().now()
    with store.engine.begin() as conn:
        silence_id = astore.add_silence(conn, {"rule": rule, "key": key, "starts_at": now, "ends_at": now + length,
                                               "created_by": created_by, "comment": comment, "created_at": now})
    click.echo(json.dumps({"id": silence_id, "rule": rule, "key": key, "ends_at": iso(now + length)}))


def list_silences(store: Store) -> None:
    with store.engine.connect() as conn:
        rows = [{k: _plain(v) for k, v in s.items()} for s in astore.list_silences(conn)]
    click.echo(json.dumps(rows))


def ack(store: Store, alert_id: int | None, rule: str | None, key: str | None, acked_by: str) -> None:
    if alert_id is None and rule is None and key is None:
        raise click.UsageError("give an alert id (see `finmon alerts list`) or --rule and/or --key")
    with store.engine.begin() as conn:
        count = astore.ack_alerts(conn, SystemClock().now(), acked_by, alert_id, rule, key)
    if count == 0:
        raise click.ClickException("no active unacknowledged alert matches; see `finmon alerts list`")
    click.echo(json.dumps({"acknowledged": count}))
