"""Alert evaluation: read what the decisions need from the store, decide (monitor/alerts/decide.py, pure),
and write the actions in one transaction. Every transition is stored in `alert_events` (published to the
`alerts` topic by monitor/alerts/service.py). No scheduling here: APScheduler calls `evaluate`
(monitor/alerts/service.py), tests and the backtest call it with the instants they choose.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from monitor.alerts.decide import (
    Action,
    Insert,
    Notify,
    Transition,
    Update,
    decide,
    iso,
    jsonable,
    notification_payload,
    public,
    summarize,
)
from monitor.alerts.rules import RuleSet
from monitor.alerts.track import TrackRecord
from monitor.store import Store
from monitor.store import alerts as astore
from monitor.store.track import track_records
from monitor.store.windows import windows_in_view
from monitor.windows import parse_spec

__all__ = ["AlertEvaluator", "iso", "jsonable", "notification_payload", "public", "summarize"]
Groups = dict[tuple[str, str], list[dict[str, Any]]]


class AlertEvaluator:
    """One evaluation pass over all rules at time `now` (see monitor/alerts/decide.py for the lifecycle)."""

    def __init__(self, store: Store, rules: RuleSet, complete_only: bool = False) -> None:
        """`complete_only`: rules see only windows that have ended by the evaluation instant (event time:
        a window still filling up would make the result depend on how far the stream had got)."""
        self.store, self.rules, self.complete_only = store, rules, complete_only

    def evaluate(self, now: datetime, only: Collection[str] | None = None) -> list[dict[str, Any]]:
        """Apply the lifecycle at `now` to every rule, or to the rules named in `only` (a caller that knows
        the others cannot change); return the transitions made (alerts as `public` shows them)."""
        with self.store.engine.begin() as conn:
            active = astore.active_alerts(conn)
            silences = astore.active_silences(conn, now)
            actions = decide(self.rules, self._in_view(conn, now, only), active, silences, now, only)
            return self._write(conn, actions, now)

    def _in_view(self, conn: Connection, now: datetime, only: Collection[str] | None
                 ) -> dict[str, list[dict[str, Any]]]:
        rules = [rule for rule in self.rules.rules if only is None or rule.name in only]
        by_size: dict[str, list[dict[str, Any]]] = {}
        for size in dict.fromkeys(rule.window for rule in rules):
            by_size[size] = windows_in_view(conn, size, now, parse_spec(size).size_us, self.complete_only)
        return {rule.name: by_size[rule.window] for rule in rules}

    def _write(self, conn: Connection, actions: Sequence[Action], now: datetime) -> list[dict[str, Any]]:
        transitions: list[dict[str, Any]] = []
        groups: Groups = defaultdict(list)
        for action in actions:
            if isinstance(action, Insert):
                action.alert["id"] = astore.insert_alert(conn, action.alert)
            elif isinstance(action, Update):
                astore.update_alert(conn, action.alert["id"], action.values)
            elif isinstance(action, Transition):
                was = {**action.snapshot, "id": action.alert["id"]}  # a new alert's id is known only now
                shown = public(was)
                astore.add_event(conn, was, now, shown)
                transitions.append(shown)
            elif isinstance(action, Notify):
                groups[(action.alert["rule"], action.kind)].append(public({**action.snapshot,
                                                                           "id": action.alert["id"]}))
        self._enqueue(conn, groups, now)
        return transitions

    def _enqueue(self, conn: Connection, groups: Groups, now: datetime) -> None:
        records = track_records(conn) if groups else {}
        for (rule_name, kind), members in sorted(groups.items()):
            rule = self.rules.rule(rule_name)
            channels = self.rules.channels_of(rule) if rule is not None else self.rules.defaults.channels
            payload = notification_payload(rule_name, kind, members, now)
            if rule_name in records:  # what this rule's alerts were followed by in the saved backtest
                record = TrackRecord.from_mapping(records[rule_name])
                payload.update(track_record=record.to_json(), track_record_text=record.describe())
            for channel in channels:
                astore.enqueue(conn, channel, kind, payload, now)
