"""Notification channels (webhook, Slack, email over SMTP+STARTTLS, log) and the outbox dispatcher.

Notifications are rows in `alert_notifications`, one per (message, channel), written in the same
transaction as the alert transition. The dispatcher sends the due ones one by one; a failure only
reschedules that row (exponential backoff) or, after the last attempt, marks it `failed` with the reason:
a broken channel never blocks the others and never loses the alert. Secrets (URLs, SMTP password) are
read from environment variables at send time and never logged.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import ssl
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from monitor import metrics
from monitor.alerts.errors import NotifyError
from monitor.alerts.rules import EmailChannel, LogChannel, RuleSet, SlackChannel, WebhookChannel
from monitor.clock import Clock
from monitor.config import AlertSettings
from monitor.store import Store
from monitor.store import alerts as astore

log = logging.getLogger(__name__)
AnyChannel = WebhookChannel | SlackChannel | EmailChannel | LogChannel


def _secret(env: str, channel: str) -> str:
    value = os.environ.get(env, "")
    if not value:
        raise NotifyError(f"channel {channel!r}: environment variable {env} is not set; export it in the "
                          "alerting worker's environment", permanent=True)
    return value


def post_json(url: str, body: dict[str, Any], timeout: float, channel: str) -> None:
    """POST JSON; 2xx is success, 4xx (except 408/429) is permanent, anything else is retried."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise NotifyError(f"channel {channel!r}: the URL must start with http:// or https://", permanent=True)
    data = json.dumps(body, separators=(",", ":")).encode("utf-8")
    request = urllib.request.Request(url, data=data, method="POST",  # noqa: S310  (scheme checked above)
                                     headers={"Content-Type": "application/json", "User-Agent": "finmon"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read()
    except urllib.error.HTTPError as exc:
        permanent = 400 <= exc.code < 500 and exc.code not in (408, 429)
        raise NotifyError(f"channel {channel!r}: HTTP {exc.code} {exc.reason}", permanent=permanent) from None
    except (urllib.error.URLError, OSError) as exc:  # the URL is a secret: report the reason only
        reason = getattr(exc, "reason", exc)
        raise NotifyError(f"channel {channel!r}: cannot reach the endpoint ({reason})") from None


def slack_body(payload: dict[str, Any]) -> dict[str, Any]:
    """Slack incoming-webhook format: a text fallback plus one attachment per alert."""
    colors = {"resolved": "#2eb886", "critical": "#d00000", "warning": "#f2c744", "info": "#439fe0"}
    color = colors["resolved"] if payload["kind"] == "resolved" else colors.get(payload["severity"], "#439fe0")
    attachments = [{"color": color, "title": a["key"], "text": a.get("summary", ""),
                    "fields": [{"title": "state", "value": a["state"], "short": True},
                               {"title": "severity", "value": a["severity"], "short": True}]}
                   for a in payload.get("alerts", [])]
    if payload.get("track_record_text"):
        attachments.append({"color": "#cccccc", "title": "track record", "text": payload["track_record_text"]})
    return {"text": payload["title"], "attachments": attachments}


def render_text(payload: dict[str, Any]) -> str:
    lines = [payload["title"], ""]
    for alert in payload.get("alerts", []):
        lines.append(f"- {alert.get('summary') or alert['key']} [state {alert['state']}, since "
                     f"{alert.get('started_at')}]")
    if payload.get("track_record_text"):
        lines += ["", payload["track_record_text"]]
    if payload.get("text"):
        lines.append(payload["text"])
    return "\n".join(lines)


def send_email(channel: EmailChannel, name: str, payload: dict[str, Any], timeout: float) -> None:
    message = EmailMessage()
    message["Subject"] = f"[finmon] {payload['title']}"
    message["From"], message["To"] = channel.sender, ", ".join(channel.to)
    message.set_content(render_text(payload))
    try:
        with smtplib.SMTP(channel.host, channel.port, timeout=timeout) as smtp:
            smtp.ehlo()
            if channel.starttls:
                smtp.starttls(context=ssl.create_default_context(cafile=channel.ca_file))
                smtp.ehlo()
            if channel.username:
                password = _secret(channel.password_env, name) if channel.password_env else ""
                smtp.login(channel.username, password)
            smtp.send_message(message)
    except smtplib.SMTPNotSupportedError as exc:
        raise NotifyError(f"channel {name!r}: the server does not offer STARTTLS ({exc}); set starttls: false "
                          "only for a trusted local relay", permanent=True) from None
    except smtplib.SMTPAuthenticationError as exc:
        raise NotifyError(f"channel {name!r}: SMTP login refused (code {exc.smtp_code}); check username and "
                          f"{channel.password_env}", permanent=True) from None
    except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        raise NotifyError(f"channel {name!r}: SMTP delivery to {channel.host}:{channel.port} failed "
                          f"({exc.__class__.__name__}: {exc})") from None


def send(name: str, channel: AnyChannel, payload: dict[str, Any], timeout: float) -> None:
    """Deliver one payload on one channel, or raise NotifyError."""
    if isinstance(channel, LogChannel):
        log.warning("alert [%s] %s", name, render_text(payload).replace("\n", " | "))
    elif isinstance(channel, WebhookChannel):
        post_json(_secret(channel.url_env, name), payload, timeout, name)
    elif isinstance(channel, SlackChannel):
        post_json(_secret(channel.url_env, name), slack_body(payload), timeout, name)
    else:
        send_email(channel, name, payload, timeout)


class Dispatcher:
    """Sends due notifications from the outbox, with retries and backoff (see the module docstring)."""

    def __init__(self, store: Store, rules: RuleSet, cfg: AlertSettings, clock: Clock) -> None:
        self.store, self.rules, self.cfg, self.clock = store, rules, cfg, clock

    def dispatch(self) -> int:
        """Try every due notification once; return how many were sent."""
        with self.store.engine.connect() as conn:
            due = astore.due_notifications(conn, self.clock.now())
        return sum(self._attempt(n) for n in due)

    def _attempt(self, note: dict[str, Any]) -> bool:
        channel = self.rules.channels.get(note["channel"])
        attempts = note["attempts"] + 1
        try:
            if channel is None:
                raise NotifyError(f"channel {note['channel']!r} is no longer defined in the rules file; add it back "
                                  "under 'channels'", permanent=True)
            send(note["channel"], channel, note["payload"], self.cfg.http_timeout_s)
        except Exception as exc:  # one channel's failure must not stop the others
            metrics.NOTIFICATIONS.labels(note["channel"], "failed").inc()
            self._failed(note, attempts, exc)
            return False
        metrics.NOTIFICATIONS.labels(note["channel"], "sent").inc()
        self._record(note["id"], {"status": "sent", "attempts": attempts, "sent_at": self.clock.now(),
                                  "last_error": None})
        return True

    def _failed(self, note: dict[str, Any], attempts: int, exc: Exception) -> None:
        permanent = isinstance(exc, NotifyError) and exc.permanent
        reason = str(exc) if isinstance(exc, NotifyError) else f"{exc.__class__.__name__}: {exc}"
        if permanent or attempts >= self.cfg.retry_max_attempts:
            log.error("notification %s on %s failed for good after %d attempt(s): %s", note["id"], note["channel"],
                      attempts, reason)
            self._record(note["id"], {"status": "failed", "attempts": attempts, "last_error": reason})
            return
        delay = min(self.cfg.retry_base_s * 2 ** (attempts - 1), self.cfg.retry_max_s)
        log.warning("notification %s on %s failed (%s); retry %d in %.0fs", note["id"], note["channel"], reason,
                    attempts + 1, delay)
        self._record(note["id"], {"attempts": attempts, "last_error": reason,
                                  "next_attempt_at": self.clock.now() + timedelta(seconds=delay)})

    def _record(self, notification_id: int, values: dict[str, Any]) -> None:
        with self.store.engine.begin() as conn:
            astore.record_attempt(conn, notification_id, values)


def queue_digest(store: Store, rules: RuleSet, channels: tuple[str, ...], now: datetime) -> dict[str, Any]:
    """Queue the daily digest (alerts active now or changed in the last 24 h) on `channels`."""
    with store.engine.begin() as conn:
        recent = astore.list_alerts(conn, since=now - timedelta(days=1))
        firing = [a for a in recent if a["state"] == "firing"]
        text = (f"{len(recent)} alert(s) in the last 24 h, {len(firing)} firing now: " +
                ", ".join(f"{a['rule']}/{a['key']} {a['state']}" for a in recent[:50]))
        payload = {"version": 1, "kind": "digest", "rule": "digest", "severity": "info",
                   "at": now.isoformat().replace("+00:00", "Z"), "title": f"finmon daily digest {now:%Y-%m-%d}",
                   "text": text, "alerts": []}
        for channel in channels:
            if channel not in rules.channels:
                log.error("digest channel %r is not defined in the rules file; add it under 'channels'", channel)
                continue
            astore.enqueue(conn, channel, "digest", payload, now)
    return payload
