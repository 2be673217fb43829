"""Re-deriving stored windows after their sums changed: the metrics and z-scores of the touched windows and of
the `baseline_windows` windows after them (whose baselines include them), and the rows to publish.

It serves both the per-batch path (monitor/windows/aggregator.py) and the story pass
(monitor/windows/stories.py), whose sums feed the story z-scores of the windows after the touched ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection

from monitor.records import WindowRow
from monitor.store import windows as wstore
from monitor.timestamps import from_us
from monitor.windows.engine import DERIVED_COLUMNS, Z_COLUMNS, Baseline, derive, zscores
from monitor.windows.spec import WindowSpec


def rederive(conn: Connection, spec: WindowSpec, baseline: Baseline, touched: pd.DataFrame) -> list[WindowRow]:
    """Re-derive the windows `touched` (key, start_us) and their successors; write those that changed and
    return them plus every touched one (a redelivery is republished too)."""
    if touched.empty:
        return []
    span = baseline.windows * spec.hop_us
    first = touched.groupby("key")["start_us"].min()
    stored = wstore.load_range(conn, spec.label, list(first.index), int(first.min()) - span,
                               int(touched["start_us"].max()) + span)
    fresh_rows = zscores(derive(stored), spec, baseline)
    target = fresh_rows["start_us"] >= fresh_rows["key"].map(first)
    changed = target & ~_same(stored, fresh_rows)
    wstore.update_metrics(conn, spec.label, fresh_rows[changed])
    touched_set = set(zip(touched["key"], touched["start_us"], strict=True))
    pairs = zip(fresh_rows["key"], fresh_rows["start_us"], strict=True)
    is_touched = pd.Series([pair in touched_set for pair in pairs], index=fresh_rows.index, dtype=bool)
    publish = fresh_rows[changed | is_touched]
    return [_out_row(r, spec) for r in publish.to_dict("records")]


def _same(old: pd.DataFrame, new: pd.DataFrame) -> pd.Series:
    """Rows whose derived metrics and z-scores are unchanged (NaN equals NaN), in one numpy pass."""
    cols = DERIVED_COLUMNS + Z_COLUMNS
    a, b = old[cols].to_numpy(dtype=np.float64), new[cols].to_numpy(dtype=np.float64)
    return pd.Series(((a == b) | (np.isnan(a) & np.isnan(b))).all(axis=1), index=old.index)


def _out_row(row: dict[str, Any], spec: WindowSpec) -> WindowRow:
    return WindowRow.from_mapping({**row, "size": spec.label,
                                   "window_start": from_us(row["start_us"]).to_pydatetime(),
                                   "window_end": from_us(row["start_us"] + spec.size_us).to_pydatetime()})
