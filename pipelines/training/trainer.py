"""The multi-task training loop: masked loss over two heads, AdamW with warm-up and decay, early stopping.

Each training row carries one label (topic *or* sentiment); the other target is -100 and that head's loss
ignores the row, so datasets that each label only one task train one shared encoder.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from monitor.classify.engine import Engine, collate
from monitor.classify.model import ModelConfig, MultiTaskModel
from pipelines.training.metrics import compute_metrics

log = logging.getLogger(__name__)
IGNORE = -100
LAYER_INDEX = re.compile(r"\.layer\.(\d+)\.")
# Group-by-length: shuffle, then sort within windows of this many batches, to cut padding but stay random.
LENGTH_GROUP_BATCHES = 50


@dataclass
class TrainSet:
    """Tokenised training rows with one target per head (IGNORE where the row has no such label)."""

    ids: list[list[int]]
    topic: np.ndarray
    sentiment: np.ndarray
    soft_topic: np.ndarray | None = None  # a teacher's softened probabilities per row (distill.py), or None
    soft_sentiment: np.ndarray | None = None

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.ids), dtype=np.int64, count=len(self.ids))


@dataclass
class ValSet:
    """Held-out texts and gold label names of one task."""

    task: str
    texts: list[str]
    labels: list[str]
    name: str = ""  # how results are reported, when one head has several held-out sets (news_sentiment)

    @property
    def key(self) -> str:
        return self.name or self.task


@dataclass
class Schedule:
    """Optimisation settings the loop needs (a subset of the training arguments)."""

    epochs: int
    batch_size: int
    learning_rate: float
    head_learning_rate: float
    weight_decay: float
    warmup_ratio: float
    scheduler: str
    max_grad_norm: float
    label_smoothing: float
    topic_loss_weight: float
    sentiment_loss_weight: float
    early_stopping_patience: int
    evals_per_epoch: int
    seed: int
    time_budget_minutes: float | None = None
    layer_lr_decay: float = 1.0
    ema_decay: float = 0.0
    soft_label_weight: float = 0.5
    soft_label_temperature: float = 2.0


@dataclass
class History:
    """What happened during training: one entry per evaluation, and the best one."""

    evaluations: list[dict[str, Any]] = field(default_factory=list)
    best_score: float = -math.inf
    best_index: int = -1
    seconds: float = 0.0
    steps: int = 0
    stopped_early_for_time: bool = False


def class_weights(targets: np.ndarray, n_classes: int, mode: str) -> torch.Tensor | None:
    """Per-class loss weights: none, sqrt (inverse square-root frequency) or balanced (inverse frequency)."""
    if mode == "none":
        return None
    counts = np.bincount(targets[targets != IGNORE], minlength=n_classes).astype(np.float64)
    weights = counts.sum() / (n_classes * np.clip(counts, 1, None))
    weights = np.sqrt(weights) if mode == "sqrt" else weights
    weights = weights * n_classes / weights.sum()  # mean weight 1 keeps the loss scale comparable
    return torch.tensor(weights, dtype=torch.float32)


def copy_weights(params: dict[str, nn.Parameter], state: dict[str, torch.Tensor]) -> None:
    """Copy `state` tensors into the same-named parameters, in place (no autograd)."""
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value.to(params[name].device))


def length_grouped_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Random batches of similar-length rows."""
    perm = rng.permutation(len(lengths))
    window = batch_size * LENGTH_GROUP_BATCHES
    batches: list[np.ndarray] = []
    for start in range(0, len(perm), window):
        chunk = perm[start : start + window]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def masked_ce(
    logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor | None, smoothing: float
) -> torch.Tensor:
    """Cross-entropy over the rows that have this head's label; zero (with a graph) when none do."""
    valid = targets != IGNORE
    if not bool(valid.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[valid].float(), targets[valid], weight=weight, label_smoothing=smoothing)


