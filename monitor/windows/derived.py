"""Re-deriving stored windows after their sums changed: the metrics and z-scores of the touched windows and of
the `baseline_windows` windows after them (whose baselines include them), and the rows to publish.

`rederive` serves the per-batch path (monitor/windows/aggregator.py); `rederive_stories` the story pass
(monitor/windows/stories.py), whose sums feed no z-score: only the touched windows' own derived metrics change.
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


def rederive_stories(conn: Connection, spec: WindowSpec, touched: pd.DataFrame) -> list[WindowRow]:
    """After story sums changed: re-derive the touched windows (key, start_us) only, keep their stored
    z-scores, write and return them."""
    if touched.empty:
        return []
    stored = wstore.load_range(conn, spec.label, sorted(set(touched["key"])), int(touched["start_us"].min()),
                               int(touched["start_us"].max()))
    wanted = set(zip(touched["key"], touched["start_us"], strict=True))
    mask = [pair in wanted for pair in zip(stored["key"], stored["start_us"], strict=True)]
    stored = stored[pd.Series(mask, index=stored.index, dtype=bool)]
    fresh_rows = derive(stored)
    wstore.update_metrics(conn, spec.label, fresh_rows[~_same(stored, fresh_rows)])
    return [_out_row(r, spec) for r in fresh_rows.to_dict("records")]


def _same(old: pd.DataFrame, new: pd.DataFrame) -> pd.Series:
    """Rows whose derived metrics and z-scores are unchanged (NaN equals NaN), in one numpy pass."""
    cols = DERIVED_COLUMNS + Z_COLUMNS
    a, b = old[cols].to_numpy(dtype=np.float64), new[cols].to_numpy(dtype=np.float64)
    return pd.Series(((a == b) | (np.isnan(a) & np.isnan(b))).all(axis=1), index=old.index)


def _out_row(row: dict[str, Any], spec: WindowSpec) -> WindowRow:
    return WindowRow.from_mapping({**row, "size": spec.label,
                                   "window_start": from_us(row["start_us"]).to_pydatetime(),
                                   "window_end": from_us(row["start_us"] + spec.size_us).to_pydatetime()})
