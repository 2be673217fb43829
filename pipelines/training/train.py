"""`finmon train`: fine-tune one multi-task (topic + sentiment) model on labelled news.

Structured like transformers' run_classification.py: three argument dataclasses (args.py) whose field help is
the CLI documentation, label maps saved with the checkpoint and metrics.json next to the model; `run` is a short
sequence of steps. The shipped default model is reproduced by (paths relative to the repository root):

    finmon train --sentiment-data ../shared/data/tfns/sent_train.csv \\
        --topic-data ../shared/data/tfn_topic/topic_train.csv \\
        --topic-labels ../shared/data/tfn_topic/topic_labels.csv \\
        --output-dir monitor/models/finmon-minilm --export-split ../finmon-split --overwrite

    finmon evaluate --task topic --data ../finmon-split/topic_validation.csv
    finmon evaluate --task sentiment --data ../finmon-split/sentiment_validation.csv

All other settings are the defaults in args.py (the shipped run added --threads 2 and took 56 min on 2 CPU cores).
The validation split is carved from the training files (stratified by label, seed 42), never trained on, and
written by --export-split for `finmon evaluate`.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd

from pipelines.options import dataclass_options, from_options
from pipelines.training.args import DataArguments, ModelArguments, TrainingArguments
from pipelines.training.data import (
    Split,
    export_split,
    fingerprint,
    load_labelled,
    load_two_labelled,
    read_topic_labels,
    stratified_split,
)

log = logging.getLogger(__name__)


def set_seed(seed: int) -> None:
    """Seed every RNG the run uses."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def prepare_output(args: TrainingArguments) -> None:
    """Create the output directory, refusing to clobber an existing model unless --overwrite."""
    out = args.output_dir
    if out.exists() and any(out.iterdir()):
        if not args.overwrite:
            raise click.UsageError(f"output directory {out} is not empty; pass --overwrite or choose another")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def load_splits(data: DataArguments, seed: int) -> tuple[list[Split], list[str]]:
    """Read the labelled files, check labels and carve the held-out validation rows."""
    from monitor.classify.base import SENTIMENT_LABELS

    splits, topics = [], []
    if data.topic_data is not None:
        topics = read_topic_labels(data.topic_labels) if data.topic_labels else _labels_from(data)
        frame = load_labelled(data.topic_data, data.topic_text_col, data.topic_label_col, topics, "topic")
        splits.append(stratified_split(frame, data.validation_fraction, seed, "topic"))
    if data.sentiment_data is not None:
        frame = load_labelled(
            data.sentiment_data, data.sentiment_text_col, data.sentiment_label_col, SENTIMENT_LABELS, "sentiment"
        )
        splits.append(stratified_split(frame, data.validation_fraction, seed, "sentiment"))
    if data.news_data:
        topics = topics or _topics_fallback(data)
        cols = {"text": data.news_text_col, "sentiment": data.news_sentiment_col, "topic": data.news_topic_col}
        for path in data.news_data:
            news = load_two_labelled(path, cols, topics, data.news_split_col, domain_name(path))
            news.repeat = data.news_repeat
            splits.append(news)
        names = [sp.task for sp in splits]
        if len(set(names)) < len(names):
            raise click.BadParameter(f"two data files give the same domain name ({names}); rename one of the files")
    if data.max_train_samples:
        for sp in splits:
            sp.train = sp.train.sample(min(len(sp.train), data.max_train_samples), random_state=seed)
    return splits, topics or _topics_fallback(data)


def domain_name(path: Path) -> str:
    """How a two-label file's rows are named in metrics.json: its file name, lower case, without a `finmon_`
    prefix (data/news/finmon_news_zh.csv -> news_zh)."""
    return re.sub(r"\W+", "_", path.stem.lower()).removeprefix("finmon_").strip("_") or "news"


def _labels_from(data: DataArguments) -> list[str]:
    from pipelines.training.data import read_table

    assert data.topic_data is not None  # noqa: S101  (only called when topic data is given)
    frame = read_table(data.topic_data)
    if data.topic_label_col not in frame.columns:
        raise click.BadParameter(f"{data.topic_data}: no column {data.topic_label_col!r}; set --topic-label-col")
    return sorted(frame[data.topic_label_col].astype(str).str.strip().unique())


def _topics_fallback(data: DataArguments) -> list[str]:
    """Sentiment-only training still needs a topic head; without labels it has one 'unknown' class."""
    return read_topic_labels(data.topic_labels) if data.topic_labels else ["unknown"]


