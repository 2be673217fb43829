"""Alert evaluation and lifecycle, as in Prometheus/Alertmanager, driven by an injected time `now`.

For each rule, the windows *in view* are those of the rule's size that contain `now` or ended less than one
window size before it (so a burst stays visible for one more window). For every key in the rule's scope:

- conditions hold and no active alert -> `pending` (started_at = now); with `for: 0s` it fires at once;
- `pending` and holding for at least `for` -> `firing`: a notification is queued;
- `firing` and still holding -> a repeat notification once `repeat_interval` has passed since the last one,
  unless the alert is acknowledged or silenced;
- conditions stop holding: `pending` -> `inactive` (never notified); `firing` -> `resolved` (notified).

Alerts are deduplicated per (rule, key); transitions of one evaluation are grouped per (rule, kind) into
one notification per channel. Silenced alerts change state as usual but queue no notifications. Every
transition is stored in `alert_events` (published to the `alerts` topic by monitor/alerts/service.py).
No scheduling here: APScheduler calls `evaluate` (monitor/alerts/service.py), tests call it with a manual clock.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from monitor.alerts.rules import Rule, RuleSet
from monitor.store import Store
from monitor.store import alerts as astore
from monitor.store.windows import windows_in_view
from monitor.windows import parse_spec

Groups = dict[tuple[str, str], list[dict[str, Any]]]


def iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat().replace("+00:00", "Z")


def jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: iso(v) if isinstance(v, datetime) else v for k, v in row.items()}


def public(alert: dict[str, Any]) -> dict[str, Any]:
    """An alert as the CLI, the `alerts` topic and notifications show it."""
    keys = ("id", "rule", "key", "state", "severity", "labels", "summary", "started_at", "fired_at", "resolved_at",
            "acked_at", "acked_by", "window")
    return jsonable({k: alert.get(k) for k in keys})


def summarize(rule: Rule, key: str, window: dict[str, Any] | None) -> str:
    conditions = " and ".join(str(c) for c in rule.when)
    if window is None:
        return f"[{rule.severity.upper()}] {rule.name} on {key}: {conditions}"
    shown = ", ".join(f"{c.metric}={_fmt(window.get(c.metric))}" for c in rule.when)
    return (f"[{rule.severity.upper()}] {rule.name} on {key}: {conditions} ({shown}, count={window.get('count')}, "
            f"{rule.window} window from {window.get('window_start')})")


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.3g}"


class AlertEvaluator:
    """One evaluation pass over all rules at time `now` (see the module docstring)."""

    def __init__(self, store: Store, rules: RuleSet, complete_only: bool = False) -> None:
        """`complete_only`: rules see only windows that have ended by the evaluation instant (event time:
        a window still filling up would make the result depend on how far the stream had got)."""
        self.store, self.rules, self.complete_only = store, rules, complete_only

    def evaluate(self, now: datetime) -> list[dict[str, Any]]:
        """Apply the lifecycle at `now`; return the transitions made (alerts as `public` shows them)."""
        groups: Groups = defaultdict(list)
        transitions: list[dict[str, Any]] = []
        with self.store.engine.begin() as conn:
            active = astore.active_alerts(conn)
            silences = astore.active_silences(conn, now)
            seen: set[tuple[str, str]] = set()
            for rule in self.rules.rules:
                for key, window in sorted(self._matching(conn, rule, now).items()):
                    seen.add((rule.name, key))
                    self._hold(conn, rule, key, window, active.get((rule.name, key)), now, groups, transitions,
                               silences)
            for ident, alert in active.items():
                if ident not in seen:
                    self._clear(conn, alert, now, groups, transitions, silences)
            self._enqueue(conn, groups, now)
        return transitions

    def _matching(self, conn: Connection, rule: Rule, now: datetime) -> dict[str, dict[str, Any]]:
        """key -> the latest window in view that meets the rule's conditions."""
        out: dict[str, dict[str, Any]] = {}
        for window in windows_in_view(conn, rule.window, now, parse_spec(rule.window).size_us, self.complete_only):
            key = window["key"]
            newer = key not in out or window["window_start"] > out[key]["window_start"]
            if newer and rule.in_scope(key) and rule.matches(window):
                out[key] = window
        return out

    def _hold(self, conn: Connection, rule: Rule, key: str, window: dict[str, Any], alert: dict[str, Any] | None,
              now: datetime, groups: Groups, transitions: list[dict[str, Any]], silences: list[dict[str, Any]]
              ) -> None:
        snapshot = {"summary": summarize(rule, key, window), "window": jsonable(window), "updated_at": now}
        if alert is None:
            alert = {"rule": rule.name, "key": key, "state": "pending", "severity": rule.severity,
                     "labels": dict(rule.labels), "started_at": now, **snapshot}
            alert["id"] = astore.insert_alert(conn, alert)
            self._transition(conn, alert, now, transitions)
        else:
            alert.update(snapshot)
            astore.update_alert(conn, alert["id"], snapshot)
        if alert["state"] == "pending" and now - alert["started_at"] >= rule.for_:
            alert.update(state="firing", fired_at=now)
            astore.update_alert(conn, alert["id"], {"state": "firing", "fired_at": now})
            self._transition(conn, alert, now, transitions)
            self._notify(conn, alert, "firing", now, groups, silences)
        elif alert["state"] == "firing" and alert.get("acked_at") is None and self._repeat_due(rule, alert, now):
            self._notify(conn, alert, "repeat", now, groups, silences)

    def _repeat_due(self, rule: Rule, alert: dict[str, Any], now: datetime) -> bool:
        last = alert.get("last_notified_at")
        return last is None or now - last >= self.rules.repeat_of(rule)

    def _clear(self, conn: Connection, alert: dict[str, Any], now: datetime, groups: Groups,
               transitions: list[dict[str, Any]], silences: list[dict[str, Any]]) -> None:
        if alert["state"] == "pending":
            alert.update(state="inactive", updated_at=now)
            astore.update_alert(conn, alert["id"], {"state": "inactive", "updated_at": now})
            self._transition(conn, alert, now, transitions)
            return
        alert.update(state="resolved", resolved_at=now, updated_at=now)
        astore.update_alert(conn, alert["id"], {"state": "resolved", "resolved_at": now, "updated_at": now})
        self._transition(conn, alert, now, transitions)
        rule = self.rules.rule(alert["rule"])
        if alert.get("last_notified_at") is not None and (rule is None or rule.send_resolved):
            self._notify(conn, alert, "resolved", now, groups, silences)

    @staticmethod
    def _transition(conn: Connection, alert: dict[str, Any], now: datetime, transitions: list[dict[str, Any]]
                    ) -> None:
        shown = public(alert)
        astore.add_event(conn, alert, now, shown)
        transitions.append(shown)

    @staticmethod
    def _notify(conn: Connection, alert: dict[str, Any], kind: str, now: datetime, groups: Groups,
                silences: list[dict[str, Any]]) -> None:
        if any(_silences(s, alert) for s in silences):
            return  # silenced: the state changes, nobody is woken up
        alert["last_notified_at"] = now
        astore.update_alert(conn, alert["id"], {"last_notified_at": now})
        groups[(alert["rule"], kind)].append(public(alert))

    def _enqueue(self, conn: Connection, groups: Groups, now: datetime) -> None:
        for (rule_name, kind), members in sorted(groups.items()):
            rule = self.rules.rule(rule_name)
            channels = self.rules.channels_of(rule) if rule is not None else self.rules.defaults.channels
            payload = notification_payload(rule_name, kind, members, now)
            for channel in channels:
                astore.enqueue(conn, channel, kind, payload, now)


def _silences(silence: dict[str, Any], alert: dict[str, Any]) -> bool:
    return silence["rule"] in (None, alert["rule"]) and silence["key"] in (None, alert["key"])


def notification_payload(rule: str, kind: str, members: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """The JSON a webhook receives (Slack and email render the same content as text)."""
    verb = {"firing": "FIRING", "repeat": "STILL FIRING", "resolved": "RESOLVED"}.get(kind, kind.upper())
    keys = ", ".join(m["key"] for m in members)
    return {"version": 1, "kind": kind, "rule": rule, "severity": members[0]["severity"], "at": iso(now),
            "title": f"{verb}: {rule} ({len(members)}): {keys}", "alerts": members}
