"""`finmon evaluate`: score a finmon model on a labelled file for one head (sentiment or topic).

    finmon evaluate --task sentiment --data FILE [--model M] [--text-col text] [--label-col label] [--json]
    finmon evaluate --task topic --data data/news/finmon_news.csv --label-col topic --split validation
    finmon evaluate --task sentiment --data FILE --compare CANDIDATE_DIR   # candidate minus shipped, 95% intervals

Labels are names (negative/neutral/positive; topic names as the model's finmon_config.json lists them,
which for the shipped model are those of topic_labels.csv). `--json` prints one object with n, accuracy,
macro_f1, weighted_f1, labels, per_class and confusion_matrix (rows = true label, columns = predicted).
`--split NAME` keeps only the rows whose split column (`--split-col`, default `split`) is NAME, for files that
carry a fixed train/validation split such as the project's news set. `--compare MODEL` scores a second model
on the same rows and adds `compare` (its accuracy, macro-F1, per-class figures and a paired bootstrap of the
differences: `delta` on all rows, the 95% interval `low`..`high`, and `b_ahead`, the share of resamples in which
the second model is ahead), so "is the candidate better than the shipped model" has an answer with its noise.
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
    compare: str | None = field(
        default=None,
        metadata={
            "help": "A second model (dir or name) scored on the same rows: its metrics and a paired bootstrap"
            " of its accuracy and macro-F1 minus --model's, with 95% intervals (is a candidate better?)."
        },
    )
    resamples: int = field(default=1000, metadata={"help": "Paired bootstrap resamples for --compare."})


def _engine(args: EvalArguments, model: str | None, hint: str) -> Any:
    from monitor.classify.engine import load_classifier
    from monitor.classify.model import ModelNotFoundError

    try:
        return load_classifier(model, device=args.device, quantize=args.quantize)
    except (ModelNotFoundError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from exc


def _head_labels(engine: Any, task: str) -> list[str]:
    return list(engine.topic_labels if task == "topic" else engine.sentiment_labels)


def _predict(engine: Any, task: str, texts: list[str]) -> list[str]:
    return [p.topic if task == "topic" else p.sentiment for p in engine.predict(texts)]


def evaluate(args: EvalArguments) -> dict[str, Any]:
    """Load the model and the data, predict, and return the metrics (plus model version and task); with
    --compare also the second model's metrics and the paired bootstrap of its differences."""
    from pipelines.training.data import load_labelled
    from pipelines.training.metrics import compute_metrics, paired_bootstrap

    engine = _engine(args, args.model, "--model/--device")
    labels = _head_labels(engine, args.task)
    frame = load_labelled(args.data, args.text_col, args.label_col, labels, args.task, args.split, args.split_col)
    truth, texts = frame["label"].tolist(), frame["text"].tolist()
    predicted = _predict(engine, args.task, texts)
    metrics = compute_metrics(truth, predicted, labels)
    if args.report_dir is not None:
        _write_reports(args, truth, predicted, labels, metrics)
    out = {**metrics, "task": args.task, "model": engine.version, "split": args.split}
    if args.compare is not None:
        other = _engine(args, args.compare, "--compare")
        other_labels = _head_labels(other, args.task)
        if other_labels != labels:
            raise click.BadParameter(
                f"{args.compare} has other {args.task} labels than {engine.version} ({other_labels[:3]}... vs "
                f"{labels[:3]}...): compare models trained on the same label set",
                param_hint="--compare",
            )
        second = _predict(other, args.task, texts)
        b = compute_metrics(truth, second, labels)
        out["compare"] = {
            "model": other.version,
            "accuracy": b["accuracy"],
            "macro_f1": b["macro_f1"],
            "per_class": b["per_class"],
            "bootstrap": paired_bootstrap(truth, predicted, second, labels, args.resamples),
        }
    return out


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
    return "\n".join(lines + _compare_lines(metrics))


def _compare_lines(metrics: dict[str, Any]) -> list[str]:
    other = metrics.get("compare")
    if not other:
        return []
    boot = other["bootstrap"]
    lines = [
        "",
        f"compared with {other['model']} on the same {metrics['n']} rows "
        f"(paired bootstrap, {boot['resamples']} resamples; delta = {other['model']} minus {metrics['model']}):",
    ]
    for name, label in (("accuracy", "accuracy"), ("macro_f1", "macro-F1")):
        d = boot[name]
        lines.append(
            f"  {label:<9} {metrics[name]:.4f} -> {other[name]:.4f}  delta {d['delta']:+.4f} "
            f"[95% {d['low']:+.4f}, {d['high']:+.4f}]  ahead in {d['b_ahead']:.0%} of resamples"
        )
    return lines


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
