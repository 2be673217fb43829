"""`finmon evaluate`: score a finmon model on a labelled file for one head (sentiment or topic).

    finmon evaluate --task sentiment --data FILE [--model M] [--text-col text] [--label-col label] [--json]
    finmon evaluate --task topic --data data/news/finmon_news.csv --label-col topic --split validation

Labels are names (negative/neutral/positive; topic names as the model's finmon_config.json lists them,
which for the shipped model are those of topic_labels.csv). `--json` prints one object with n, accuracy,
macro_f1, weighted_f1, labels, per_class and confusion_matrix (rows = true label, columns = predicted).
`--split NAME` keeps only the rows whose split column (`--split-col`, default `split`) is NAME, for files that
carry a fixed train/validation split such as the project's news set.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import click

from pipelines.options import dataclass_options, from_options


@dataclass
class EvalArguments:
    """What to evaluate, on which data."""

    task: Literal["sentiment", "topic"] = field(metadata={"help": "Which head to evaluate."})
    data: Path = field(metadata={"help": "Labelled CSV, TSV, JSONL or Parquet file."})
    model: str | None = field(
        default=None, metadata={"help": "Model directory or shipped model name (default: the shipped finmon-minilm)."}
    )
    text_col: str = field(default="text", metadata={"help": "Column with the text."})
    label_col: str = field(default="label", metadata={"help": "Column with the label name."})
    split: str | None = field(
        default=None, metadata={"help": "Only rows whose split column has this value (e.g. validation)."}
    )
    split_col: str = field(default="split", metadata={"help": "Column that --split selects on."})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or cuda:N."})
    quantize: bool = field(default=False, metadata={"help": "Evaluate the dynamic int8 model (CPU)."})
    report_dir: Path | None = field(
        default=None, metadata={"help": "Also write the classification report and a confusion-matrix PNG here."}
    )


def evaluate(args: EvalArguments) -> dict[str, Any]:
    """Load the model and the data, predict, and return the metrics (plus model version and task)."""
    from monitor.classify.engine import load_classifier
    from monitor.classify.model import ModelNotFoundError
    from pipelines.training.data import load_labelled
    from pipelines.training.metrics import compute_metrics

    try:
        engine = load_classifier(args.model, device=args.device, quantize=args.quantize)
    except (ModelNotFoundError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--model/--device") from exc
    labels = engine.topic_labels if args.task == "topic" else engine.sentiment_labels
    frame = load_labelled(args.data, args.text_col, args.label_col, labels, args.task, args.split, args.split_col)
    preds = engine.predict(frame["text"].tolist())
    predicted = [p.topic if args.task == "topic" else p.sentiment for p in preds]
    metrics = compute_metrics(frame["label"].tolist(), predicted, labels)
    if args.report_dir is not None:
        _write_reports(args, frame["label"].tolist(), predicted, labels, metrics)
    return {**metrics, "task": args.task, "model": engine.version, "split": args.split}


def _write_reports(
    args: EvalArguments, truth: list[str], predicted: list[str], labels: Any, metrics: dict[str, Any]
) -> None:
    from pipelines.training.metrics import plot_confusion, report_text

    assert args.report_dir is not None  # noqa: S101  (checked by the caller)
    args.report_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{args.task}_{args.data.stem}" + (f"_{args.split}" if args.split else "")
    (args.report_dir / f"classification_report_{stem}.txt").write_text(
        report_text(truth, predicted, labels), encoding="utf-8"
    )
    plot_confusion(
        metrics["confusion_matrix"],
        labels,
        f"{args.task}: {args.data.name}",
        args.report_dir / f"confusion_matrix_{stem}.png",
    )


def render_text(metrics: dict[str, Any]) -> str:
    """Human-readable summary: headline numbers, per-class table, confusion matrix."""
    labels = metrics["labels"]
    width = max(len(lab) for lab in labels) + 2
    lines = [
        f"model {metrics['model']}  task {metrics['task']}  n={metrics['n']}"
        + (f"  split {metrics['split']}" if metrics.get("split") else ""),
        f"accuracy {metrics['accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}  "
        f"weighted-F1 {metrics['weighted_f1']:.4f}",
        "",
        f"{'label':<{width}} precision  recall     f1  support",
    ]
    for lab in labels:
        c = metrics["per_class"][lab]
        lines.append(f"{lab:<{width}} {c['precision']:9.4f} {c['recall']:7.4f} {c['f1']:6.4f} {c['support']:8d}")
    lines += ["", "confusion matrix (rows = true, columns = predicted, in label order above):"]
    lines += [
        f"{lab:<{width}} " + " ".join(f"{v:5d}" for v in row)
        for lab, row in zip(labels, metrics["confusion_matrix"], strict=True)
    ]
    return "\n".join(lines)


@click.command("evaluate")
@dataclass_options(EvalArguments)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def command(as_json: bool, **options: Any) -> None:
    """Accuracy, macro/weighted F1, per-class P/R/F1 and confusion matrix of one head on a labelled file."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = from_options(EvalArguments, options)
    metrics = evaluate(args)
    if as_json:
        click.echo(json.dumps(metrics))
    else:
        click.echo(render_text(metrics))
