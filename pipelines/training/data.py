"""Labelled data for training and evaluation: reading CSV/JSONL/Parquet, label checks, the held-out split.

Every error names the file, what was wrong, and how to fix it, because these are user-supplied files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from monitor.errors import SourceError
from monitor.sources import files


@dataclass
class Split:
    """One task's data, carved into train and held-out validation rows (columns: text, label). A file labelled for
    both heads (task `news`) has columns text, label_topic and label_sentiment instead, and may be `repeat`ed."""

    task: str
    train: pd.DataFrame
    validation: pd.DataFrame
    repeat: int = 1
    file: Path | None = None  # a two-label file's path (the others are named by their --<task>-data option)


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV, TSV, JSONL, JSON or Parquet file with the same reader as replay and backtest; labelled data
    must be whole, so a JSONL line that is not a JSON object is an error here rather than a dead letter."""
    unparsed: list[bytes] = []
    try:
        frame = files.read_table(path, unparsed)
    except SourceError as exc:
        raise click.BadParameter(f"data file {exc}") from exc
    if unparsed:
        raise click.BadParameter(f"{path}: {len(unparsed)} line(s) are not JSON objects (first: "
                                 f"{unparsed[0][:80]!r}); fix or remove them")
    return frame


def read_topic_labels(path: Path) -> list[str]:
    """Topic names in id order, from a CSV with `label_id,label` columns or a text file with one per line."""
    if not path.is_file():
        raise click.BadParameter(f"topic label file {path} does not exist (expected label_id,label CSV or .txt)")
    if path.suffix.lower() == ".txt":
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    frame = read_table(path)
    if not {"label_id", "label"} <= set(frame.columns):
        raise click.BadParameter(f"{path}: needs columns label_id and label, found {list(frame.columns)}")
    return frame.assign(label_id=frame["label_id"].astype(int)).sort_values("label_id")["label"].tolist()


def load_labelled(
    path: Path,
    text_col: str,
    label_col: str,
    labels: Sequence[str],
    task: str,
    split: str | None = None,
    split_col: str = "split",
) -> pd.DataFrame:
    """Read `path` and return columns text/label, with every label checked against `labels`; with `split`, only
    the rows whose `split_col` equals it (a file that carries its own fixed train/validation split)."""
    frame = read_table(path)
    if split is not None:
        frame = select_split(frame, path, split, split_col)
    missing = [c for c in (text_col, label_col) if c not in frame.columns]
    if missing:
        raise click.BadParameter(
            f"{path}: missing column(s) {missing}; available columns: {list(frame.columns)}. "
            f"Name the right columns with the {task} text/label column options"
        )
    out = pd.DataFrame({"text": frame[text_col].fillna("").astype(str), "label": frame[label_col].astype(str)})
    out["label"] = out["label"].str.strip()
    check_labels(out["label"], labels, path, task)
    return out.reset_index(drop=True)


def select_split(frame: pd.DataFrame, path: Path, split: str, split_col: str) -> pd.DataFrame:
    """The rows of `frame` whose `split_col` is `split`; an absent column or an empty selection is an error
    (evaluating on zero rows, or silently on all of them, would report a number for the wrong data)."""
    if split_col not in frame.columns:
        raise click.BadParameter(
            f"{path}: no split column {split_col!r} to select {split!r} rows from; available columns: "
            f"{list(frame.columns)}. Name it with --split-col, or drop --split to use every row"
        )
    values = frame[split_col].astype(str).str.strip()
    if not (values == split).any():
        found = sorted(values.unique())[:10]
        raise click.BadParameter(
            f"{path}: no row has {split_col} = {split!r}; values present: {found}. Pick one of those with --split"
        )
    return frame[values == split]


def check_labels(values: pd.Series, labels: Sequence[str], path: Path, task: str) -> None:
    """Raise a helpful error if any label is not one of `labels`."""
    unknown = sorted(set(values) - set(labels))
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        raise click.BadParameter(
            f"{path}: {len(unknown)} unknown {task} label(s): {shown}. Labels must be names, one of: "
            f"{', '.join(labels)}. Rename them in the file or point --label-col at the right column"
        )


