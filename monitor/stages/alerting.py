"""Alerting stage: consumes `sentiment.windows` and re-evaluates the rules whenever windows change; an
APScheduler runs the same evaluation periodically, dispatches notifications and the daily digest.

Transitions go to the store and, through its outbox, to the `alerts` topic (monitor/alerts/service.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from monitor.alerts.service import AlertService
from monitor.clock import Clock
from monitor.config import Settings
from monitor.kafka.stage import OutMessage, dead_letter_message
from monitor.records import WINDOW_ROW_REQUIRED

log = logging.getLogger(__name__)
_REQUIRED = WINDOW_ROW_REQUIRED  # not the story fields: rows from an older aggregate stage still count


class AlertingProcessor:
    """sentiment.windows records -> an evaluation pass (bad records -> news.deadletter)."""

    stage = "alerting"

    def __init__(self, settings: Settings, service: AlertService, clock: Clock, scheduler: Any = None) -> None:
        self.settings, self.service, self.clock, self.scheduler = settings, service, clock, scheduler

    def process(self, records: Sequence[Any]) -> list[OutMessage]:
        out: list[OutMessage] = []
        good = 0
        for record in records:
            reason = _check(record.value)
            if reason is None:
                good += 1
            else:
                out.append(dead_letter_message(self.settings, record, self.stage, "invalid_field", reason, self.clock))
        if good:
            self.service.evaluate()
            self.service.publish_safely()
        return out

    def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        try:  # one last look: stream time may have moved (source marks) since the last evaluation
            self.service.evaluate()
            self.service.publish_safely()
        except Exception as exc:  # the store may be gone; the next worker evaluates from where this one stopped
            log.warning("alerting: final evaluation failed: %s", exc)
        self.service.store.dispose()


def _check(value: bytes | None) -> str | None:
    """None if `value` is a window row, else why not."""
    try:
        data = json.loads(value or b"")
    except (ValueError, UnicodeDecodeError):
        return "not a JSON window row; only the aggregate stage should publish to sentiment.windows"
    if not isinstance(data, dict) or any(k not in data for k in _REQUIRED):
        return f"window rows need the fields {', '.join(_REQUIRED)}"
    return None
