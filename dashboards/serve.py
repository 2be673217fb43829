"""`finmon dashboard`: serve the Streamlit app on 127.0.0.1, reading the store named by FINMON_STORE_URL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import click

from monitor.config import Settings

APP = Path(__file__).resolve().parent / "app.py"


def streamlit_command(port: int, address: str = "127.0.0.1") -> list[str]:
    """The streamlit invocation: bound to loopback, headless, no usage statistics."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.address",
        address,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]


def dashboard_env(settings: Settings) -> dict[str, str]:
    return dict(os.environ, FINMON_STORE_URL=settings.store_url, FINMON_BOOTSTRAP=settings.bootstrap)


@click.command("dashboard")
@click.option("--port", type=int, default=8501, show_default=True)
@click.option("--address", default="127.0.0.1", show_default=True, help="Bind address (loopback by default).")
@click.pass_obj
def command(settings: Settings, port: int, address: str) -> None:
    """Serve the dashboard until Ctrl-C."""
    click.echo(f"dashboard on http://{address}:{port} reading {settings.store_url}", err=True)
    proc = subprocess.Popen(streamlit_command(port, address), env=dashboard_env(settings))  # noqa: S603
    # Pass SIGTERM on to streamlit and wait for it: dying alone would leave the server running as an orphan.
    signal.signal(signal.SIGTERM, lambda signum, _frame: proc.send_signal(signum))
    try:
        sys.exit(proc.wait())
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(timeout=10)
