"""Weight averaging ("model soup") of a finished run with an earlier finmon model.

Two full fine-tunes of the same base encoder, trained with different seeds on the same rows, can sit in one
basin of the loss; then the mean of their weights acts like an ensemble of the two at the cost of one model.
That is not guaranteed (the heads start from different random weights; with the README's regularised recipe two seeds'
mean scored lower than either), so the mean is kept only if it scores higher on the validation rows than the
run alone (a greedy soup), and it can never make a run worse on them. Both models must have been validated
on the same rows, or that comparison would reward the other model for rows it trained on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from pipelines.training.data import Split, other_validation_rows
from pipelines.training.trainer import copy_weights

log = logging.getLogger(__name__)


def check_compatible(other_dir: Path, config: Any, splits: list[Split], lora_r: int) -> None:
    """Refuse a partner that is not the same kind of model validated on the same rows."""
    from monitor.classify.model import ModelConfig

    if lora_r > 0:
        raise click.UsageError("--average-with needs a full fine-tune (--lora-r 0); LoRA adapters are not averaged")
    theirs = ModelConfig.load(other_dir)
    if theirs.adapter or theirs.base_model != config.base_model or theirs.topic_labels != config.topic_labels:
        raise click.UsageError(
            f"--average-with {other_dir}: it must be a full fine-tune of {config.base_model} with the same topic "
            f"labels (it has base {theirs.base_model}, adapter {theirs.adapter})"
        )
    mismatched = other_validation_rows(other_dir, splits)
    if mismatched:
        raise click.UsageError(
            f"--average-with {other_dir} was not validated on this run's {mismatched[0]} validation rows; train both "
            "on the same files with the same --split-seed and --validation-fraction"
        )


def average_with(trainer: Any, val: list[Any], other_dir: Path) -> dict[str, Any]:
    """Average the trainer's weights with `other_dir`'s (checked with `check_compatible` before training); keep
    the mean only if its validation score is higher."""
    from monitor.classify.model import load_model

    other = dict(load_model(other_dir)[0].named_parameters())
    own = trainer.trainable()
    single = {n: p.detach().clone() for n, p in own.items()}
    # The restored best evaluation is the run's own score; evaluate only if the run was never evaluated.
    evaluated = trainer.history.evaluations
    own_score = trainer.history.best_score if evaluated else trainer.score(trainer.evaluate(val))
    copy_weights(own, {n: (w + other[n].detach().to(w.device)) / 2 for n, w in single.items()})
    soup_score = trainer.score(trainer.evaluate(val))
    kept = soup_score > own_score
    if not kept:
        copy_weights(own, single)
    log.info("weight average with %s: %.4f vs this run alone %.4f -> %s", other_dir, soup_score, own_score,
             "kept" if kept else "discarded")
    return {"with": str(other_dir), "score_alone": own_score, "score_averaged": soup_score, "kept": kept}
