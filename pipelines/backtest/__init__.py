"""`finmon backtest`: a historical feed through the live classify -> windows -> alert code, in event time, and
the resulting signal tested against prices (rank IC, quintiles, event study of the alerts).

Modules: feed (load + the pipeline's gate), scoring (engine + score cache), stream (windows and alerts in
event time), prices (prices, calendar, sessions), signals (daily signals, IC, quintiles), events (event
study), edges (overlap checks and edge counts), report (files and report.html), run (the job), cli.
"""

from pipelines.backtest.cli import command

__all__ = ["command"]