class Trainer:
    """Runs the epochs, evaluates on the held-out split and keeps the best trainable state."""

    def __init__(
        self,
        model: MultiTaskModel,
        tokenizer: Any,
        config: ModelConfig,
        schedule: Schedule,
        device: torch.device,
        weights: tuple[torch.Tensor | None, torch.Tensor | None],
        writer: Any = None,
    ) -> None:
        self.model, self.tokenizer, self.config, self.s = model.to(device), tokenizer, config, schedule
        self.device, self.writer = device, writer
        self.topic_w, self.sent_w = (w.to(device) if w is not None else None for w in weights)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.rng = np.random.default_rng(schedule.seed)
        self.autocast = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
        self.history = History()
        self._started = time.perf_counter()
        self._best_state: dict[str, torch.Tensor] = {}
        self._ema: dict[str, torch.Tensor] = {}

    def trainable(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}

    def _optimizer(self) -> torch.optim.Optimizer:
        heads = [p for n, p in self.trainable().items() if n.startswith(("topic.", "sentiment."))]
        encoder = {n: p for n, p in self.trainable().items() if not n.startswith(("topic.", "sentiment."))}
        groups = [*self.encoder_groups(encoder), {"params": heads, "lr": self.s.head_learning_rate}]
        return torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=self.s.weight_decay)

    def encoder_groups(self, params: dict[str, nn.Parameter]) -> list[dict[str, Any]]:
        """One parameter group per encoder layer when `layer_lr_decay` < 1: the top layer trains at the full
        rate and each layer below at `decay` times the one above, so the general-purpose lower layers move
        least (layer-wise learning-rate decay). Parameters outside the numbered layers count as below layer 0."""
        def depth(name: str) -> int:
            found = LAYER_INDEX.search(name)
            return int(found.group(1)) + 1 if found else 0

        depths = {n: depth(n) for n in params}
        top = max(depths.values(), default=0)
        by_depth: dict[int, list[nn.Parameter]] = {}
        for name, param in params.items():
            by_depth.setdefault(depths[name] if self.s.layer_lr_decay < 1 else top, []).append(param)
        return [
            {"params": ps, "lr": self.s.learning_rate * self.s.layer_lr_decay ** (top - d)}
            for d, ps in sorted(by_depth.items(), reverse=True)  # top first: the logged lr is group 0
        ]

    def _update_ema(self) -> None:
        """Exponential moving average of the trainable weights (a cheap checkpoint average); the decay ramps up
        over the first steps so early weights don't dominate."""
        if self.s.ema_decay <= 0:
            return
        decay = min(self.s.ema_decay, (1 + self.history.steps) / (10 + self.history.steps))
        with torch.no_grad():
            for name, param in self.trainable().items():
                if name in self._ema:
                    self._ema[name].lerp_(param.detach(), 1 - decay)
                else:
                    self._ema[name] = param.detach().clone()

    @contextlib.contextmanager
    def _evaluated_weights(self) -> Iterator[None]:
        """Swap the averaged weights in for evaluation (and best-state snapshots), then swap the raw ones back."""
        if not self._ema:
            yield
            return
        params = self.trainable()
        raw = {n: p.detach().clone() for n, p in params.items()}
        copy_weights(params, self._ema)
        try:
            yield
        finally:
            copy_weights(params, raw)

    def fit(self, data: TrainSet, val: Sequence[ValSet]) -> History:
        """Train for up to `epochs`, evaluating `evals_per_epoch` times per epoch; restore the best state."""
        from transformers import get_scheduler

        steps_per_epoch = math.ceil(len(data.ids) / self.s.batch_size)
        total = steps_per_epoch * self.s.epochs
        optimizer = self._optimizer()
        sched = get_scheduler(
            self.s.scheduler, optimizer, num_warmup_steps=int(total * self.s.warmup_ratio), num_training_steps=total
        )
        eval_at = set(np.linspace(0, steps_per_epoch, self.s.evals_per_epoch + 1, dtype=int)[1:].tolist())
        self._started = time.perf_counter()
        for epoch in range(1, self.s.epochs + 1):
            if self._run_epoch(epoch, data, val, optimizer, sched, eval_at):
                log.info("stopped in epoch %d: early stopping or time budget", epoch)
                break
        self.history.seconds = time.perf_counter() - self._started
        self.restore_best()
        return self.history

    def _run_epoch(
        self,
        epoch: int,
        data: TrainSet,
        val: Sequence[ValSet],
        optimizer: torch.optim.Optimizer,
        sched: Any,
        eval_at: set[int],
    ) -> bool:
        """One pass over the data; returns True when early stopping triggers."""
        batches = length_grouped_batches(data.lengths, self.s.batch_size, self.rng)
        bar = tqdm(batches, desc=f"epoch {epoch}/{self.s.epochs}", unit="batch", dynamic_ncols=True)
        for i, index in enumerate(bar, start=1):
            loss = self._step(data, index, optimizer, sched)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{sched.get_last_lr()[0]:.2e}")
            if i in eval_at and val and self._evaluate_and_check(epoch, i / len(batches), val):
                return True
            if self._out_of_time():
                # Keep the last weights in the running if they beat the best evaluation so far.
                self.history.stopped_early_for_time = True
                if val:
                    self._evaluate_and_check(epoch, i / len(batches), val)
                return True
        return False

    def _out_of_time(self) -> bool:
        budget = self.s.time_budget_minutes
        return budget is not None and time.perf_counter() - self._started > budget * 60

    def _step(self, data: TrainSet, index: np.ndarray, optimizer: torch.optim.Optimizer, sched: Any) -> float:
        self.model.train()
        batch = collate(data.ids, index, self.pad_id, pin=self.device.type == "cuda")
        ids = batch.input_ids.to(self.device, non_blocking=True)
        mask = batch.attention_mask.to(self.device, non_blocking=True)
        t_target = torch.from_numpy(data.topic[index]).to(self.device, non_blocking=True)
        s_target = torch.from_numpy(data.sentiment[index]).to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=self.autocast or torch.float32, enabled=self.autocast is not None):
            topic_logits, sent_logits = self.model(ids, mask)
        loss = self.s.topic_loss_weight * masked_ce(topic_logits, t_target, self.topic_w, self.s.label_smoothing)
        loss = loss + self.s.sentiment_loss_weight * masked_ce(
            sent_logits, s_target, self.sent_w, self.s.label_smoothing
        )
        if data.soft_topic is not None and data.soft_sentiment is not None:
            loss = (1 - self.s.soft_label_weight) * loss + self.s.soft_label_weight * self._distill(
                data, index, topic_logits, sent_logits)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.trainable().values(), self.s.max_grad_norm)
        optimizer.step()
        sched.step()
        self.history.steps += 1
        self._update_ema()
        if self.writer is not None and self.history.steps % 10 == 0:
            self.writer.add_scalar("train/loss", loss.item(), self.history.steps)
            self.writer.add_scalar("train/lr", sched.get_last_lr()[0], self.history.steps)
        return float(loss.item())

    def _distill(self, data: TrainSet, index: np.ndarray, topic_logits: torch.Tensor,
                 sent_logits: torch.Tensor) -> torch.Tensor:
        """The distillation term of both heads, weighted like their gold losses."""
        from pipelines.training.distill import distill_loss

        assert data.soft_topic is not None and data.soft_sentiment is not None  # noqa: S101  (checked by caller)
        t = self.s.soft_label_temperature
        soft_t = torch.from_numpy(data.soft_topic[index]).to(self.device)
        soft_s = torch.from_numpy(data.soft_sentiment[index]).to(self.device)
        return (self.s.topic_loss_weight * distill_loss(topic_logits, soft_t, t)
                + self.s.sentiment_loss_weight * distill_loss(sent_logits, soft_s, t))

    def evaluate(self, val: Sequence[ValSet]) -> dict[str, dict[str, Any]]:
        """Metrics of each head on its held-out split, using the inference engine on the current weights."""
        self.model.eval()
        engine = Engine(self.model, self.tokenizer, self.config, version="training", device=self.device)
        results = {}
        for vs in val:
            topic_p, sent_p = engine.predict_proba(vs.texts)
            names = self.config.topic_labels if vs.task == "topic" else self.config.sentiment_labels
            probs = topic_p if vs.task == "topic" else sent_p
            results[vs.key] = compute_metrics(vs.labels, [names[i] for i in probs.argmax(1)], names)
        return results

    @staticmethod
    def score(results: dict[str, dict[str, Any]]) -> float:
        """Selection score: mean macro-F1 over the heads, so the small topic classes count."""
        return float(np.mean([r["macro_f1"] for r in results.values()]))

    def _evaluate_and_check(self, epoch: int, fraction: float, val: Sequence[ValSet]) -> bool:
        with self._evaluated_weights():
            return self._score_and_keep(epoch, fraction, val)

    def _score_and_keep(self, epoch: int, fraction: float, val: Sequence[ValSet]) -> bool:
        results = self.evaluate(val)
        score = self.score(results)
        entry: dict[str, Any] = {"epoch": round(epoch - 1 + fraction, 3), "step": self.history.steps, "score": score}
        for task, r in results.items():
            entry.update({f"{task}_accuracy": r["accuracy"], f"{task}_macro_f1": r["macro_f1"]})
        self.history.evaluations.append(entry)
        self._log_eval(entry)
        if score > self.history.best_score:
            self.history.best_score, self.history.best_index = score, len(self.history.evaluations) - 1
            self._best_state = {n: p.detach().clone() for n, p in self.trainable().items()}
        stale = len(self.history.evaluations) - 1 - self.history.best_index
        return stale >= self.s.early_stopping_patience > 0

    def _log_eval(self, entry: dict[str, Any]) -> None:
        tqdm.write("eval " + " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in entry.items()))
        if self.writer is not None:
            for key, value in entry.items():
                if key not in ("epoch", "step"):
                    self.writer.add_scalar(f"val/{key}", value, self.history.steps)

    def restore_best(self) -> None:
        """Load the best evaluated trainable weights back; without evaluations, the weight average if kept."""
        copy_weights(self.trainable(), self._best_state or self._ema)
