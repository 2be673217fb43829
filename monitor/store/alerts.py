"""Alert tables: current and past alerts, their transitions, silences, and the notification outbox.

`alerts` — one row per alert instance, deduplicated per (rule, key) while `pending` or `firing`:
    id, rule, key (`market`, `topic:<name>`, `ticker:<SYMBOL>`), state (`pending`, `firing`, `resolved`, or
    `inactive` for a pending alert whose conditions stopped holding before it fired), severity, labels,
    summary, window (the window row that last matched), started_at (first match), fired_at, resolved_at,
    last_notified_at, acked_at, acked_by, updated_at. All times UTC.
`alert_events` — every transition (history), also the outbox of the `alerts` topic (`published_at`).
`alert_silences` — rule and/or key to silence (null = any) from starts_at until ends_at.
`alert_notifications` — one row per (channel, message): pending -> sent, or failed after the last retry.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, insert, or_, select, update

from monitor.store.schema import alert_events, alert_notifications, alert_progress, alert_silences, alerts
from monitor.store.times import as_utc

ACTIVE = ("pending", "firing")
LISTED = ("pending", "firing", "resolved")
_TIMES = ("started_at", "fired_at", "resolved_at", "last_notified_at", "acked_at", "updated_at", "at",
          "starts_at", "ends_at", "created_at", "next_attempt_at", "sent_at", "published_at")


def _row(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    for name in _TIMES:
        if name in out:
            out[name] = as_utc(out[name])
    return out


def active_alerts(conn: Connection) -> dict[tuple[str, str], dict[str, Any]]:
    query = select(alerts).where(alerts.c.state.in_(ACTIVE))
    return {(r["rule"], r["key"]): r for r in map(_row, conn.execute(query))}


def insert_alert(conn: Connection, values: dict[str, Any]) -> int:
    return int(conn.execute(insert(alerts).values(**values).returning(alerts.c.id)).scalar_one())


def update_alert(conn: Connection, alert_id: int, values: dict[str, Any]) -> None:
    conn.execute(update(alerts).where(alerts.c.id == alert_id).values(**values))


def add_event(conn: Connection, alert: dict[str, Any], at: datetime, payload: dict[str, Any]) -> None:
    conn.execute(insert(alert_events).values(alert_id=alert["id"], rule=alert["rule"], key=alert["key"],
                                             state=alert["state"], severity=alert["severity"], at=at,
                                             payload=payload))


def unpublished_events(conn: Connection, limit: int = 500) -> list[dict[str, Any]]:
    query = select(alert_events).where(alert_events.c.published_at.is_(None)).order_by(alert_events.c.id).limit(limit)
    return [_row(r) for r in conn.execute(query)]


def mark_published(conn: Connection, ids: list[int], at: datetime) -> None:
    if ids:
        conn.execute(update(alert_events).where(alert_events.c.id.in_(ids)).values(published_at=at))


def active_silences(conn: Connection, at: datetime) -> list[dict[str, Any]]:
    query = select(alert_silences).where(alert_silences.c.starts_at <= at, alert_silences.c.ends_at > at)
    return [_row(r) for r in conn.execute(query)]


def add_silence(conn: Connection, values: dict[str, Any]) -> int:
    return int(conn.execute(insert(alert_silences).values(**values).returning(alert_silences.c.id)).scalar_one())


def list_silences(conn: Connection) -> list[dict[str, Any]]:
    return [_row(r) for r in conn.execute(select(alert_silences).order_by(alert_silences.c.id))]


def list_alerts(conn: Connection, states: tuple[str, ...] = LISTED, since: datetime | None = None
                ) -> list[dict[str, Any]]:
    query = select(alerts).where(alerts.c.state.in_(states))
    if since is not None:
        query = query.where(or_(alerts.c.updated_at >= since, alerts.c.state.in_(ACTIVE)))
    return [_row(r) for r in conn.execute(query.order_by(alerts.c.started_at, alerts.c.id))]


def ack_alerts(conn: Connection, at: datetime, by: str, alert_id: int | None = None, rule: str | None = None,
               key: str | None = None) -> int:
    """Acknowledge firing/pending alerts by id, or by rule and/or key; returns how many."""
    cond: list[Any] = [alerts.c.state.in_(ACTIVE), alerts.c.acked_at.is_(None)]
    if alert_id is not None:
        cond.append(alerts.c.id == alert_id)
    if rule is not None:
        cond.append(alerts.c.rule == rule)
    if key is not None:
        cond.append(alerts.c.key == key)
    result = conn.execute(update(alerts).where(and_(*cond)).values(acked_at=at, acked_by=by, updated_at=at))
    return int(result.rowcount or 0)


def enqueue(conn: Connection, channel: str, kind: str, payload: dict[str, Any], at: datetime) -> None:
    conn.execute(insert(alert_notifications).values(channel=channel, kind=kind, payload=payload, status="pending",
                                                    attempts=0, next_attempt_at=at, created_at=at))


def due_notifications(conn: Connection, at: datetime, limit: int = 100) -> list[dict[str, Any]]:
    query = (select(alert_notifications)
             .where(alert_notifications.c.status == "pending", alert_notifications.c.next_attempt_at <= at)
             .order_by(alert_notifications.c.id).limit(limit))
    return [_row(r) for r in conn.execute(query)]


def record_attempt(conn: Connection, notification_id: int, values: dict[str, Any]) -> None:
    conn.execute(update(alert_notifications).where(alert_notifications.c.id == notification_id).values(**values))


def notifications(conn: Connection) -> list[dict[str, Any]]:
    return [_row(r) for r in conn.execute(select(alert_notifications).order_by(alert_notifications.c.id))]


def events(conn: Connection) -> list[dict[str, Any]]:
    return [_row(r) for r in conn.execute(select(alert_events).order_by(alert_events.c.id))]


def evaluated_tick(conn: Connection, stream: str) -> datetime | None:
    """The last event-time tick stream-mode alerting evaluated for `stream` (None before the first)."""
    value = conn.execute(select(alert_progress.c.tick).where(alert_progress.c.stream == stream)).scalar_one_or_none()
    return as_utc(value) if value is not None else None


def set_evaluated_tick(conn: Connection, stream: str, tick: datetime) -> None:
    updated = conn.execute(update(alert_progress).where(alert_progress.c.stream == stream).values(tick=tick))
    if not updated.rowcount:
        conn.execute(insert(alert_progress).values(stream=stream, tick=tick))