def build_model(margs: ModelArguments, topics: list[str]) -> tuple[Any, Any, Any]:
    """Base encoder + LoRA adapter + fresh heads, with the tokenizer and the config to save."""
    from monitor.classify.base import SENTIMENT_LABELS
    from monitor.classify.model import (
        ModelConfig,
        MultiTaskModel,
        attach_lora,
        freeze_embeddings,
        load_encoder,
        load_tokenizer,
    )

    encoder = load_encoder(margs.base_model)
    hidden = int(getattr(encoder.config, "hidden_size"))  # noqa: B009  (config is typed loosely)
    if margs.lora_r > 0:
        encoder = attach_lora(encoder, margs.lora_r, margs.lora_alpha, margs.lora_dropout)
    else:
        encoder = freeze_embeddings(encoder, margs.freeze_layers)
    model = MultiTaskModel(encoder, hidden, len(topics), len(SENTIMENT_LABELS), dropout=margs.head_dropout)
    config = ModelConfig(
        name=margs.name,
        base_model=margs.base_model,
        topic_labels=list(topics),
        max_length=margs.max_length,
        hidden_size=hidden,
    )
    return model, load_tokenizer(None, margs.base_model), config


def targets(column: Any, labels: list[str]) -> np.ndarray:
    """Label names to ids; missing names (no label for this head) become IGNORE."""
    from pipelines.training.trainer import IGNORE

    ids = column.map({name: i for i, name in enumerate(labels)})
    return ids.fillna(IGNORE).to_numpy(dtype=np.int64)


def encode_training_rows(splits: list[Split], tokenizer: Any, config: Any,
                         soft: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> Any:
    """Tokenise all training rows; each row gets its own task's target, and for the other head a teacher's
    pseudo label where there is one, else IGNORE."""
    from pipelines.training.trainer import IGNORE, TrainSet

    ids: list[list[int]] = []
    topic_t, sent_t = [], []
    soft_t: list[np.ndarray] = []
    soft_s: list[np.ndarray] = []
    for sp in splits:
        rows = pd.concat([sp.train] * sp.repeat, ignore_index=True) if sp.repeat > 1 else sp.train
        if soft is not None:
            soft_t.append(np.concatenate([soft[sp.task][0]] * sp.repeat))
            soft_s.append(np.concatenate([soft[sp.task][1]] * sp.repeat))
        per_task = {}
        for task, labels in (("topic", config.topic_labels), ("sentiment", config.sentiment_labels)):
            column = target_column(sp, task)
            present = column in rows.columns
            per_task[task] = targets(rows[column], labels) if present else np.full(len(rows), IGNORE)
        topic_t.append(per_task["topic"])
        sent_t.append(per_task["sentiment"])
        enc = tokenizer(
            rows["text"].tolist(),
            truncation=True,
            max_length=config.max_length,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        ids.extend(enc["input_ids"])
    return TrainSet(ids, np.concatenate(topic_t), np.concatenate(sent_t),
                    np.concatenate(soft_t) if soft_t else None, np.concatenate(soft_s) if soft_s else None)


def soft_labels(data: DataArguments, splits: list[Split], topics: list[str], device: str
                ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, Any]]:
    """The teacher's softened probabilities of the training rows, from the teacher or from a saved file."""
    from pipelines.training.distill import load_soft_labels, save_soft_labels, softened_record, teacher_logits

    if data.soft_labels is not None:
        logits, teacher = load_soft_labels(data.soft_labels, splits, topics)
    else:
        assert data.soft_label_model is not None  # noqa: S101  (the caller checked one of the two is set)
        logits, teacher = teacher_logits(splits, data.soft_label_model, topics, device)
        if data.save_soft_labels is not None:
            save_soft_labels(data.save_soft_labels, splits, logits, teacher, topics)
    soft, record = softened_record(splits, logits, data.soft_label_temperature, teacher)
    record["weight"] = data.soft_label_weight
    if data.soft_labels is not None:
        record["file"] = str(data.soft_labels)
    return soft, record


def target_column(sp: Split, task: str) -> str:
    """Which column of `sp`'s training rows holds the target of head `task`: the file's own label, a second gold
    label of a two-label file, or else a teacher's pseudo label."""
    from pipelines.training.pseudo import pseudo_column

    if task == sp.task:
        return "label"
    return f"label_{task}" if f"label_{task}" in sp.train.columns else pseudo_column(task)


def validation_sets(splits: list[Split]) -> list[Any]:
    """One ValSet per head and held-out file; a two-label file's are named `<file task>_<head>` (news_topic)."""
    from pipelines.training.trainer import ValSet

    out = []
    for sp in splits:
        if not len(sp.validation):
            continue
        if "label" in sp.validation.columns:
            out.append(ValSet(sp.task, sp.validation["text"].tolist(), sp.validation["label"].tolist()))
            continue
        for head in ("sentiment", "topic"):
            out.append(ValSet(head, sp.validation["text"].tolist(), sp.validation[f"label_{head}"].tolist(),
                              name=f"{sp.task}_{head}"))
    return out


def make_trainer(model: Any, tokenizer: Any, config: Any, targs: TrainingArguments, train_set: Any,
                 data: DataArguments | None = None) -> Any:
    """The Trainer with its device, class weights and TensorBoard writer."""
    from monitor.classify.engine import select_device
    from pipelines.training.trainer import Schedule, Trainer, class_weights

    fields = Schedule.__dataclass_fields__
    values = {**asdict(targs), **(asdict(data) if data is not None else {})}
    schedule = Schedule(**{k: v for k, v in values.items() if k in fields})
    weights = (
        class_weights(train_set.topic, len(config.topic_labels), targs.topic_class_weights),
        class_weights(train_set.sentiment, len(config.sentiment_labels), targs.sentiment_class_weights),
    )
    writer = None
    if targs.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(targs.output_dir / "runs"))
    return Trainer(model, tokenizer, config, schedule, select_device(targs.device), weights, writer)


