"""The window arithmetic, in pandas: per-item integer contributions, per-window sums, derived metrics and
z-scores against each key's own baseline.

Sums are exact integers (scores and confidences in micro-units), so a window's value does not depend on
the order or batching in which its items arrived: the same set of items always gives the same bits.

Per window (one key, one spec, one `window_start`):

- `count`, `n_negative`, `n_neutral`, `n_positive` (items by their sentiment label),
- `sum_score_u` (sum of P(pos) - P(neg), micro-units), `sum_conf_u` (sum of the label's probability, the
  item's confidence), `sum_conf_score_u` (sum of confidence x score),
- `mean_sentiment` = mean score in [-1, 1]; `negative_share` / `neutral_share` / `positive_share`;
  `sentiment_index` = confidence-weighted mean score in [-1, 1],
- story columns (issue #13): `n_stories` (items that start a story in the window's key: novelty 100),
  `n_negative_stories` (those labelled negative), `sum_novelty`, `sum_nov_score_u` (sum of
  novelty x score / 100); `story_sentiment` = the novelty-weighted mean score (copies of a story weigh less
  and less), `story_negative_share` = n_negative_stories / n_stories. An item's novelty is decided by the
  story pass at the watermark (monitor/windows/stories.py), so the per-batch sums leave these at 0 and the
  pass adds them with `story_sums`; `compute_windows` adds them at once when items carry a `novelty`.
- `volume_z` = (count - mean) / max(std, volume_std_floor) over the counts of the `baseline_windows`
  windows just before it (empty windows count as 0), and `sentiment_z` = the same for `sentiment_index`
  over the non-empty ones (floor `sentiment_std_floor`). Both are defined (not null) once at least
  `min_baseline_windows` of those preceding windows are non-empty (defaults: 6 of the last 24).
- `story_z` and `story_sentiment_z`: the same two for `n_stories` (floor `volume_std_floor`) and
  `story_sentiment` (floor `sentiment_std_floor`; defined once that many preceding windows have a settled
  story): the story-weighted baseline of an S-score, which sixty copies of one headline do not move.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from monitor.config import WindowSettings
from monitor.records import WINDOW_DERIVED, WINDOW_STORY_SUMS, WINDOW_SUMS, WINDOW_ZSCORES, ScoredItem
from monitor.timestamps import to_us
from monitor.windows.spec import WindowSpec

MICRO = 1_000_000
SUM_COLUMNS = list(WINDOW_SUMS)
STORY_SUM_COLUMNS = list(WINDOW_STORY_SUMS)
BATCH_SUM_COLUMNS = [c for c in SUM_COLUMNS if c not in STORY_SUM_COLUMNS]  # what an item adds on arrival
DERIVED_COLUMNS = list(WINDOW_DERIVED)
Z_COLUMNS = list(WINDOW_ZSCORES)
ITEM_COLUMNS = ["item_id", "t_us", "label", "score_u", "conf_u", "conf_score_u"]


@dataclass(frozen=True, slots=True)
class Baseline:
    """How z-scores are measured (from `WindowSettings`)."""

    windows: int = 24
    min_windows: int = 6
    volume_floor: float = 1.0
    sentiment_floor: float = 0.05

    @classmethod
    def from_settings(cls, cfg: WindowSettings) -> Baseline:
        return cls(cfg.baseline_windows, cfg.min_baseline_windows, cfg.volume_std_floor, cfg.sentiment_std_floor)


def item_values(scored: ScoredItem) -> dict[str, object]:
    """One item's exact integer contributions (deterministic: same item, same numbers)."""
    probs = scored.sentiment_probs
    score_u = round(scored.sentiment_score * MICRO)
    conf_u = round(max(probs.values()) * MICRO)
    label = scored.sentiment if scored.sentiment in ("negative", "neutral", "positive") else _argmax(probs)
    return {
        "item_id": scored.item.id,
        "t_us": to_us(scored.item.published_at),
        "label": label,
        "score_u": score_u,
        "conf_u": conf_u,
        "conf_score_u": _round_div(conf_u * score_u, MICRO),
    }


