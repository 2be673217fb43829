"""Self-training: label each training row for the task its file does not cover, with a teacher model.

The sentiment file has no topics and the topic file has no sentiment, so every row trains one head. A
teacher (usually a finmon model trained on the same files and split) labels the other task where it is
confident; the student then sees ~2.5x more sentiment rows, all in-domain. Only training rows are labelled:
the validation rows stay gold-only, and a teacher whose recorded validation split differs from this run's is
reported, because it may have trained on this run's validation rows.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from pipelines.training.data import Split, other_validation_rows

log = logging.getLogger(__name__)


def pseudo_column(task: str) -> str:
    """Column of a Split's train frame holding the teacher's label for `task` (None = not confident)."""
    return f"pseudo_{task}"


def check_labels(engine: Any, topics: list[str]) -> None:
    """The teacher must speak the student's label sets, or its labels would be mapped wrongly."""
    if list(engine.topic_labels) != list(topics):
        raise click.UsageError(
            "--pseudo-label-model has other topic labels than --topic-labels "
            f"({list(engine.topic_labels)[:3]}... vs {topics[:3]}...): use a teacher trained on the same topics"
        )


def warn_if_leaky(teacher_dir: Path, splits: list[Split]) -> None:
    """Log when the teacher's recorded validation rows are not this run's (it may have trained on them)."""
    for task in other_validation_rows(teacher_dir, splits):
        log.warning(
            "teacher %s was not validated on this run's %s validation rows: if it trained on them, this "
            "run's validation metrics are optimistic (train the teacher with the same files, seed and "
            "--validation-fraction)",
            teacher_dir,
            task,
        )


def add_pseudo_labels(
    splits: list[Split], teacher: str, threshold: float, topics: list[str], device: str
) -> dict[str, dict[str, int]]:
    """Add the teacher's confident labels for the other task to each split's training rows; return counts."""
    from monitor.classify import load_classifier
    from monitor.classify.model import resolve_model_dir
    from pipelines.training.calibration import heads_in_chunks

    engine = load_classifier(teacher, device=device)
    # The threshold is on the teacher's plain softmax (T = 1): that is what it was tuned on (README recipe), and a
    # calibrated teacher (T ~ 3 for sentiment) would pass a third fewer rows at 0.9 and no longer reproduce it.
    engine.temperatures = (1.0, 1.0)
    check_labels(engine, topics)
    warn_if_leaky(resolve_model_dir(teacher), splits)
    counts: dict[str, dict[str, int]] = {}
    for sp in splits:
        if sp.task not in ("topic", "sentiment"):
            continue  # a file with both gold labels needs no teacher
        other = "sentiment" if sp.task == "topic" else "topic"
        topic_p, sent_p = heads_in_chunks(engine.predict_proba, sp.train["text"].tolist(), f"teacher labels {other}")
        probs = sent_p if other == "sentiment" else topic_p
        names = list(engine.sentiment_labels if other == "sentiment" else engine.topic_labels)
        best = probs.argmax(axis=1)
        confident = probs.max(axis=1) >= threshold
        sp.train = sp.train.copy()
        sp.train[pseudo_column(other)] = [names[b] if ok else None for b, ok in zip(best, confident, strict=True)]
        counts[f"{sp.task}_rows_with_{other}"] = {"labelled": int(confident.sum()), "of": len(sp.train)}
    log.info("pseudo labels (threshold %.2f): %s", threshold, counts)
    return counts