def run(data: DataArguments, margs: ModelArguments, targs: TrainingArguments) -> dict[str, Any]:
    """Every step of a training run; returns the metrics written to metrics.json."""
    from pipelines.training.finalize import finalize

    started = datetime.now(UTC)
    if targs.threads:
        import torch

        torch.set_num_threads(targs.threads)
    set_seed(targs.seed)
    prepare_output(targs)
    splits, topics = load_splits(data, targs.seed if data.split_seed is None else data.split_seed)
    split_files = {sp.task: export_split(sp, data.export_split) for sp in splits} if data.export_split else {}
    pseudo = None
    if data.pseudo_label_model:
        from pipelines.training.pseudo import add_pseudo_labels

        threshold = data.pseudo_label_threshold
        pseudo = add_pseudo_labels(splits, data.pseudo_label_model, threshold, topics, targs.device)
    soft, distilled = None, None
    if data.soft_label_model or data.soft_labels:
        soft, distilled = soft_labels(data, splits, topics, targs.device)
    model, tokenizer, config = build_model(margs, topics)
    if targs.average_with is not None:
        from pipelines.training.soup import check_compatible

        check_compatible(targs.average_with, config, splits, margs.lora_r)  # before training, not after
    train_set = encode_training_rows(splits, tokenizer, config, soft)
    val = validation_sets(splits)
    trainer = make_trainer(model, tokenizer, config, targs, train_set, data)
    log.info(
        "training on %d rows (%s), validating on %s",
        len(train_set.ids),
        {sp.task: len(sp.train) for sp in splits},
        {v.key: len(v.texts) for v in val},
    )
    history = trainer.fit(train_set, val)
    soup = None
    if targs.average_with is not None:
        from pipelines.training.soup import average_with

        soup = average_with(trainer, val, targs.average_with)
    context = {
        "data": data,
        "model": margs,
        "training": targs,
        "splits": splits,
        "split_files": split_files,
        "pseudo_labels": pseudo,
        "soft_labels": distilled,
        "weight_average": soup,
        "history": history,
        "started": started,
        "fingerprints": {
            sp.task: {"train": fingerprint(sp.train), "validation": fingerprint(sp.validation)} for sp in splits
        },
    }
    return finalize(trainer.model, tokenizer, config, val, targs.output_dir, context)


@click.command("train")
@dataclass_options(DataArguments, ModelArguments, TrainingArguments)
def command(**options: Any) -> None:
    """Fine-tune a topic + sentiment model (shared encoder, LoRA adapter, two heads) and write a model dir."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    data = from_options(DataArguments, options)
    margs = from_options(ModelArguments, options)
    targs = from_options(TrainingArguments, options)
    metrics = run(data, margs, targs)
    summary = {task: {k: round(v[k], 4) for k in ("accuracy", "macro_f1")} for task, v in metrics["validation"].items()}
    click.echo(json.dumps({"output_dir": str(targs.output_dir), "version": metrics["version"], "validation": summary}))
