"""Knowledge distillation (`finmon train --soft-label-model TEACHER`): the student also learns a teacher's
temperature-softened probabilities on every training row, for both heads.

Hard pseudo labels (pseudo.py) keep only the teacher's confident argmax on the head a file lacks; soft labels
carry its whole distribution (how close "neutral" came to "positive") on both heads of every row, which is how a
larger teacher (a finmon model fine-tuned from all-mpnet-base-v2, `finmon fetch-teacher`) passes on what it
knows. The loss is Hinton et al.'s: (1 - w) * the gold loss + w * T^2 * KL(teacher_T || student_T) per head,
with T the softening temperature and w `--soft-label-weight`. The teacher's own calibration temperature is not
used (T = 1 underneath the softening), so its soft labels do not depend on how it was calibrated.

A large teacher is slow on a CPU (all-mpnet-base-v2: ~27 min for the 25k training rows on 2 cores), so its
output can be kept: `--save-soft-labels FILE` writes the teacher's logits of every training row, keyed by the
SHA-1 of the text, and `--soft-labels FILE` trains a student from that file without loading the teacher (same
files and split seed: a row the file lacks is refused rather than left without a teacher). The exception is a
whole training file the soft-label file has none of (a news set added after the teacher ran): its rows learn from
their gold labels only, and metrics.json records them as `without_teacher`; a file that covers some of a training
file's rows but not all was written for another split, and is refused. The file stores logits at T = 1, so any
`--soft-label-temperature` works with it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch
import torch.nn.functional as F

from pipelines.training.data import Split

log = logging.getLogger(__name__)


def softened(logits: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T), row-wise, as float32."""
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


Logits = dict[str, tuple[np.ndarray, np.ndarray]]  # per split (task name): (topic, sentiment) logits of its rows
FORMAT = "finmon-soft-labels"


def teacher_logits(splits: list[Split], teacher: str, topics: list[str], device: str) -> tuple[Logits, str]:
    """Per split: the teacher's raw (topic, sentiment) logits of its training rows, in row order; and its version."""
    from monitor.classify import load_classifier
    from monitor.classify.model import resolve_model_dir
    from pipelines.training.calibration import logits_in_chunks
    from pipelines.training.pseudo import warn_if_leaky

    engine = load_classifier(teacher, device=device)
    _check_labels(f"--soft-label-model {teacher}", engine.topic_labels, engine.sentiment_labels, topics)
    warn_if_leaky(resolve_model_dir(teacher), splits)
    out = {sp.task: logits_in_chunks(engine, sp.train["text"].tolist(), f"teacher soft labels ({sp.task})")
           for sp in splits}
    return out, engine.version


def _check_labels(source: str, topic_labels: Any, sentiment_labels: Any, topics: list[str]) -> None:
    """A teacher's distribution is only meaningful over this run's classes, in this run's order."""
    from monitor.classify.base import SENTIMENT_LABELS

    if list(topic_labels) != list(topics) or list(sentiment_labels) != list(SENTIMENT_LABELS):
        raise click.UsageError(
            f"{source} has other labels than this run ({list(topic_labels)[:3]}... vs {topics[:3]}...): a "
            "teacher's distribution is only meaningful over the same classes; use one trained on the same "
            "--topic-labels"
        )


def softened_record(splits: list[Split], logits: Logits, temperature: float, teacher: str
                    ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, Any]]:
    """The softened probabilities per split (NaN for a split the teacher has no output for), and what to record
    in metrics.json."""
    out = {task: (softened(t, temperature), softened(s, temperature)) for task, (t, s) in logits.items()}
    widths = [head.shape[1] for head in next(iter(out.values()))]
    without = {sp.task: len(sp.train) for sp in splits if sp.task not in out}
    for task, n in without.items():  # NaN rows: no teacher for this file (distill_loss skips them)
        out[task] = (np.full((n, widths[0]), np.nan, np.float32), np.full((n, widths[1]), np.nan, np.float32))
    record: dict[str, Any] = {"teacher": teacher, "temperature": temperature,
                              "rows": {sp.task: len(sp.train) for sp in splits if sp.task not in without}}
    if without:
        record["without_teacher"] = without
        log.info("no teacher output for %s: those rows learn from their gold labels only", without)
    log.info("soft labels from %s at T=%s: %s", teacher, temperature, record["rows"])
    return out, record


