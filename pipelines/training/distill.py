"""Knowledge distillation (`finmon train --soft-label-model TEACHER`): the student also learns a teacher's
temperature-softened probabilities on every training row, for both heads.

Hard pseudo labels (pseudo.py) keep only the teacher's confident argmax on the head a file lacks; soft labels
carry its whole distribution (how close "neutral" came to "positive") on both heads of every row, which is how a
larger teacher (a finmon model fine-tuned from all-mpnet-base-v2, `finmon fetch-teacher`) passes on what it
knows. The loss is Hinton et al.'s: (1 - w) * the gold loss + w * T^2 * KL(teacher_T || student_T) per head,
with T the softening temperature and w `--soft-label-weight`. The teacher's own calibration temperature is not
used (T = 1 underneath the softening), so its soft labels do not depend on how it was calibrated.
"""

from __future__ import annotations

import logging
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


def teacher_probabilities(splits: list[Split], teacher: str, temperature: float, topics: list[str], device: str
                          ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, Any]]:
    """Per split (task name): the teacher's softened (topic, sentiment) probabilities of its training rows, in row
    order; and what to record in metrics.json."""
    from monitor.classify import load_classifier
    from monitor.classify.base import SENTIMENT_LABELS
    from monitor.classify.model import resolve_model_dir
    from pipelines.training.calibration import logits_in_chunks
    from pipelines.training.pseudo import warn_if_leaky

    engine = load_classifier(teacher, device=device)
    if list(engine.topic_labels) != list(topics) or tuple(engine.sentiment_labels) != SENTIMENT_LABELS:
        raise click.UsageError(
            f"--soft-label-model {teacher} has other labels than this run ({list(engine.topic_labels)[:3]}... vs "
            f"{topics[:3]}...): a teacher's distribution is only meaningful over the same classes; use one trained "
            "on the same --topic-labels"
        )
    warn_if_leaky(resolve_model_dir(teacher), splits)
    out = {}
    for sp in splits:
        topic_z, sent_z = logits_in_chunks(engine, sp.train["text"].tolist(), f"teacher soft labels ({sp.task})")
        out[sp.task] = (softened(topic_z, temperature), softened(sent_z, temperature))
    record = {"teacher": engine.version, "temperature": temperature,
              "rows": {sp.task: len(sp.train) for sp in splits}}
    log.info("soft labels from %s at T=%s: %s", engine.version, temperature, record["rows"])
    return out, record


def distill_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(teacher || softmax(student / T)), averaged over the rows (zero when the student matches)."""
    log_student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    return F.kl_div(log_student, teacher_probs, reduction="batchmean") * temperature**2
