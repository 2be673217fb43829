"""Alert lifecycle decisions, as in Prometheus/Alertmanager: pure functions of the rules, the windows in
view, the active alerts, the silences and an injected time `now` (no I/O: monitor/alerts/lifecycle.py reads
the store, calls `decide` and writes the actions it returns).

For each rule, the windows *in view* are those of the rule's size that contain `now` or ended less than one
window size before it (so a burst stays visible for one more window). For every key in the rule's scope:

- conditions hold and no active alert -> `pending` (started_at = now); with `for: 0s` it fires at once;
- `pending` and holding for at least `for` -> `firing`: a notification is queued;
- `firing` and still holding -> a repeat notification once `repeat_interval` has passed since the last one,
  unless the alert is acknowledged or silenced;
- conditions stop holding: `pending` -> `inactive` (never notified); `firing` -> `resolved` (notified).

Alerts are deduplicated per (rule, key); transitions of one evaluation are grouped per (rule, kind) into
one notification per channel. Silenced alerts change state as usual but queue no notifications.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor.alerts.rules import Rule, RuleSet


@dataclass(frozen=True, slots=True)
class Insert:
    """Store a new alert (the writer sets its `id`)."""

    alert: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Update:
    """Change stored fields of an alert."""

    alert: dict[str, Any]
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Transition:
    """The alert changed state: an event for the `alerts` topic and the caller. `snapshot`: the alert as it
    was at that moment (a later action of the same pass may change it again)."""

    alert: dict[str, Any]
    snapshot: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Notify:
    """Queue a notification of `kind` (firing, repeat, resolved) about the alert on its rule's channels."""

    alert: dict[str, Any]
    kind: str
    snapshot: dict[str, Any]


Action = Insert | Update | Transition | Notify


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


def matching(rule: Rule, windows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """key -> the latest window in view that meets the rule's conditions."""
    out: dict[str, dict[str, Any]] = {}
    for window in windows:
        key = window["key"]
        newer = key not in out or window["window_start"] > out[key]["window_start"]
        if newer and rule.in_scope(key) and rule.matches(window):
            out[key] = window
    return out


def decide(rules: RuleSet, in_view: Mapping[str, Sequence[dict[str, Any]]],
           active: Mapping[tuple[str, str], dict[str, Any]], silences: Sequence[dict[str, Any]], now: datetime,
           only: Collection[str] | None = None) -> list[Action]:
    """The actions of one evaluation at `now`, in the order they are to be written. `in_view`: rule name ->
    the windows in view; `active`: (rule, key) -> the pending or firing alert (not modified); `only`: the
    names of the rules to evaluate (None: all), whose alerts alone may change."""
    actions: list[Action] = []
    current = {ident: copy.deepcopy(alert) for ident, alert in active.items() if only is None or ident[0] in only}
    seen: set[tuple[str, str]] = set()
    for rule in rules.rules if only is None else [r for r in rules.rules if r.name in only]:
        for key, window in sorted(matching(rule, in_view.get(rule.name, ())).items()):
            seen.add((rule.name, key))
            _hold(rules, rule, key, window, current.get((rule.name, key)), now, silences, actions)
    for ident, alert in current.items():
        if ident not in seen:
            _clear(rules, alert, now, silences, actions)
    return actions


def _hold(rules: RuleSet, rule: Rule, key: str, window: dict[str, Any], alert: dict[str, Any] | None, now: datetime,
          silences: Sequence[dict[str, Any]], actions: list[Action]) -> None:
    snapshot = {"summary": summarize(rule, key, window), "window": jsonable(window), "updated_at": now}
    if alert is None:
        alert = {"rule": rule.name, "key": key, "state": "pending", "severity": rule.severity,
                 "labels": dict(rule.labels), "started_at": now, **snapshot}
        actions += [Insert(alert), Transition(alert, dict(alert))]
    else:
        alert.update(snapshot)
        actions.append(Update(alert, snapshot))
    if alert["state"] == "pending" and now - alert["started_at"] >= rule.for_:
        alert.update(state="firing", fired_at=now)
        actions += [Update(alert, {"state": "firing", "fired_at": now}), Transition(alert, dict(alert))]
        _notify(alert, "firing", now, silences, actions)
    elif alert["state"] == "firing" and alert.get("acked_at") is None and _repeat_due(rules, rule, alert, now):
        _notify(alert, "repeat", now, silences, actions)


def _repeat_due(rules: RuleSet, rule: Rule, alert: dict[str, Any], now: datetime) -> bool:
    last = alert.get("last_notified_at")
    return last is None or now - last >= rules.repeat_of(rule)


def _clear(rules: RuleSet, alert: dict[str, Any], now: datetime, silences: Sequence[dict[str, Any]],
           actions: list[Action]) -> None:
    if alert["state"] == "pending":
        alert.update(state="inactive", updated_at=now)
        actions += [Update(alert, {"state": "inactive", "updated_at": now}), Transition(alert, dict(alert))]
        return
    alert.update(state="resolved", resolved_at=now, updated_at=now)
    actions += [Update(alert, {"state": "resolved", "resolved_at": now, "updated_at": now}),
                Transition(alert, dict(alert))]
    rule = rules.rule(alert["rule"])
    if alert.get("last_notified_at") is not None and (rule is None or rule.send_resolved):
        _notify(alert, "resolved", now, silences, actions)


def _notify(alert: dict[str, Any], kind: str, now: datetime, silences: Sequence[dict[str, Any]],
            actions: list[Action]) -> None:
    if any(_silences(s, alert) for s in silences):
        return  # silenced: the state changes, nobody is woken up
    alert["last_notified_at"] = now
    actions += [Update(alert, {"last_notified_at": now}), Notify(alert, kind, dict(alert))]


def _silences(silence: dict[str, Any], alert: dict[str, Any]) -> bool:
    return silence["rule"] in (None, alert["rule"]) and silence["key"] in (None, alert["key"])


def notification_payload(rule: str, kind: str, members: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """The JSON a webhook receives (Slack and email render the same content as text)."""
    verb = {"firing": "FIRING", "repeat": "STILL FIRING", "resolved": "RESOLVED"}.get(kind, kind.upper())
    keys = ", ".join(m["key"] for m in members)
    return {"version": 1, "kind": kind, "rule": rule, "severity": members[0]["severity"], "at": iso(now),
            "title": f"{verb}: {rule} ({len(members)}): {keys}", "alerts": members}
