"""Event-time sentiment windows per key (`market`, `topic:<name>`, `ticker:<SYMBOL>`).

- `spec`: window sizes (tumbling `5min`, hopping `1h/15min`), aligned to the epoch.
- `keys`: which keys an item counts for (tickers, cashtags, company dictionary).
- `engine`: the pandas arithmetic: exact integer sums, derived metrics, z-scores against a baseline.
- `aggregator`: one micro-batch applied to the store in one transaction (exactly-once windows).

Lateness is decided at the source (monitor/core/lateness.py); the aggregator takes it from the items.
"""

from monitor.windows.errors import WindowError
from monitor.windows.spec import WindowSpec, parse_spec

__all__ = ["WindowError", "WindowSpec", "parse_spec"]