def stratified_split(frame: pd.DataFrame, fraction: float, seed: int, task: str) -> Split:
    """Seeded split stratified by label; classes too small to stratify fall back to a plain random split."""
    if fraction <= 0:
        return Split(task, frame, frame.iloc[:0])
    counts = frame["label"].value_counts()
    n_val = max(1, round(len(frame) * fraction))
    stratify = frame["label"] if counts.min() >= 2 and n_val >= len(counts) else None
    train_idx, val_idx = train_test_split(np.arange(len(frame)), test_size=n_val, random_state=seed, stratify=stratify)
    return Split(task, frame.iloc[np.sort(train_idx)], frame.iloc[np.sort(val_idx)])


def export_split(split: Split, out_dir: Path) -> dict[str, str]:
    """Write train/validation CSVs of one task (for `finmon evaluate`); return their sha256 fingerprints."""
    out_dir.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for part in ("train", "validation"):
        path = out_dir / f"{split.task}_{part}.csv"
        getattr(split, part).to_csv(path, index=False)
        hashes[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return hashes


def fingerprint(frame: pd.DataFrame) -> str:
    """Order-independent content hash of (text, label) rows (all label columns of a two-label file), recorded in
    metrics.json."""
    labels = frame[label_columns(frame)].astype(str).agg("|".join, axis=1) if len(frame) else frame["text"]
    rows = sorted(frame["text"] + "\x1f" + labels)
    return hashlib.sha256("\x1e".join(rows).encode()).hexdigest()[:16]


def label_columns(frame: pd.DataFrame) -> list[str]:
    """The gold label column(s) of a split frame: `label`, or label_topic and label_sentiment of a news file."""
    return [c for c in ("label", "label_topic", "label_sentiment") if c in frame.columns]


def load_two_labelled(path: Path, cols: dict[str, str], topics: Sequence[str], split_col: str,
                      name: str = "news") -> Split:
    """A file labelled for both heads with its own train/validation split column (the project's news set):
    `cols` maps text/sentiment/topic to column names. Rows of other splits (e.g. test) are left out."""
    from monitor.classify.base import SENTIMENT_LABELS

    frame = read_table(path)
    missing = [c for c in (*cols.values(), split_col) if c not in frame.columns]
    if missing:
        raise click.BadParameter(f"{path}: missing column(s) {missing}; available columns: {list(frame.columns)}. "
                                 "Name them with the --news-*-col options")
    out = pd.DataFrame({
        "text": frame[cols["text"]].fillna("").astype(str),
        "label_sentiment": frame[cols["sentiment"]].astype(str).str.strip(),
        "label_topic": frame[cols["topic"]].astype(str).str.strip(),
    })
    check_labels(out["label_sentiment"], SENTIMENT_LABELS, path, "sentiment")
    check_labels(out["label_topic"], topics, path, "topic")
    part = frame[split_col].astype(str).str.strip()
    if not (part == "train").any():
        raise click.BadParameter(f"{path}: no row has {split_col} = 'train' (values: {sorted(part.unique())[:10]});"
                                 " mark the rows to train on with train, held-out rows with validation")
    return Split(name, out[part == "train"].reset_index(drop=True),
                 out[part == "validation"].reset_index(drop=True), file=path)


def other_validation_rows(model_dir: Path, splits: Sequence[Split]) -> list[str]:
    """Tasks whose validation rows, as recorded in `model_dir`/metrics.json, are not this run's (all of them
    when the model has no metrics.json): a model that trained on this run's validation rows would leak."""
    metrics_file = model_dir / "metrics.json"
    recorded = json.loads(metrics_file.read_text())["data"] if metrics_file.is_file() else {}
    return [
        sp.task
        for sp in splits
        if recorded.get(sp.task, {}).get("fingerprints", {}).get("validation") != fingerprint(sp.validation)
    ]