def text_keys(texts: list[str]) -> np.ndarray:
    """SHA-1 of each text's UTF-8 bytes, as an (n, 20) uint8 array: rows are found by text, not by position."""
    digest = b"".join(hashlib.sha1(t.encode("utf-8", "surrogatepass")).digest() for t in texts)  # noqa: S324
    return np.frombuffer(digest, dtype=np.uint8).reshape(len(texts), 20)


def save_soft_labels(path: Path, splits: list[Split], logits: Logits, teacher: str, topics: list[str]) -> None:
    """Write the teacher's logits of every training row, keyed by text, with what produced them (.npz)."""
    from monitor.classify.base import SENTIMENT_LABELS

    texts = [text for sp in splits for text in sp.train["text"].tolist()]
    topic = np.concatenate([logits[sp.task][0] for sp in splits])
    sent = np.concatenate([logits[sp.task][1] for sp in splits])
    meta = {"format": FORMAT, "format_version": 1, "teacher": teacher, "rows": len(texts),
            "topic_labels": list(topics), "sentiment_labels": list(SENTIMENT_LABELS),
            "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:  # an open file: np.savez would append .npz to a name without it
        np.savez_compressed(fh, keys=text_keys(texts), topic_logits=_centred(topic), sentiment_logits=_centred(sent),
                            meta=np.array(json.dumps(meta)))
    log.info("teacher logits of %d training rows written to %s", len(texts), path)


def _centred(logits: np.ndarray) -> np.ndarray:
    """Shift each row's maximum to 0 (softmax is unchanged) so float16 keeps the differences that matter."""
    return (logits - logits.max(axis=1, keepdims=True)).clip(-60000).astype(np.float16)


def load_soft_labels(path: Path, splits: list[Split], topics: list[str]) -> tuple[Logits, str]:
    """Per split: the teacher logits of its training rows from a --save-soft-labels file, and the teacher's
    version; refuses other labels and rows the file does not have (other data or another split seed)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            keys, topic, sent, meta = f["keys"], f["topic_logits"], f["sentiment_logits"], json.loads(str(f["meta"]))
    except (OSError, KeyError, ValueError) as exc:
        raise click.UsageError(f"--soft-labels {path} is not a soft-label file ({exc}); write one with "
                               "--soft-label-model TEACHER --save-soft-labels FILE") from exc
    _check_labels(f"--soft-labels {path}", meta.get("topic_labels", []), meta.get("sentiment_labels", []), topics)
    index = {row.tobytes(): i for i, row in enumerate(keys)}
    out = {}
    for sp in splits:
        wanted = [index.get(row.tobytes(), -1) for row in text_keys(sp.train["text"].tolist())]
        missing = sum(1 for i in wanted if i < 0)
        if missing == len(wanted) and len(splits) > 1:
            continue  # a training file the teacher never saw: gold labels only (softened_record logs it)
        if missing:
            raise click.UsageError(
                f"--soft-labels {path} has no teacher output for {missing} of the {len(wanted)} {sp.task} training "
                f"rows: it was written for other data or another split (--split-seed/--seed, --validation-fraction); "
                "train on the same files and split, or write a new file with --soft-label-model TEACHER "
                "--save-soft-labels FILE")
        rows = np.asarray(wanted)
        out[sp.task] = (topic[rows].astype(np.float32), sent[rows].astype(np.float32))
    if not out:
        raise click.UsageError(f"--soft-labels {path} has no teacher output for any training row: it was written "
                               "for other data; write one for these files with --soft-label-model TEACHER "
                               "--save-soft-labels FILE")
    return out, str(meta["teacher"])


def distill_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(teacher || softmax(student / T)), averaged over the rows (zero when the student matches).

    Rows without a teacher (NaN probabilities: a training file the soft-label file does not cover) add nothing;
    the sum is still divided by all the rows, so a batch's distillation weight follows its teacher coverage."""
    log_student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    has_teacher = ~torch.isnan(teacher_probs[:, 0])
    kl = F.kl_div(log_student[has_teacher], teacher_probs[has_teacher], reduction="sum")
    return kl / max(len(teacher_probs), 1) * temperature**2