def _argmax(probs: dict[str, float]) -> str:
    return max(("negative", "neutral", "positive"), key=lambda k: probs.get(k, 0.0))


def _round_div(a: int, b: int) -> int:
    """Integer a/b rounded half away from zero (no floats: exact on every platform)."""
    q, r = divmod(abs(a), b)
    q += 1 if 2 * r >= b else 0
    return q if a >= 0 else -q



def explode_keys(items: pd.DataFrame) -> pd.DataFrame:
    """Items with a `keys` list column -> one row per (key, item)."""
    out = items.explode("keys").rename(columns={"keys": "key"})
    return out[out["key"].notna()].reset_index(drop=True)


def assign_windows(rows: pd.DataFrame, spec: WindowSpec) -> pd.DataFrame:
    """(key, item) rows -> one row per (key, window_start_us, item) for every window containing the item."""
    base = rows["t_us"].to_numpy(dtype=np.int64)
    last_start = base - np.mod(base, spec.hop_us)
    parts = []
    for k in range(spec.per_item):  # a hopping spec puts each item into size/hop windows
        part = rows.copy()
        part["start_us"] = last_start - k * spec.hop_us
        parts.append(part)
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


_SMALL = 20_000  # (key, window, item) placements up to which plain Python beats pandas' fixed cost per call
_SLOT = {name: i for i, name in enumerate(SUM_COLUMNS)}
_LABEL_SLOT = {label: _SLOT[f"n_{label}"] for label in ("negative", "neutral", "positive")}
_COUNT, _SCORE, _CONF, _CONF_SCORE = (_SLOT[c] for c in ("count", "sum_score_u", "sum_conf_u", "sum_conf_score_u"))


def window_sums(rows: pd.DataFrame, spec: WindowSpec) -> pd.DataFrame:
    """Exact per-window sums of (key, item) rows: columns key, start_us and SUM_COLUMNS, sorted by both. The
    story sums come from a `novelty` column when the rows have one (null: not settled, no contribution), else
    are 0 (the per-batch path: stories are added later by the story pass)."""
    if rows.empty:
        return pd.DataFrame(columns=["key", "start_us", *SUM_COLUMNS])
    if len(rows) * spec.per_item <= _SMALL and "novelty" not in rows:
        return _small_window_sums(rows, spec)
    placed = assign_windows(rows, spec)
    label = placed["label"]
    placed = placed.assign(
        count=1,
        n_negative=(label == "negative").astype(np.int64),
        n_neutral=(label == "neutral").astype(np.int64),
        n_positive=(label == "positive").astype(np.int64),
        sum_score_u=placed["score_u"].astype(np.int64),
        sum_conf_u=placed["conf_u"].astype(np.int64),
        sum_conf_score_u=placed["conf_score_u"].astype(np.int64),
        **_story_values(placed),
    )
    sums = placed.groupby(["key", "start_us"], sort=True)[SUM_COLUMNS].sum()
    return sums.reset_index().astype({c: np.int64 for c in SUM_COLUMNS})


def story_sums(rows: pd.DataFrame, spec: WindowSpec) -> pd.DataFrame:
    """Per-window story sums of (key, item) rows with a `novelty` column: key, start_us, STORY_SUM_COLUMNS."""
    if rows.empty:
        return pd.DataFrame(columns=["key", "start_us", *STORY_SUM_COLUMNS])
    if len(rows) * spec.per_item <= _SMALL:
        return _small_story_sums(rows, spec)
    placed = assign_windows(rows, spec)
    placed = placed.assign(**_story_values(placed))
    sums = placed.groupby(["key", "start_us"], sort=True)[STORY_SUM_COLUMNS].sum()
    return sums.reset_index().astype({c: np.int64 for c in STORY_SUM_COLUMNS})


def _story_values(placed: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per-row story contributions: a story's first item (novelty 100) counts as a story; every item adds
    its novelty and novelty x score / 100 (rounded half away from zero, exact)."""
    if "novelty" not in placed:
        zero = np.zeros(len(placed), dtype=np.int64)
        return {c: zero for c in STORY_SUM_COLUMNS}
    novelty = placed["novelty"].fillna(-1).to_numpy(dtype=np.int64)
    settled = novelty >= 0
    novelty = np.where(settled, novelty, 0)
    head = (novelty == 100).astype(np.int64)
    weighted = novelty * placed["score_u"].to_numpy(dtype=np.int64)
    rounded = np.sign(weighted) * ((np.abs(weighted) + 50) // 100)  # 100 is even: exact half-away rounding
    return {"n_stories": head,
            "n_negative_stories": head * (placed["label"].to_numpy() == "negative").astype(np.int64),
            "sum_novelty": novelty, "sum_nov_score_u": rounded.astype(np.int64)}


def _small_story_sums(rows: pd.DataFrame, spec: WindowSpec) -> pd.DataFrame:
    """`story_sums` for a pass's batch with integer accumulators (see `_placed_sums`); same integers."""
    def contribution(label: str, score: int, novelty: Any) -> list[int]:
        novelty = 0 if novelty is None or novelty != novelty else int(novelty)  # not settled: adds nothing
        head = 1 if novelty == 100 else 0
        return [head, head if label == "negative" else 0, novelty, _round_div(novelty * int(score), 100)]

    return _placed_sums(rows, spec, ("label", "score_u", "novelty"), contribution, STORY_SUM_COLUMNS)


def _small_window_sums(rows: pd.DataFrame, spec: WindowSpec) -> pd.DataFrame:
    """`window_sums` for a micro-batch (see `_placed_sums`); story sums stay 0 (settled later)."""
    def contribution(label: str, score: int, conf: int, conf_score: int) -> list[int]:
        sums = [0] * len(SUM_COLUMNS)
        sums[_COUNT], sums[_LABEL_SLOT[label]] = 1, 1
        sums[_SCORE], sums[_CONF], sums[_CONF_SCORE] = score, conf, conf_score
        return sums

    return _placed_sums(rows, spec, ("label", "score_u", "conf_u", "conf_score_u"), contribution, SUM_COLUMNS)


def _placed_sums(rows: pd.DataFrame, spec: WindowSpec, fields: Sequence[str],
                 contribution: Callable[..., list[int]], columns: Sequence[str]) -> pd.DataFrame:
    """Exact integer sums of each item's `contribution(*fields)` over the windows that hold it: a dict of
    accumulators instead of explode/concat/groupby, whose fixed cost (~10 ms a call) dominated micro-batches.
    Columns key, start_us and `columns`, sorted by key and start as the pandas path sorts them."""
    acc: dict[tuple[str, int], list[int]] = {}
    hop, per_item = spec.hop_us, spec.per_item
    for key, t_us, *values in zip(*(rows[c].tolist() for c in ("key", "t_us", *fields)), strict=True):
        add = contribution(*values)
        last_start = t_us - t_us % hop  # Python's % floors like np.mod: the same window for times before 1970
        for k in range(per_item):
            sums = acc.setdefault((key, last_start - k * hop), [0] * len(columns))
            for i, value in enumerate(add):
                sums[i] += value
    out = pd.DataFrame([(key, start, *sums) for (key, start), sums in sorted(acc.items())],
                       columns=["key", "start_us", *columns])
    return out.astype({"start_us": np.int64, **{c: np.int64 for c in columns}})


def derive(windows: pd.DataFrame) -> pd.DataFrame:
    """Add the derived metrics of SUM_COLUMNS rows (a new frame)."""
    out = windows.copy()
    count = out["count"].to_numpy(dtype=np.float64)
    out["mean_sentiment"] = out["sum_score_u"].to_numpy(dtype=np.float64) / count / MICRO
    for label in ("negative", "neutral", "positive"):
        out[f"{label}_share"] = out[f"n_{label}"].to_numpy(dtype=np.float64) / count
    conf = out["sum_conf_u"].to_numpy(dtype=np.float64)
    out["sentiment_index"] = out["sum_conf_score_u"].to_numpy(dtype=np.float64) / np.where(conf > 0, conf, 1.0)
    novelty = out["sum_novelty"].to_numpy(dtype=np.float64)
    stories = out["n_stories"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):  # no settled story yet: undefined (null)
        out["story_sentiment"] = np.where(
            novelty > 0, 100.0 * out["sum_nov_score_u"].to_numpy(dtype=np.float64) / novelty / MICRO, np.nan)
        out["story_negative_share"] = np.where(
            stories > 0, out["n_negative_stories"].to_numpy(dtype=np.float64) / stories, np.nan)
    return out


def zscores(windows: pd.DataFrame, spec: WindowSpec, baseline: Baseline) -> pd.DataFrame:
    """The z-scores (`Z_COLUMNS`) of every row of `windows` (key, start_us and the metrics they measure).

    Each row's baseline is looked up among the rows given, so pass every row of the keys involved from
    `baseline.windows` hops before the first target on (a later row never affects an earlier one).
    """
    out = windows.copy()
    if out.empty:
        for col in Z_COLUMNS:
            out[col] = pd.Series(dtype=float)
        return out
    codes, _ = pd.factorize(out["key"], sort=True)
    bucket = out["start_us"].to_numpy(dtype=np.int64) // spec.hop_us
    ids = codes.astype(np.int64) * (1 << 40) + bucket  # one sortable integer per (key, window)
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    lags = np.arange(1, baseline.windows + 1, dtype=np.int64)
    wanted = ids[:, None] - lags[None, :]
    pos = np.clip(np.searchsorted(sorted_ids, wanted), 0, len(sorted_ids) - 1)
    present = sorted_ids[pos] == wanted
    defined = present.sum(axis=1) >= baseline.min_windows

    def lagged(col: str, absent: float) -> tuple[np.ndarray, np.ndarray]:
        values = out[col].to_numpy(dtype=np.float64)
        return values, np.where(present, values[order][pos], absent)

    count, base = lagged("count", 0.0)  # an empty window counts 0 items
    out["volume_z"] = _z(count, base, baseline.volume_floor, defined)
    index, base = lagged("sentiment_index", np.nan)  # ...but has no sentiment
    out["sentiment_z"] = _z(index, base, baseline.sentiment_floor, defined)
    stories, base = lagged("n_stories", 0.0)
    out["story_z"] = _z(stories, base, baseline.volume_floor, defined)
    story_sentiment, base = lagged("story_sentiment", np.nan)  # null until a story of the window is settled
    settled = (~np.isnan(base)).sum(axis=1) >= baseline.min_windows
    out["story_sentiment_z"] = _z(story_sentiment, base, baseline.sentiment_floor, settled)
    return out


def _z(values: np.ndarray, base: np.ndarray, floor: float, defined: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nanmean(np.where(defined[:, None], base, 0.0), axis=1)
        std = np.nanstd(np.where(defined[:, None], base, 0.0), axis=1, ddof=1)
    z = (values - mean) / np.maximum(np.nan_to_num(std, nan=0.0), floor)
    return np.where(defined, np.round(z, 6), np.nan)


def compute_windows(items: pd.DataFrame, specs: Sequence[WindowSpec], baseline: Baseline) -> pd.DataFrame:
    """Every window of every key and spec from scratch (columns `size` = spec label, key, start_us, ...)."""
    rows = explode_keys(items)
    frames = []
    for spec in specs:
        sums = window_sums(rows, spec)
        full = zscores(derive(sums), spec, baseline)
        full.insert(0, "size", spec.label)
        full["end_us"] = full["start_us"] + spec.size_us
        frames.append(full)
    return pd.concat(frames, ignore_index=True)


def items_frame(values: Sequence[dict[str, object]], keys: Sequence[Sequence[str]]) -> pd.DataFrame:
    """ITEM_COLUMNS + `keys` from per-item values and their keys."""
    frame = pd.DataFrame(list(values), columns=ITEM_COLUMNS)
    frame["keys"] = [list(k) for k in keys]
    return frame.astype({"t_us": np.int64, "score_u": np.int64, "conf_u": np.int64, "conf_score_u": np.int64})
