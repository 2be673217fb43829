"""The architecture's walls, checked where the import linter (`make lint` runs lint-imports) cannot look:
imports made by name at run time, and what rendering the dashboard really loads."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

# Renders every dashboard page in a fresh interpreter (a store with one worker heartbeat, so the System page
# takes its lag path), then prints the Kafka client modules that got loaded.
RENDER_EVERY_PAGE = """
import sys
from datetime import UTC, datetime

from streamlit.testing.v1 import AppTest

from monitor.store import Store
from monitor.store.heartbeats import beat

store = Store(sys.argv[1])
store.create_schema()
now = datetime.now(UTC)
beat(store.engine, {"worker": "w:1", "stage": "sink", "started_at": now, "updated_at": now, "stopped_at": None,
                    "assigned": ["news.scored[0]"], "records_in": 1, "messages_out": 1, "dead_letters": 0,
                    "batches": 1, "records_per_s": 1.0, "mean_batch": 1.0, "lag": {"news.scored[0]": 2}})
for view in ("overview", "alerts", "news", "ticker", "backtest", "system"):
    at = AppTest.from_string(f"from dashboards.views.{view} import render\\nrender()", default_timeout=120)
    at.run()
    assert not at.exception, (view, at.exception)
import dashboards.app, dashboards.serve  # noqa: E401,F401
print(sorted(name for name in sys.modules if name == "kafka" or name.startswith("kafka.")))
"""


def test_the_dashboard_loads_no_kafka_client(tmp_path: Path) -> None:
    env_url = f"sqlite:///{tmp_path / 'finmon.db'}"
    proc = subprocess.run(
        [sys.executable, "-c", RENDER_EVERY_PAGE, env_url],
        cwd=REPO,
        env=dict(os.environ, FINMON_STORE_URL=env_url, FINMON_BOOTSTRAP="127.0.0.1:1"),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_the_library_names_no_application_module() -> None:
    """monitor/ may not load pipelines, dashboards or benchmarks even by name (importlib, entry strings)."""
    pattern = re.compile(r"""["'](pipelines|dashboards|benchmarks)[.:]""")
    offenders = [
        f"{path.relative_to(REPO)}:{n}"
        for path in sorted((REPO / "monitor").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []
