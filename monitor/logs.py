"""Logging setup: readable lines by default, one JSON object per line with `--log-json` (for log shippers)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    """Structured log lines; extra fields such as topic/partition/offset are kept when given."""

    _SKIP = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update({k: v for k, v in record.__dict__.items() if k not in self._SKIP})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(level: str = "INFO", json_lines: bool = False) -> None:
    """Log to stderr (stdout stays free for JSON results such as `finmon status --json`)."""
    handler = logging.StreamHandler(sys.stderr)
    fmt = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # kafka-python logs every refused connection at ERROR; our retry loops already say it once, clearly.
    quiet = logging.ERROR if level.upper() == "DEBUG" else logging.CRITICAL
    for noisy in ("kafka", "urllib3", "filelock", "httpx"):
        logging.getLogger(noisy).setLevel(quiet)
